// Shared by the libFuzzer harnesses: the input as a file path (the readers
// map files), and the rule that only VgException is an expected outcome.
// Any other exception escapes the harness, and libFuzzer reports it as a
// crash: user input must end in a clear vg error, never anything else.
#pragma once
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

namespace vg::fuzz {

// The bytes as the contents of an in-memory file, named /proc/self/fd/N
// (one memfd per process, rewritten per input).
inline std::string as_file(const uint8_t* data, size_t size) {
  static const int fd = memfd_create("vg-fuzz", 0);
  if (fd < 0) std::abort();
  if (ftruncate(fd, 0) != 0 || (size && pwrite(fd, data, size, 0) != static_cast<ssize_t>(size))) std::abort();
  return "/proc/self/fd/" + std::to_string(fd);
}

inline std::string as_text(const uint8_t* data, size_t size) {
  return std::string(reinterpret_cast<const char*>(data), size);
}

}  // namespace vg::fuzz
