#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "core/error.h"
#include "pipelines/ldm_checkpoint.h"
#include "sampling/sampler.h"

namespace vg::cli {

void add_convert(CLI::App& app) {
  auto in = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand("convert", "write a diffusers SD1.x folder as one LDM-layout .safetensors checkpoint");
  cmd->add_option("input", *in, "diffusers model folder")->required();
  cmd->add_option("output", *out, "output .safetensors file")->required();
  cmd->callback([in, out] {
    auto r = guard([&] {
      convert_diffusers_to_ldm(*in, *out);
      return 0;
    });
    if (!r) {
      set_exit_code(report_error(r.error()));
      return;
    }
    std::printf("%s\n", out->c_str());
  });
}

void add_samplers(CLI::App& app) {
  auto* cmd = app.add_subcommand("samplers", "list the available samplers");
  cmd->callback([] {
    for (const auto& n : sampler_names()) std::printf("%s\n", n.c_str());
  });
}

}  // namespace vg::cli
