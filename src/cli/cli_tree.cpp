#include "cli/cli_tree.h"

#include <algorithm>
#include <sstream>

namespace vg::cli {

namespace {

void walk(CLI::App& app, std::vector<std::string> path, std::vector<CommandNode>* out) {
  out->push_back({path, &app});
  for (CLI::App* sub : subcommands(app)) {
    path.push_back(sub->get_name());
    walk(*sub, path, out);
    path.pop_back();
  }
}

std::vector<std::string> name_words(const CLI::Option& o) {
  std::string name = o.get_lnames().empty() ? o.get_name() : o.get_lnames().front();
  std::replace(name.begin(), name.end(), '_', '-');
  std::vector<std::string> words;
  std::stringstream ss(name);
  for (std::string w; std::getline(ss, w, '-');)
    if (!w.empty()) words.push_back(w);
  return words;
}

}  // namespace

std::vector<CLI::App*> subcommands(CLI::App& app) {
  return app.get_subcommands([](CLI::App*) { return true; });
}

std::vector<CommandNode> command_tree(CLI::App& root) {
  std::vector<CommandNode> out;
  walk(root, {}, &out);
  return out;
}

const CommandNode* find_command(const std::vector<CommandNode>& tree, const std::vector<std::string>& path) {
  for (const auto& n : tree)
    if (n.path == path) return &n;
  return nullptr;
}

std::string join(const std::vector<std::string>& words, const std::string& sep) {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : sep) + w;
  return out;
}

std::vector<std::string> option_names(const CLI::Option& o) {
  std::vector<std::string> names;
  for (const auto& s : o.get_snames()) names.push_back("-" + s);
  for (const auto& l : o.get_lnames()) names.push_back("--" + l);
  if (names.empty()) names.push_back(o.get_name());
  return names;
}

bool takes_value(const CLI::Option& o) { return o.get_items_expected_max() > 0; }

std::vector<std::string> option_choices(const CLI::Option& o) {
  const std::string t = o.get_type_name();
  const size_t open = t.find(":{"), close = t.find('}', open);
  if (open == std::string::npos || close == std::string::npos) return {};
  std::vector<std::string> out;
  std::stringstream ss(t.substr(open + 2, close - open - 2));
  for (std::string c; std::getline(ss, c, ',');)
    if (!c.empty()) out.push_back(c);
  return out;
}

std::string option_type(const CLI::Option& o) {
  const std::string t = o.get_type_name();
  return t.substr(0, t.find(':'));
}

bool takes_path(const CLI::Option& o) {
  static const std::vector<std::string> kPathWords = {
      "model",   "image",  "mask",        "output",  "input",  "file",      "files",
      "dir",     "folder", "vae",         "lora",    "config", "tokenizer", "tokenizers",
      "refiner", "path",   "transformer", "encoder", "clip",   "t5",        "unet"};
  if (!takes_value(o) || option_type(o) != "TEXT" || !option_choices(o).empty()) return false;
  const auto words = name_words(o);
  if (std::find(words.begin(), words.end(), "tiling") != words.end())
    return false;  // --vae-tiling auto|on|off
  for (const auto& w : words)
    if (std::find(kPathWords.begin(), kPathWords.end(), w) != kPathWords.end()) return true;
  return false;
}

std::string summary(const std::string& text) { return text.substr(0, text.find('\n')); }

}  // namespace vg::cli
