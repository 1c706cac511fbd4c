// `visiongen artifacts list|show|rm`: the content-addressed artifact store.
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "artifacts/store.h"
#include "cli/commands.h"
#include "core/error.h"

namespace vg::cli {

std::string default_artifact_dir() {
  if (const char* d = std::getenv("VG_ARTIFACT_DIR"); d && *d) return d;
  const char* home = std::getenv("HOME");
  return std::string(home ? home : ".") + "/.local/share/visiongen/artifacts";
}

void add_artifact_commands(CLI::App& app) {
  struct Opts {
    std::string dir = default_artifact_dir(), id;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("artifacts", "list, show or delete stored results");
  cmd->add_option("--dir", o->dir, "store directory ($VG_ARTIFACT_DIR)")->capture_default_str();
  cmd->require_subcommand(1);
  auto* ls = cmd->add_subcommand("list", "list complete artifacts (JSON lines with --json)");
  ls->add_flag("--json", o->json, "one JSON media reference per line");
  ls->callback([o] {
    auto all = guard([&] { return ArtifactStore(o->dir).list(); });
    if (!all) return set_exit_code(report_error(all.error()));
    for (const auto& m : *all) {
      if (o->json) std::printf("%s\n", m.to_json().dump().c_str());
      else std::printf("%s  %s  %dx%d  %llu bytes  %s\n", m.id.c_str(), m.created.c_str(), m.width, m.height,
                       static_cast<unsigned long long>(m.bytes), m.mime.c_str());
    }
  });
  auto* show = cmd->add_subcommand("show", "print one media reference with its info");
  show->add_option("id", o->id, "artifact id (sha256)")->required();
  show->callback([o] {
    auto m = guard([&] { return ArtifactStore(o->dir).get(o->id); });
    if (!m) return set_exit_code(report_error(m.error()));
    if (!*m) return set_exit_code(report_error({ErrorCode::kFileNotFound, "no artifact '" + o->id + "' in " + o->dir}));
    std::printf("%s\n", (*m)->to_json().dump(1).c_str());
  });
  auto* rm = cmd->add_subcommand("rm", "delete one artifact");
  rm->add_option("id", o->id, "artifact id (sha256)")->required();
  rm->callback([o] {
    auto ok = guard([&] { return ArtifactStore(o->dir).remove(o->id); });
    if (!ok) return set_exit_code(report_error(ok.error()));
    if (!*ok) return set_exit_code(report_error({ErrorCode::kFileNotFound, "no artifact '" + o->id + "' in " + o->dir}));
    std::printf("deleted %s\n", o->id.c_str());
  });
}

}  // namespace vg::cli
