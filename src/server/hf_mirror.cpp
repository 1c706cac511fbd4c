#include "server/hf_mirror.h"

#include <httplib.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/error.h"
#include "io/atomic_file.h"

namespace vg::server {

namespace fs = std::filesystem;

struct HfMirror::Impl {
  std::string cache, host;
  int port;
  httplib::Server http;
  std::thread thread;
};

namespace {

// models--org--name for kind "models" and id "org/name"; "" when unsafe.
std::string repo_dir(const std::string& cache, const std::string& kind, const std::string& org, const std::string& name) {
  for (const std::string& part : {org, name})
    if (part.empty() || part.find("..") != std::string::npos || part.find('/') != std::string::npos) return "";
  return cache + "/" + kind + "--" + org + "--" + name;
}

// A branch/tag from refs/, or a commit present in snapshots/.
std::string commit_of(const std::string& dir, const std::string& rev) {
  if (rev.find("..") != std::string::npos) return "";
  const std::string r = rev == "HEAD" ? "main" : rev;
  if (path_exists(dir + "/refs/" + r)) return read_file(dir + "/refs/" + r);
  if (is_directory(dir + "/snapshots/" + r)) return r;
  return "";
}

void not_found(httplib::Response& res, const std::string& code, const std::string& msg) {
  res.status = 404;
  res.set_header("X-Error-Code", code);
  res.set_header("X-Error-Message", msg);
  res.set_content(nlohmann::json{{"error", msg}}.dump(), "application/json");
}

}  // namespace

HfMirror::HfMirror(std::string cache_dir, std::string host, int port) : impl_(std::make_unique<Impl>()) {
  impl_->cache = std::move(cache_dir);
  impl_->host = std::move(host);
  impl_->port = port;
  auto& s = impl_->http;
  const std::string cache = impl_->cache;
  s.Get(R"(/api/(models|datasets|spaces)/([^/]+)/([^/]+)/revision/([^/]+))", [cache](const httplib::Request& q, httplib::Response& res) {
    const std::string dir = repo_dir(cache, q.matches[1], q.matches[2], q.matches[3]);
    if (dir.empty() || !is_directory(dir)) return not_found(res, "RepoNotFound", "Repository not found");
    const std::string commit = commit_of(dir, q.matches[4]);
    if (commit.empty()) return not_found(res, "RevisionNotFound", "Invalid rev id: " + q.matches[4].str());
    nlohmann::json sib = nlohmann::json::array();
    const fs::path snap = fs::path(dir) / "snapshots" / commit;
    for (const auto& f : fs::recursive_directory_iterator(snap)) {
      if (fs::is_directory(f.path())) continue;
      nlohmann::json e = {{"rfilename", f.path().lexically_relative(snap).generic_string()}};  // not through the link
      if (q.get_param_value("blobs") == "true") e["size"] = fs::file_size(f.path());
      sib.push_back(e);
    }
    res.set_content(nlohmann::json{{"id", q.matches[2].str() + "/" + q.matches[3].str()}, {"sha", commit}, {"siblings", sib}}.dump(),
                    "application/json");
  });
  s.Get(R"(/(?:(datasets|spaces)/)?([^/]+)/([^/]+)/resolve/([^/]+)/(.+))", [cache](const httplib::Request& q, httplib::Response& res) {
    const std::string kind = q.matches[1].length() ? q.matches[1].str() : "models";
    const std::string dir = repo_dir(cache, kind, q.matches[2], q.matches[3]);
    if (dir.empty() || !is_directory(dir)) return not_found(res, "RepoNotFound", "Repository not found");
    const std::string commit = commit_of(dir, q.matches[4]);
    if (commit.empty()) return not_found(res, "RevisionNotFound", "Invalid rev id: " + q.matches[4].str());
    const std::string path = q.matches[5];
    const fs::path file = fs::path(dir) / "snapshots" / commit / path;
    res.set_header("X-Repo-Commit", commit);
    if (path.find("..") != std::string::npos || !fs::is_regular_file(file)) return not_found(res, "EntryNotFound", path + " does not exist");
    // the blob's name is the etag the official clients name their blobs after
    const std::string etag = fs::is_symlink(file) ? fs::read_symlink(file).filename().string() : "";
    if (etag.size() == 64) res.set_header("X-Linked-Etag", "\"" + etag + "\"");
    if (!etag.empty()) res.set_header("ETag", "\"" + etag + "\"");
    res.set_header("Accept-Ranges", "bytes");
    res.set_content(read_file(file.string()), "application/octet-stream");
  });
}

HfMirror::~HfMirror() { stop(); }

Result<int> HfMirror::start() {
  const int port = impl_->port == 0 ? impl_->http.bind_to_any_port(impl_->host)
                                    : (impl_->http.bind_to_port(impl_->host, impl_->port) ? impl_->port : -1);
  if (port <= 0) return Error{ErrorCode::kIoError, "cannot listen on " + impl_->host + ":" + std::to_string(impl_->port)};
  impl_->thread = std::thread([this] { impl_->http.listen_after_bind(); });
  return port;
}

void HfMirror::stop() {
  if (!impl_) return;
  impl_->http.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

}  // namespace vg::server
