// `visiongen repl`: an interactive session over one loaded engine.
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <memory>
#include <sstream>

#include "cli/commands.h"
#include "core/data_dir.h"
#include "core/error.h"
#include "core/params_json.h"
#include "registry/registry.h"
#include "visiongen/visiongen.h"

namespace vg::cli {

namespace {

// Splits a line into words; "double quotes" group words.
std::vector<std::string> words(const std::string& line) {
  std::vector<std::string> out;
  std::string cur;
  bool quoted = false, have = false;
  for (char c : line) {
    if (c == '"') {
      quoted = !quoted;
      have = true;
    } else if (std::isspace(static_cast<unsigned char>(c)) && !quoted) {
      if (have) out.push_back(cur);
      cur.clear();
      have = false;
    } else {
      cur += c;
      have = true;
    }
  }
  if (have) out.push_back(cur);
  return out;
}

const char* kHelp =
    "/model PATH           load a model (diffusers folder, .safetensors, org/name from the HF cache)\n"
    "/backend [NAME]       show or choose the engine (this build: cpu)\n"
    "/set KEY VALUE        set a generation field (steps, cfg_scale, sampler, seed, width, ...)\n"
    "/show                 show the current fields and model\n"
    "/t2i \"prompt\" [--open]                       text to image\n"
    "/i2i --image PATH [--mask PATH] \"prompt\"    image to image (inpaint with a mask)\n"
    "/cap-model on|off     check requests against the model's registry capabilities first\n"
    "/history              the commands of this session\n"
    "/help                 this text;  /quit  leave\n";

struct Session {
  std::unique_ptr<Engine> engine;
  std::string model_path;
  GenerateParams params;
  bool cap_check = true;
  int counter = 0;
  std::vector<std::string> history;
};

void show_error(const Error& e) { std::printf("error [%s]: %s\n", error_code_name(e.code), e.message.c_str()); }

void generate(Session& s, GenerateParams p, bool open) {
  if (!s.engine) return show_error({ErrorCode::kInvalidArgument, "no model loaded; use /model PATH"});
  const std::string out = "repl-" + std::to_string(++s.counter) + ".png";
  auto r = s.engine->generate(p, [](const Progress& pr) {
    if (std::string(pr.stage) == "denoise" && pr.step > 0) std::printf("\r  step %d/%d", pr.step, pr.total), std::fflush(stdout);
    return true;
  });
  std::printf("\n");
  if (!r) return show_error(r.error());
  for (const auto& w : r->warnings) std::printf("warning: %s\n", w.c_str());
  Status st = save_image(r->images[0], out, r->infotext[0]);
  if (!st) return show_error(st.error());
  std::printf("saved %s (seed %llu, %s/%s, denoise %.2f s)\n", out.c_str(), static_cast<unsigned long long>(r->seeds[0]),
              r->sampling.sampler_effective.c_str(), r->sampling.scheduler_effective.c_str(), r->timings.denoise_s);
  if (open) std::printf("open: %s\n", std::system(("xdg-open " + out + " >/dev/null 2>&1 &").c_str()) == 0 ? out.c_str() : "(no viewer)");
}

void handle(Session& s, const std::string& line) {
  auto w = words(line);
  if (w.empty()) return;
  const std::string& c = w[0];
  if (c == "/help") {
    std::printf("%s", kHelp);
  } else if (c == "/history") {
    for (size_t i = 0; i < s.history.size(); ++i) std::printf("%3zu  %s\n", i + 1, s.history[i].c_str());
  } else if (c == "/model") {
    if (w.size() < 2) return show_error({ErrorCode::kInvalidArgument, "usage: /model PATH"});
    auto e = Engine::load(w[1]);
    if (!e) return show_error(e.error());
    s.engine = std::move(*e);
    s.model_path = w[1];
    std::printf("loaded %s (%s, %dx%d)\n", s.engine->info().name.c_str(), s.engine->info().family.c_str(),
                s.engine->info().default_width, s.engine->info().default_height);
  } else if (c == "/backend") {
    if (w.size() > 1 && w[1] != "cpu")
      return show_error({ErrorCode::kCapabilityNotSupported, "engine '" + w[1] + "' is not in this build; available: cpu"});
    std::printf("engine: cpu\n");
  } else if (c == "/set") {
    if (w.size() < 3) return show_error({ErrorCode::kInvalidArgument, "usage: /set KEY VALUE"});
    nlohmann::json v = nlohmann::json::parse(w[2], nullptr, false);
    if (v.is_discarded() || v.is_object() || v.is_array()) v = w[2];  // plain words are strings
    GenerateParams next = s.params;
    Status st = params_from_json({{w[1], v}}, &next, true);
    if (st) st = validate_params(next);
    if (!st) return show_error(st.error());
    s.params = next;
    if (std::find(s.params.set_fields.begin(), s.params.set_fields.end(), w[1]) == s.params.set_fields.end())
      s.params.set_fields.push_back(w[1]);
    std::printf("%s = %s\n", w[1].c_str(), params_to_json(s.params)[w[1]].dump().c_str());
  } else if (c == "/show") {
    std::printf("model: %s\n%s\n", s.model_path.empty() ? "(none)" : s.model_path.c_str(), params_to_json(s.params).dump(1).c_str());
  } else if (c == "/cap-model") {
    s.cap_check = w.size() < 2 || w[1] != "off";
    std::printf("capability check %s\n", s.cap_check ? "on" : "off");
  } else if (c == "/t2i" || c == "/i2i") {
    GenerateParams p = s.params;
    bool open = false;
    std::string prompt;
    for (size_t i = 1; i < w.size(); ++i) {
      if (w[i] == "--open") open = true;
      else if (w[i] == "--image" && i + 1 < w.size()) p.init_image = w[++i];
      else if (w[i] == "--mask" && i + 1 < w.size()) p.mask = w[++i];
      else prompt += (prompt.empty() ? "" : " ") + w[i];
    }
    if (c == "/i2i" && p.init_image.empty()) return show_error({ErrorCode::kInvalidArgument, "usage: /i2i --image PATH [--mask PATH] \"prompt\""});
    if (c == "/t2i") p.init_image.clear(), p.mask.clear();
    p.prompt = prompt;
    p.set_fields.push_back("prompt");
    p.task = c == "/t2i" ? "text_to_image" : (p.mask.empty() ? "image_to_image" : "inpaint");
    if (s.cap_check && s.engine && s.engine->info().family != "sd1" && s.engine->info().family != "sd2")
      return show_error({ErrorCode::kCapabilityNotSupported, "the loaded model cannot run " + p.task});
    generate(s, p, open);
  } else if (c == "/quit" || c == "/exit") {
    std::exit(0);
  } else {
    show_error({ErrorCode::kInvalidArgument, "unknown command '" + c + "'; /help lists them"});
  }
}

}  // namespace

void add_repl(CLI::App& app) {
  auto model = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand("repl", "interactive session: /model, /set, /t2i, /i2i, ... (/help)");
  cmd->add_option("-m,--model", *model, "model to load at start (default: the demo model)");
  cmd->callback([model] {
    Session s;
    const bool tty = isatty(STDIN_FILENO);
    const std::string m = model->empty() ? default_model_path() : *model;
    if (!m.empty()) handle(s, "/model \"" + m + "\"");
    if (tty) std::printf("visiongen %s: /help for commands\n", version());
    std::string line;
    for (;;) {
      if (tty) std::printf("> "), std::fflush(stdout);
      if (!std::getline(std::cin, line)) break;
      if (line.empty()) continue;
      s.history.push_back(line);
      handle(s, line);
      std::fflush(stdout);
    }
  });
}

}  // namespace vg::cli
