// `visiongen man`: roff man pages (section 1) generated from the CLI's own
// option tree, so they say what `--help` says.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "cli/cli_tree.h"
#include "cli/commands.h"
#include "core/error.h"
#include "io/atomic_file.h"
#include "visiongen/visiongen.h"

namespace vg::cli {

namespace {

// Read by the program (grep getenv in src/); debugging and tuning knobs are left out.
const std::pair<const char*, const char*> kEnvironment[] = {
    {"VG_DEFAULT_MODEL",
     "the model generate, serve and repl use when -m is not given (instead of the demo model)"},
    {"VG_DATA_DIR",
     "the data folder (demo model, CLIP vocabulary, web UI page); default: share/visiongen above the program "
     "or the library, else the source tree"},
    {"VG_PRECISION", "fp32 or bf16: what --precision auto means"},
    {"VG_LORA_DIR", "colon-separated folders searched for --lora and <lora:name> names, after --lora-dir"},
    {"VG_TOKENIZER_DIR",
     "tokenizer folder (vocab.json, merges.txt) for single-file checkpoints without tokenizer/ beside them"},
    {"VG_ARTIFACT_DIR", "the artifact store (default ~/.local/share/visiongen/artifacts)"},
    {"VG_REGISTRY_FILE",
     "a JSON file that adds or overrides model registry entries (default ~/.config/visiongen/models.json)"},
    {"VG_PRESET_DIR", "folder of preset YAML files (default ~/.config/visiongen/presets)"},
    {"VG_MEMORY_LIMIT_BYTES", "caps the memory the model size check assumes is available"},
    {"VG_PIN_THREADS", "0 leaves thread placement to the OS (as does OMP_PROC_BIND)"},
    {"XDG_CACHE_HOME",
     "the measured --precision auto choices are cached in $XDG_CACHE_HOME/visiongen/precision.json (default "
     "~/.cache)"},
    {"HF_HOME, HF_HUB_CACHE",
     "the Hugging Face cache shared with the official tools (default ~/.cache/huggingface/hub)"},
    {"HF_ENDPOINT", "the Hub to talk to (default https://huggingface.co)"},
    {"HF_TOKEN, HF_TOKEN_PATH", "the Hub token, or the file holding it (default $HF_HOME/token)"},
    {"HF_HUB_OFFLINE", "1: no network call at all; references resolve from the cache"},
    {"HF_HUB_ETAG_TIMEOUT, HF_HUB_DOWNLOAD_TIMEOUT",
     "seconds for the metadata request and for each download request"},
};

const std::pair<const char*, const char*> kFiles[] = {
    {"<prefix>/share/visiongen/models/visiongen-shapes",
     "the demo model, used when no model is given (under $VG_DATA_DIR when set)"},
    {"<prefix>/share/visiongen",
     "the data folder: also the CLIP vocabulary (clip/) and the web UI page (ui/)"},
    {"~/.config/visiongen/models.json", "user model registry entries"},
    {"~/.config/visiongen/presets/*.yaml", "user presets; they replace built-in ones of the same name"},
    {"~/.local/share/visiongen/artifacts", "the artifact store"},
    {"~/.cache/visiongen/precision.json", "the measured fp32/bf16 choices per CPU model"},
};

// Text for a roff text line: backslashes, hyphens (\-), non-ASCII (\[uXXXX]), and a
// leading dot or apostrophe (\&) that would make the line a request.
std::string esc(const std::string& s) {
  std::string out = !s.empty() && (s[0] == '.' || s[0] == '\'') ? "\\&" : "";
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '\\')
      out += "\\e";
    else if (c == '-')
      out += "\\-";
    else if (c < 0x80)
      out += static_cast<char>(c);
    else {
      const int n = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : 1;
      unsigned cp = c & (0x3F >> n);
      for (int k = 0; k < n && i + 1 < s.size(); ++k)
        cp = (cp << 6) | (static_cast<unsigned char>(s[++i]) & 0x3F);
      char buf[16];
      std::snprintf(buf, sizeof buf, "\\[u%04X]", cp);
      out += buf;
    }
  }
  return out;
}

// Multi-line text keeps its lines (and their indentation).
std::string block(const std::string& text) {
  if (text.find('\n') == std::string::npos) return esc(text) + "\n";
  std::string out = ".nf\n";
  for (size_t a = 0, b; a <= text.size(); a = b + 1) {
    b = std::min(text.find('\n', a), text.size());
    out += esc(text.substr(a, b - a)) + "\n";
  }
  return out + ".fi\n";
}

std::string page_name(const std::vector<std::string>& path) {
  return path.empty() ? "visiongen" : "visiongen-" + join(path, "-");
}

std::string option_entry(const CLI::Option& o) {
  std::string head;
  for (const auto& n : option_names(o)) head += (head.empty() ? "" : ", ") + ("\\fB" + esc(n) + "\\fR");
  if (!o.get_positional() && takes_value(o)) head += " \\fI" + esc(option_type(o)) + "\\fR";
  std::string notes;
  if (o.get_required()) notes = "Required.";
  if (!o.get_default_str().empty())
    notes += (notes.empty() ? "" : " ") + ("Default: " + o.get_default_str() + ".");
  if (const auto c = option_choices(o); !c.empty())
    notes += (notes.empty() ? "" : " ") + ("One of: " + join(c, ", ") + ".");
  return ".TP\n" + head + "\n" + block(o.get_description()) +
         (notes.empty() ? "" : ".br\n" + esc(notes) + "\n");
}

