#include "io/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <atomic>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace vg {

void write_file_atomic(const std::string& path, std::string_view bytes) {
  // unique per process and call: concurrent writers of one path (threads
  // included) each rename a complete file; the last one wins
  static std::atomic<unsigned> counter{0};
  std::string tmp = path + ".tmp-" + std::to_string(getpid()) + "-" + std::to_string(counter++);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    fail(ErrorCode::kIoError, "cannot create '" + tmp + "': " + std::strerror(errno) +
                                  "; check that the folder exists and is writable");
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      fail(ErrorCode::kIoError, "writing '" + path + "' failed: " + std::strerror(err) +
                                    (err == ENOSPC ? "; free disk space and retry" : ""));
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    fail(ErrorCode::kIoError, "flushing '" + path + "' failed: " + std::strerror(err));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    fail(ErrorCode::kIoError, "cannot move output into place at '" + path + "': " +
                                  std::strerror(err));
  }
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(ErrorCode::kFileNotFound, "cannot open '" + path + "'; check the path");
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

bool path_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

bool is_directory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace vg
