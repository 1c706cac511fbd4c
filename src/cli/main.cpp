// visiongen command-line interface: thin layer over the public API.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "cli/commands.h"
#include "visiongen/visiongen.h"

int main(int argc, char** argv) {
  CLI::App app{"visiongen: local Stable Diffusion image generation on the CPU"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("visiongen ") + vg::version());
  vg::cli::add_generate(app);
  vg::cli::add_convert(app);
  vg::cli::add_samplers(app);
  vg::cli::add_bench(app);
  vg::cli::add_serve(app);
  vg::cli::add_worker(app);
  vg::cli::add_queue_commands(app);
  vg::cli::add_registry_commands(app);
  vg::cli::add_artifact_commands(app);
  vg::cli::add_repl(app);
  vg::cli::add_hf_commands(app);
  vg::cli::add_man(app);
  vg::cli::add_completion(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return vg::cli::exit_code();
}