std::string render(const std::vector<CommandNode>& tree, const CommandNode& node) {
  CLI::App& app = *node.app;
  const std::string name = page_name(node.path);
  std::string title = name, out;
  for (char& c : title) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  out += ".TH " + esc(title) + " 1 \"\" \"visiongen " + esc(version()) + "\" \"User Commands\"\n";
  std::string desc = app.get_description();
  if (node.path.empty() && desc.rfind("visiongen: ", 0) == 0) desc = desc.substr(11);
  out += ".SH NAME\n" + esc(name) + " \\- " + esc(summary(desc)) + "\n.SH SYNOPSIS\n.B " +
         esc(join(node.path, " ").insert(0, node.path.empty() ? "visiongen" : "visiongen ")) +
         "\n[\\fIOPTIONS\\fR]";
  const auto positionals = app.get_options([](const CLI::Option* o) { return o->get_positional(); });
  for (const CLI::Option* p : positionals) {
    const std::string arg = "\\fI" + esc(p->get_name()) + "\\fR" + (p->get_expected_max() > 1 ? " ..." : "");
    out += " " + (p->get_required() ? arg : "[" + arg + "]");
  }
  const auto subs = subcommands(app);
  out += std::string(subs.empty() ? "" : " \\fICOMMAND\\fR") + "\n.SH DESCRIPTION\n";
  if (node.path.empty())
    out +=
        "visiongen generates images and videos with diffusion models on the CPU,\n"
        "the same image as diffusers for the same seed. Each command has its own page,\n"
        ".BR visiongen\\-COMMAND (1);\n"
        "\\fBvisiongen\\fR \\fICOMMAND\\fR \\fB\\-\\-help\\fR prints the same options.\n";
  else
    out += block(desc);
  if (!positionals.empty()) out += ".SH ARGUMENTS\n";
  for (const CLI::Option* p : positionals) out += option_entry(*p);
  out += ".SH OPTIONS\n";
  for (const CLI::Option* o :
       app.get_options([](const CLI::Option* o) { return o->nonpositional() && !o->get_group().empty(); }))
    out += option_entry(*o);
  std::vector<std::string> see = {"visiongen"};
  if (node.path.size() > 1) see.push_back(page_name({node.path.begin(), node.path.end() - 1}));
  if (!subs.empty()) out += ".SH COMMANDS\n";
  for (const auto& n : tree) {  // the root lists every command; others their own subcommands
    const bool below =
        n.path.size() > node.path.size() && std::equal(node.path.begin(), node.path.end(), n.path.begin());
    if (!below || (!node.path.empty() && n.path.size() != node.path.size() + 1)) continue;
    out += ".TP\n.B " + esc(join(n.path, " ")) + "\n" + esc(summary(n.app->get_description())) + "\n";
    if (n.path.size() == node.path.size() + 1) see.push_back(page_name(n.path));
  }
  if (node.path.empty()) {
    out += ".SH ENVIRONMENT\n";
    for (const auto& [var, what] : kEnvironment) out += ".TP\n.B " + esc(var) + "\n" + esc(what) + "\n";
    out += ".SH FILES\n";
    for (const auto& [file, what] : kFiles) out += ".TP\n.I " + esc(file) + "\n" + esc(what) + "\n";
  }
  out += ".SH SEE ALSO\n";
  std::string refs;
  for (const auto& s : see)
    if (s != name) refs += (refs.empty() ? "" : ",\n") + (".BR " + esc(s) + " (1)");
  return out + refs + "\n";
}

}  // namespace

void add_man(CLI::App& app) {
  auto path = std::make_shared<std::vector<std::string>>();
  auto dir = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand(
      "man", "print the man page (roff) of visiongen or of a subcommand, or write them all");
  cmd->group("");  // for packagers: not in --help
  cmd->add_option("subcommand", *path, "the subcommand, e.g. generate or hf pull (none: visiongen(1))");
  cmd->add_option("--output-dir", *dir,
                  "write visiongen.1 and visiongen-SUBCOMMAND.1 for every subcommand (or only the "
                  "page asked for) into this folder instead of printing");
  cmd->callback([&app, path, dir] {
    const auto tree = command_tree(app);
    const CommandNode* node = find_command(tree, *path);
    if (!node)
      return set_exit_code(report_error(
          {ErrorCode::kInvalidArgument, "no subcommand '" + join(*path, " ") + "'; see visiongen --help"}));
    if (dir->empty()) return static_cast<void>(std::fputs(render(tree, *node).c_str(), stdout));
    auto r = guard([&] {
      std::error_code ec;
      std::filesystem::create_directories(*dir, ec);  // a failure shows as the write's error
      for (const auto& n : tree) {
        if (!path->empty() && &n != node) continue;
        const std::string file = (std::filesystem::path(*dir) / (page_name(n.path) + ".1")).string();
        write_file_atomic(file, render(tree, n));
        std::printf("%s\n", file.c_str());
      }
      return 0;
    });
    if (!r) set_exit_code(report_error(r.error()));
  });
}

}  // namespace vg::cli
