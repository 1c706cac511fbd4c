// `visiongen man` and `visiongen completion`: generated from the option tree,
// so they list what --help lists and what the params table declares.
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "io/atomic_file.h"
#include "test_util.h"
#include "visiongen/params.h"

namespace vg {
namespace {

namespace fs = std::filesystem;

test::CliResult shell(const std::string& cmd) {
  FILE* p = popen(("bash -c '" + cmd + "' 2>&1").c_str(), "r");
  std::string out;
  std::array<char, 4096> buf;
  for (size_t n; (n = fread(buf.data(), 1, buf.size(), p)) > 0;) out.append(buf.data(), n);
  const int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

bool have(const std::string& tool) { return shell("command -v " + tool + " >/dev/null").code == 0; }

std::string tmpdir(const std::string& name) {
  const fs::path d = fs::path(testing::TempDir()) / "vg_cli_docs" / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d.string();
}

// roff source back to text: the escapes the generator writes.
std::string unroff(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s.compare(i, 2, "\\-") == 0)
      out += '-', ++i;
    else if (s.compare(i, 2, "\\e") == 0)
      out += '\\', ++i;
    else if (s.compare(i, 2, "\\&") == 0)
      ++i;
    else
      out += s[i];
  }
  return out;
}

// Every subcommand path, found through --help ("Subcommands:" sections) and not the generator.
void help_tree(const std::string& path, std::vector<std::string>* out) {
  std::stringstream ss(test::run_cli(path + " --help").out);
  bool in_subs = false;
  std::vector<std::string> subs;
  for (std::string line; std::getline(ss, line);) {
    if (line.rfind("Subcommands:", 0) == 0)
      in_subs = true;
    else if (in_subs && line.rfind("  ", 0) == 0 && line.size() > 2 && line[2] != ' ')
      subs.push_back(line.substr(2, line.find(' ', 2) - 2));
    else if (!line.empty() && line[0] != ' ')
      in_subs = false;
  }
  for (const auto& s : subs) {
    const std::string child = path.empty() ? s : path + " " + s;  // a copy: pushing may move out's elements
    out->push_back(child);
    help_tree(child, out);
  }
}

TEST(CliDocs, GenerateManPageListsEveryParamFlagWithItsHelp) {
  auto r = test::run_cli("man generate");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out.rfind(".TH VISIONGEN\\-GENERATE 1 ", 0), 0u) << r.out.substr(0, 200);
  const std::string text = unroff(r.out);
  for (const auto& f : param_fields()) {
    EXPECT_NE(text.find(std::string("\\fB") + f.flag + "\\fR"), std::string::npos) << f.flag;
    EXPECT_NE(text.find(std::string("\n") + f.help + "\n"), std::string::npos) << f.flag << ": " << f.help;
  }
  EXPECT_NE(text.find("Default: 20."), std::string::npos);                            // --steps
  EXPECT_NE(text.find("One of: auto, latent2rgb, taesd, none."), std::string::npos);  // --preview
  EXPECT_EQ(test::run_cli("man no-such-command").code, 11);
}

TEST(CliDocs, ManPagesCoverEveryHelpSubcommandAndAreCleanRoff) {
  const std::string dir = tmpdir("man");
  auto r = test::run_cli("man --output-dir " + dir);
  ASSERT_EQ(r.code, 0) << r.out;
  std::vector<std::string> paths;
  help_tree("", &paths);
  ASSERT_GT(paths.size(), 20u);
  const std::string root = read_file(dir + "/visiongen.1");
  for (const char* var : {"VG_DATA_DIR", "VG_DEFAULT_MODEL", "VG_PRECISION", "VG_LORA_DIR",
                          "VG_TOKENIZER_DIR", "XDG_CACHE_HOME"})
    EXPECT_NE(root.find(var), std::string::npos) << var;
  EXPECT_NE(unroff(root).find("share/visiongen/models/visiongen-shapes"), std::string::npos);
  std::vector<std::string> pages = {dir + "/visiongen.1"};
  for (std::string p : paths) {
    EXPECT_NE(unroff(root).find(".B " + p + "\n"), std::string::npos) << p;
    for (char& c : p) c = c == ' ' ? '-' : c;
    pages.push_back(dir + "/visiongen-" + p + ".1");
    EXPECT_TRUE(fs::exists(pages.back())) << pages.back();
  }
  EXPECT_EQ(read_file(dir + "/visiongen-generate.1"), test::run_cli("man generate").out);
  const bool groff = have("groff"), man = have("man");
  if (!groff && !man) GTEST_SKIP() << "neither groff nor man is installed (Debian: groff-base)";
  for (const auto& page : pages) {
    if (!fs::exists(page)) continue;
    const std::string cmd =
        groff ? "groff -man -ww -z " + page : "man -l --warnings -E UTF-8 -Tutf8 " + page + " >/dev/null";
    auto g = shell(cmd);
    EXPECT_EQ(g.code, 0) << page << "\n" << g.out;
    EXPECT_EQ(g.out, "") << page;
  }
}

TEST(CliDocs, BashCompletionCompletesSubcommandsFlagsAndChoices) {
  const std::string dir = tmpdir("bash") + "/", file = dir + "visiongen";
  auto r = test::run_cli("completion bash");
  ASSERT_EQ(r.code, 0) << r.out;
  write_file_atomic(file, r.out);
  auto n = shell("bash -n " + file);
  ASSERT_EQ(n.code, 0) << n.out;
  auto complete = [&](const std::string& words) {
    const int cword = static_cast<int>(std::count(words.begin(), words.end(), ' '));
    return shell("source " + file + "; COMP_WORDS=(" + words + "); COMP_CWORD=" + std::to_string(cword) +
                 "; _visiongen; printf \"%s\\n\" \"${COMPREPLY[@]}\"")
        .out;
  };
  EXPECT_EQ(complete("visiongen gen"), "generate\n");
  EXPECT_EQ(complete("visiongen generate --ste"), "--steps\n");
  EXPECT_EQ(complete("visiongen generate --preview latent"), "latent2rgb\n");
  EXPECT_EQ(complete("visiongen hf cache pr"), "prune\n");
  EXPECT_EQ(complete("visiongen completion z"), "zsh\n");
  EXPECT_EQ(complete("visiongen generate -m " + dir + "visiong"), dir + "visiongen\n");  // a path option
}

TEST(CliDocs, ZshCompletionIsACompdefScriptWithEverySubcommand) {
  auto r = test::run_cli("completion zsh");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out.rfind("#compdef visiongen\n", 0), 0u);
  std::vector<std::string> paths;
  help_tree("", &paths);
  for (std::string p : paths) {
    const std::string name = p.substr(p.rfind(' ') + 1);
    EXPECT_NE(r.out.find("'" + name + ":"), std::string::npos) << p;  // in its parent's _describe list
    for (char& c : p) c = c == ' ' || c == '-' ? '_' : c;
    EXPECT_NE(r.out.find("_visiongen_" + p + "() {"), std::string::npos) << p;
  }
  EXPECT_NE(r.out.find("'--steps=[number of denoising steps (1-1000)]:INT: '"), std::string::npos);
  if (!have("zsh")) return;  // the syntax is checked where zsh is installed
  const std::string file = tmpdir("zsh") + "/_visiongen";
  write_file_atomic(file, r.out);
  auto n = shell("zsh -n " + file);
  EXPECT_EQ(n.code, 0) << n.out;
}

}  // namespace
}  // namespace vg
