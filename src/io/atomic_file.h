// Atomic output: data goes to a temp file beside the target, is flushed, then
// renamed over it. A failure (disk full, cancel) removes the temp file, so a
// reader never sees a half-written output.
#pragma once
#include <string>
#include <string_view>

namespace vg {

void write_file_atomic(const std::string& path, std::string_view bytes);
std::string read_file(const std::string& path);
bool path_exists(const std::string& path);
bool is_directory(const std::string& path);

}  // namespace vg
