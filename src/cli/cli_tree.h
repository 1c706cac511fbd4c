// The CLI's own option tree, walked for what is generated from it (man pages,
// shell completions), so those never drift from `--help`.
#pragma once
#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace vg::cli {

struct CommandNode {
  std::vector<std::string> path;  // {} for the root, {"hf", "cache", "ls"} for `visiongen hf cache ls`
  CLI::App* app;
};

// The root and every subcommand below it, depth first, in registration order.
std::vector<CommandNode> command_tree(CLI::App& root);
// The direct subcommands of `app` (hidden ones too).
std::vector<CLI::App*> subcommands(CLI::App& app);
// "hf cache ls" -> that node; nullptr when the path names no subcommand.
const CommandNode* find_command(const std::vector<CommandNode>& tree, const std::vector<std::string>& path);
std::string join(const std::vector<std::string>& words, const std::string& sep);
// Flags first (-h, --help) or the positional name.
std::vector<std::string> option_names(const CLI::Option& o);
bool takes_value(const CLI::Option& o);
// The fixed values a CLI::IsMember check lists ("TEXT:{a,b}" -> {a, b}); empty when none.
std::vector<std::string> option_choices(const CLI::Option& o);
// The placeholder shown for the value ("TEXT", "INT"), without the choices.
std::string option_type(const CLI::Option& o);
// Whether the value names a file or folder (by the option's name: --model, --mask, --output-dir, ...).
bool takes_path(const CLI::Option& o);
// The first line of a description.
std::string summary(const std::string& text);

}  // namespace vg::cli
