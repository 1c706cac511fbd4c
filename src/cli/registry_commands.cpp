// `visiongen models`, `models show`, `engines`, `system`: the registry and
// what this build can run.
#include <fstream>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>
#include <memory>

#include "backend/cpu/precision_probe.h"
#include "backend/cpu/dnnl_context.h"
#include "cli/commands.h"
#include "core/error.h"
#include "io/hf_cache.h"
#include "hub/hub.h"
#include "registry/registry.h"
#include "visiongen/manager.h"
#include "visiongen/visiongen.h"

namespace vg::cli {

namespace {

std::string join(const std::vector<std::string>& v, const char* sep = ", ") {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : sep) + x;
  return s;
}

#define cpu_has(f) (__builtin_cpu_supports(f) != 0)

}  // namespace

void add_registry_commands(CLI::App& app) {
  struct Opts {
    std::string task, show_id;
    bool runnable = false, json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* models = app.add_subcommand("models", "list the model registry (what each known model is and whether this build runs it)");
  models->add_option("--task", o->task, "only models with this task (text_to_image, inpaint, text_to_video, ...)");
  models->add_flag("--runnable", o->runnable, "only models an engine of this build runs");
  models->add_flag("--json", o->json, "print JSON");
  auto* show = models->add_subcommand("show", "show one registry entry");
  show->add_option("id", o->show_id, "registry id or Hub repo id")->required();
  show->add_flag("--json", o->json, "print JSON");
  models->callback([o, models] {
    if (models->got_subcommand("show")) return;
    auto reg = guard([] { return Registry::load_default(); });
    if (!reg) return set_exit_code(report_error(reg.error()));
    nlohmann::json arr = nlohmann::json::array();
    if (!o->json) std::printf("%-26s %-10s %-44s %s\n", "id", "runs here", "tasks", "hub repo");
    for (const auto& m : reg->models()) {
      if (!o->task.empty() && !m.has_task(o->task)) continue;
      if (o->runnable && !m.runnable()) continue;
      if (o->json) {
        arr.push_back(m.to_json());
        continue;
      }
      std::printf("%-26s %-10s %-44s %s\n", m.id.c_str(), m.runnable() ? ("yes (" + m.engine + ")").c_str() : "no",
                  join(m.tasks, ",").c_str(), m.ids.empty() ? "-" : m.ids[0].c_str());
    }
    if (o->json) std::printf("%s\n", arr.dump(1).c_str());
  });
  show->callback([o] {
    auto reg = guard([] { return Registry::load_default(); });
    if (!reg) return set_exit_code(report_error(reg.error()));
    auto m = reg->find(o->show_id);
    if (!m) return set_exit_code(report_error({ErrorCode::kUnknownModel, "no registry entry '" + o->show_id + "'; see 'visiongen models'"}));
    if (o->json) {
      std::printf("%s\n", m->to_json().dump(1).c_str());
      return;
    }
    std::printf("%s (%s)\n  family: %s\n  architecture: %s\n  tasks: %s\n  hub: %s\n  runs here: %s\n", m->name.c_str(),
                m->id.c_str(), m->family.c_str(), m->architecture.c_str(), join(m->tasks).c_str(), join(m->ids).c_str(),
                m->runnable() ? ("yes, engine " + m->engine).c_str() : "no engine in this build");
    std::printf("  defaults: %s\n  limits: %s\n  license: %s\n", m->defaults.dump().c_str(), m->limits.dump().c_str(),
                m->license.dump().c_str());
    if (!m->unverified.empty()) std::printf("  unverified: %s\n", join(m->unverified, "; ").c_str());
    for (const auto& r : m->ids)
      if (auto snap = hf_cached_snapshot(r)) std::printf("  in the local Hugging Face cache: %s\n", snap->c_str());
  });

  auto ej = std::make_shared<bool>(false);
  auto* eng = app.add_subcommand("engines", "the engine x feature matrix of this build");
  eng->add_flag("--json", *ej, "print JSON");
  eng->callback([ej] {
    if (*ej) {
      nlohmann::json a = nlohmann::json::array();
      for (const auto& e : engines()) a.push_back(engine_json(e));
      std::printf("%s\n", a.dump(1).c_str());
      return;
    }
    std::printf("%-8s %-32s %-5s %-5s %-9s %-9s %-10s %-14s %s\n", "engine", "tasks", "mask", "lora", "multiple",
                "max size", "max frames", "weight dtypes", "devices");
    for (const auto& e : engines())
      std::printf("%-8s %-32s %-5s %-5s %-9d %-9d %-10d %-14s %s\n", e.name.c_str(), join(e.tasks, ",").c_str(),
                  e.mask ? "yes" : "no", e.lora ? "yes" : "no", e.size_multiple, e.max_size, e.max_frames,
                  join(e.weight_dtypes, ",").c_str(), join(e.devices, ",").c_str());
    for (const auto& e : engines())
      std::printf("%s families: %s (LoRAs: the Stable Diffusion families; FLUX/SD3 run without)\n", e.name.c_str(),
                  join(e.families, ", ").c_str());
    std::printf("not supported yet: text_to_video, image_to_video, upscale (no engine in this build)\n");
  });

  auto sj = std::make_shared<bool>(false);
  auto* sys = app.add_subcommand("system", "what visiongen found on this machine");
  sys->add_flag("--json", *sj, "print JSON");
  auto measure = std::make_shared<bool>(false);
  sys->add_flag("--measure-precision", *measure,
                "time fp32 against bf16 on the SD and SDXL layer shapes now and cache the choices --precision auto uses");
  sys->callback([sj, measure] {
    if (*measure)
      for (const char* arch : {"sd", "sdxl"}) choose_precision(arch, {}, "", /*remeasure=*/true);
    __builtin_cpu_init();
    const long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGE_SIZE);
    const size_t cores = physical_core_cpus().size();
    nlohmann::json j = {{"version", version()},
                        {"cpu", {{"threads", sysconf(_SC_NPROCESSORS_ONLN)},
                                 {"physical_cores_allowed", cores},
                                 {"avx2", cpu_has("avx2")},
                                 {"avx512f", cpu_has("avx512f")},
                                 {"avx512bf16", cpu_has("avx512bf16")},
                                 {"fma", cpu_has("fma")}}},
                        {"memory_bytes", static_cast<double>(pages) * psz},
                        {"devices", {"cpu"}},
                        {"cuda", {{"devices", cuda_device_count()}, {"engine", false}, {"reason", "this build has no CUDA engine yet"}}},
                        {"hf_cache", hf_cache_dir()},
                        {"missing", {{"video", "no video engine or FFmpeg encoder in this build yet"},
                                     {"upscale", "no upscaler engine in this build yet"}}},
                        {"hub", {{"endpoint", hub::HubConfig::from_env().endpoint},
                                 {"offline", hub::HubConfig::from_env().offline},
                                 {"note", "nothing is downloaded implicitly: use visiongen hf pull or generate --allow-download"}}},
                        {"engines", nlohmann::json::array()}};
    for (const auto& e : engines()) j["engines"].push_back(e.name);
    // --precision auto's measured choices for this machine (written by model loads)
    j["precision_auto"] = {{"cache", precision_cache_path()}, {"cpu", cpu_model_name()}, {"choices", nlohmann::json::object()}};
    try {
      std::ifstream in(precision_cache_path());
      if (in) {
        const auto c = nlohmann::json::parse(in);
        for (const auto& [k, v] : c.items())
          if (v.is_object() && v.value("cpu", "") == cpu_model_name()) j["precision_auto"]["choices"][v.value("arch", k)] = v;
      }
    } catch (const std::exception&) {
    }
    if (*sj) {
      std::printf("%s\n", j.dump(1).c_str());
      return;
    }
    std::printf("visiongen %s\ncpu: %ld threads, %zu physical cores for this process (compute threads by default), avx2 %s, avx512f %s, avx512bf16 %s\nmemory: %.1f GB\n", version(),
                sysconf(_SC_NPROCESSORS_ONLN), cores, cpu_has("avx2") ? "yes" : "no", cpu_has("avx512f") ? "yes" : "no",
                cpu_has("avx512bf16") ? "yes" : "no", static_cast<double>(pages) * psz / 1e9);
    std::printf("devices: cpu; CUDA devices found: %d (no CUDA engine in this build yet)\nHugging Face cache: %s\n", cuda_device_count(),
                hf_cache_dir().c_str());
    std::printf("precision auto (cache %s):", precision_cache_path().c_str());
    if (j["precision_auto"]["choices"].empty()) std::printf(" nothing measured yet (the first full-size model load per architecture measures)");
    for (const auto& [arch, v] : j["precision_auto"]["choices"].items()) {
      std::printf(" %s -> %s", arch.c_str(), v.value("choice", "?").c_str());
      if (v.contains("seconds"))
        for (const auto& [n, sec] : v["seconds"].items()) std::printf(" (%s %.3f s)", n.c_str(), sec.get<double>());
      std::printf(";");
    }
    std::printf("\n");
    std::printf("missing: video (no video engine or FFmpeg encoder yet), upscale (no upscaler yet)\n");
    std::printf("hub: %s%s (nothing is downloaded implicitly: visiongen hf pull, or generate --allow-download)\n",
                j["hub"]["endpoint"].get<std::string>().c_str(), j["hub"]["offline"].get<bool>() ? ", offline (HF_HUB_OFFLINE)" : "");
  });
}

}  // namespace vg::cli
