// Atomic output: data goes to a file with no name (O_TMPFILE; a named temp
// beside the target where the file system lacks it), is flushed, then linked
// into place over the target. A failure (disk full, cancel) or a kill -9
// leaves nothing: a reader never sees a half-written output.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace vg {

class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile();  // without commit(): removes what was written
  void write(const void* data, size_t n);
  void write(std::string_view bytes) { write(bytes.data(), bytes.size()); }
  uint64_t written() const { return written_; }
  // Flushes to disk and moves the file to its path (replacing what was there).
  void commit();

 private:
  std::string path_, tmp_;  // tmp_ empty while the file is anonymous
  int fd_ = -1;
  bool committed_ = false;
  uint64_t written_ = 0;
  int delay_ms_ = 0;  // $VG_WRITE_DELAY_MS: slow chunked writes, for the kill tests
};

void write_file_atomic(const std::string& path, std::string_view bytes);

// Throws the error for a failed write/flush/rename of `path`: disk_full for
// ENOSPC/EDQUOT/EFBIG (with the path and what to do), io_error otherwise.
[[noreturn]] void fail_write(int err, const std::string& doing, const std::string& path);

// Removes named temp files ("NAME.tmp-PID-N") in `dir` left by writers that
// were killed (their process is gone); returns how many.
size_t remove_stale_temps(const std::string& dir);

std::string read_file(const std::string& path);
bool path_exists(const std::string& path);
bool is_directory(const std::string& path);

}  // namespace vg
