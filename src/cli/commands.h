#pragma once
#include <CLI/CLI.hpp>

#include "visiongen/error.h"

namespace vg::cli {

void add_generate(CLI::App& app);
void add_convert(CLI::App& app);
void add_samplers(CLI::App& app);
void add_bench(CLI::App& app);
void add_serve(CLI::App& app);
void add_worker(CLI::App& app);
void add_queue_commands(CLI::App& app);
void add_registry_commands(CLI::App& app);
void add_artifact_commands(CLI::App& app);
void add_repl(CLI::App& app);
void add_hf_commands(CLI::App& app);
// Man pages and completion scripts: they walk the whole of `app` when they run (after parsing).
void add_man(CLI::App& app);
void add_completion(CLI::App& app);
// Prints "error [code]: message" and returns the exit code 10 + code.
int report_error(const Error& e);
int exit_code();
void set_exit_code(int code);

}  // namespace vg::cli
