// Names that requests may use for files on the server: a plain name (no
// folders, no "..") looked up inside configured folders, where a symlink
// counts only if it stays inside its folder.
#pragma once
#include <string>
#include <vector>

namespace vg {

// True for a plain file/folder name: not empty, no '/', '\', "..", or control characters.
bool is_plain_name(const std::string& name);

// True when `path` (symlinks resolved) lies inside `dir` (symlinks resolved).
bool stays_inside(const std::string& path, const std::string& dir);

// The first `dir/name + ext` (exts tried in order) that exists and stays
// inside its dir; "" if none.
std::string find_inside(const std::vector<std::string>& dirs, const std::string& name,
                        const std::vector<std::string>& exts = {""});

}  // namespace vg
