#include "cli/commands.h"

namespace vg::cli {
void add_bench(CLI::App& app) { (void)app; }
}  // namespace vg::cli
