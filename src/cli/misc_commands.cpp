#include <cstdio>
#include <filesystem>
#include <memory>

#include "cli/commands.h"
#include "core/error.h"
#include "pipelines/gguf_convert.h"
#include "pipelines/ldm_checkpoint.h"
#include "sampling/sampler.h"
#include "sampling/sigma_schedules.h"

namespace vg::cli {

void add_convert(CLI::App& app) {
  auto in = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto config = std::make_shared<std::string>();
  auto tokenizer = std::make_shared<std::string>();
  auto type = std::make_shared<std::string>();
  auto unet_only = std::make_shared<bool>(false);
  auto* cmd = app.add_subcommand(
      "convert",
      "convert between a diffusers folder and one .safetensors checkpoint, either way, or to GGUF:\n"
      "  FOLDER OUT.safetensors  SD1.x -> LDM layout, SDXL -> Stability's SGM layout (A1111/ComfyUI);\n"
      "                          the folder's configs are kept as visiongen.* metadata\n"
      "  FILE.safetensors OUT_DIR  LDM/SGM single file -> diffusers folder (configs, tokenizers, scheduler)\n"
      "  FILE|FOLDER OUT.gguf --type q8_0  GGUF as stable-diffusion.cpp writes it (original names,\n"
      "                          its per-tensor rules), with a manifest OUT.gguf.json");
  cmd->add_option("input", *in, "diffusers model folder, or a single-file .safetensors checkpoint")->required();
  cmd->add_option("output", *out, "output .safetensors file (from a folder), folder (from a file), or .gguf")
      ->required();
  cmd->add_option("--model-config", *config,
                  "single file -> folder: a diffusers folder of the same architecture whose configs describe it");
  cmd->add_option("--tokenizer", *tokenizer, "single file -> folder: tokenizer folder (vocab.json + merges.txt)");
  cmd->add_option("--type", *type,
                  "write GGUF with this weight type: q8_0 q6_k q5_k q4_k q3_k q2_k q5_1 q5_0 q4_1 q4_0 f16 bf16 f32");
  cmd->add_flag("--unet-only", *unet_only, "GGUF: only the UNet (model.diffusion_model.*), for --unet FILE");
  cmd->callback([in, out, config, tokenizer, type, unet_only] {
    const bool gguf = !type->empty() || *unet_only ||
                      (out->size() > 5 && out->compare(out->size() - 5, 5, ".gguf") == 0);
    GgufConvertResult res;
    auto r = guard([&] {
      if (gguf) {
        GgufConvertOptions opt;
        if (!type->empty()) opt.type = *type;
        opt.unet_only = *unet_only;
        res = convert_to_gguf(*in, *out, opt);
      } else if (std::filesystem::is_directory(*in)) {
        convert_diffusers_to_ldm(*in, *out);
      } else {
        convert_single_file_to_diffusers(*in, *out, *config, *tokenizer);
      }
      return 0;
    });
    if (!r) {
      set_exit_code(report_error(r.error()));
      return;
    }
    if (gguf) {
      std::string counts;
      for (const auto& [t, n] : res.type_counts) counts += (counts.empty() ? "" : ", ") + t + " " + std::to_string(n);
      std::fprintf(stderr, "%lld tensors (%s), %llu bytes; manifest %s\n", static_cast<long long>(res.tensors),
                   counts.c_str(), static_cast<unsigned long long>(res.bytes), res.manifest_path.c_str());
    }
    std::printf("%s\n", out->c_str());
  });
}

void add_samplers(CLI::App& app) {
  auto* cmd = app.add_subcommand("samplers", "list samplers and schedules with their A1111/ComfyUI/diffusers names");
  cmd->callback([] {
    std::printf("samplers (--sampler; any name in a row works):\n");
    std::printf("  %-13s %-14s %-34s %s\n", "id", "A1111", "diffusers class", "other names");
    for (const auto& s : sampler_table()) {
      std::string aliases;
      for (const auto& a : s.aliases) aliases += (aliases.empty() ? "" : ", ") + a;
      std::printf("  %-13s %-14s %-34s %s\n", s.id.c_str(), s.a1111.c_str(),
                  s.diffusers.empty() ? "-" : s.diffusers.c_str(), aliases.c_str());
      if (!s.note.empty()) std::printf("  %-13s %s\n", "", s.note.c_str());
    }
    std::printf("\nschedules (--scheduler; sigma schedules apply to samplers with sigmas):\n ");
    for (const auto& n : schedule_names()) std::printf(" %s", n.c_str());
    std::printf("\n  A1111 names ending in a schedule (\"DPM++ 2M Karras\") set it too.\n");
  });
}

}  // namespace vg::cli
