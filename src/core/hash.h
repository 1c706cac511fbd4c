// Hex digests used across the project: content ids (artifacts, job images),
// LFS object ids and git blob ids (Hub cache checks and pushes).
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace vg {

std::string to_hex(const unsigned char* bytes, size_t n);  // lowercase
std::string sha256_hex(std::string_view data);
// sha256 of a file's bytes from `offset` on ("" when it cannot be read).
std::string sha256_file_hex(const std::string& path, unsigned long long offset = 0);
// git's id of a file: sha1 of "blob <size>\0<content>".
std::string git_blob_sha1_hex(std::string_view content);

}  // namespace vg
