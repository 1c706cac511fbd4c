#pragma once
#include <CLI/CLI.hpp>

namespace vg::cli {

void add_generate(CLI::App& app);
void add_convert(CLI::App& app);
void add_samplers(CLI::App& app);
void add_bench(CLI::App& app);
int exit_code();
void set_exit_code(int code);

}  // namespace vg::cli
