#include "io/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/error.h"

namespace vg {

namespace {

std::string parent_dir(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// "NAME.tmp-PID-N": unique per process and call, so concurrent writers of one
// path (threads included) each move a complete file; the last one wins.
std::string temp_name(const std::string& path) {
  static std::atomic<unsigned> counter{0};
  return path + ".tmp-" + std::to_string(getpid()) + "-" + std::to_string(counter++);
}

}  // namespace

void fail_write(int err, const std::string& doing, const std::string& path) {
  if (err == ENOSPC || err == EDQUOT || err == EFBIG)
    fail(ErrorCode::kDiskFull, doing + " '" + path + "' failed: " + std::strerror(err) +
                                   "; free space on that disk (or choose another folder) and retry");
  fail(ErrorCode::kIoError, doing + " '" + path + "' failed: " + std::strerror(err) +
                                "; check that the folder exists, is writable and the disk is healthy");
}

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  if (const char* d = std::getenv("VG_WRITE_DELAY_MS")) delay_ms_ = std::atoi(d);
  fd_ = ::open(parent_dir(path_).c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);  // umask applies
  if (fd_ >= 0) return;
  tmp_ = temp_name(path_);  // file systems without O_TMPFILE
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd_ < 0) fail_write(errno, "creating", path_);
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_ && !tmp_.empty()) ::unlink(tmp_.c_str());
}

void AtomicFile::write(const void* data, size_t n) {
  const auto* b = static_cast<const char*>(data);
  const size_t chunk = delay_ms_ > 0 ? size_t{1} << 16 : n;
  for (size_t done = 0; done < n;) {
    const ssize_t k = ::write(fd_, b + done, std::min(chunk, n - done));
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) fail_write(k < 0 ? errno : ENOSPC, "writing", path_);
    done += static_cast<size_t>(k);
    written_ += static_cast<uint64_t>(k);
    if (delay_ms_ > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms_));
  }
}

void AtomicFile::commit() {
  if (::fsync(fd_) != 0) fail_write(errno, "flushing", path_);
  if (tmp_.empty()) {  // give the anonymous file a name beside the target, then move it over
    const std::string proc = "/proc/self/fd/" + std::to_string(fd_);
    tmp_ = temp_name(path_);
    if (::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, tmp_.c_str(), AT_SYMLINK_FOLLOW) != 0) {
      const int err = errno;
      tmp_.clear();
      fail_write(err, "naming", path_);
    }
  }
  const int closed = ::close(fd_);
  fd_ = -1;
  if (closed != 0) fail_write(errno, "flushing", path_);
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) fail_write(errno, "moving into place", path_);
  committed_ = true;
  // make the rename itself durable
  const int dir = ::open(parent_dir(path_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) ::fsync(dir), ::close(dir);
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
  AtomicFile f(path);
  f.write(bytes);
  f.commit();
}

size_t remove_stale_temps(const std::string& dir) {
  size_t removed = 0;
  std::error_code ec;
  for (const auto& f : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = f.path().filename().string();
    const size_t at = name.rfind(".tmp-");
    if (at == std::string::npos) continue;
    const long pid = std::strtol(name.c_str() + at + 5, nullptr, 10);
    if (pid <= 0) continue;  // not a name this writer makes
    const bool alive = pid == getpid() || ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
    if (alive) continue;  // its writer may still be at work
    removed += std::filesystem::remove(f.path(), ec) ? 1 : 0;
  }
  return removed;
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
