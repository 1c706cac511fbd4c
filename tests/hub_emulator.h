// A Hugging Face Hub emulator for the tests: the real protocol over HTTP
// (revision info, /resolve with HEAD/GET, 302 to a CDN on another port for
// LFS files, Range/206, X-Error-Code errors) with fault injection.
#pragma once
#include <httplib.h>
#include <openssl/sha.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace vg::test {

struct EmuFile {
  std::string path, data;
  bool lfs = false;
};
struct EmuRepo {
  std::string id, commit;
  std::vector<EmuFile> files;
  bool is_private = false, gated = false;
  std::string kind = "model", license = "mit", pipeline_tag = "text-to-image";
  int downloads = 0;
};

inline std::string hex_of(const unsigned char* d, size_t n) {
  static const char* k = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) s += k[d[i] >> 4], s += k[d[i] & 15];
  return s;
}
inline std::string sha256_of(const std::string& s) {
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), d);
  return hex_of(d, sizeof d);
}
inline std::string git_sha1_of(const std::string& s) {
  const std::string obj = "blob " + std::to_string(s.size()) + std::string(1, '\0') + s;
  unsigned char d[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(obj.data()), obj.size(), d);
  return hex_of(d, sizeof d);
}

class HubEmulator {
 public:
  std::map<std::string, EmuRepo> repos;
  std::string good_token = "hf_good_token";
  std::atomic<int> api_requests{0}, cdn_requests{0};
  std::atomic<int> fail_429{0}, fail_500{0};
  std::atomic<size_t> cut_after{0};  // next CDN GET stops after this many bytes (0 = off)
  std::atomic<int> slow_ms{0};       // CDN sends 64 KB per this many ms (0 = full speed)
  std::atomic<int> inflight{0}, max_inflight{0};
  std::mutex mu;
  std::vector<std::string> cdn_authorization;  // Authorization headers the CDN saw

  HubEmulator() {
    api_.Get(R"(/api/(models|datasets|spaces))", [this](const httplib::Request& q, httplib::Response& r) {
      ++api_requests;
      const std::string kind = q.matches[1].str().substr(0, q.matches[1].str().size() - 1);
      const std::string text = q.get_param_value("search"), author = q.get_param_value("author");
      nlohmann::json out = nlohmann::json::array();
      for (const auto& [id, repo] : repos) {
        if (repo.kind != kind || repo.is_private) continue;
        if (!text.empty() && id.find(text) == std::string::npos) continue;
        if (!author.empty() && id.rfind(author + "/", 0) != 0) continue;
        out.push_back({{"id", id}, {"modelId", id}, {"downloads", repo.downloads}, {"likes", 0}, {"pipeline_tag", repo.pipeline_tag}});
      }
      if (q.get_param_value("sort") == "downloads")
        std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a["downloads"] > b["downloads"]; });
      const size_t limit = q.has_param("limit") ? std::stoul(q.get_param_value("limit")) : 1000;
      if (out.size() > limit) out.erase(out.begin() + static_cast<long>(limit), out.end());
      r.set_content(out.dump(), "application/json");
    });
    api_.Get("/api/whoami-v2", [this](const httplib::Request& q, httplib::Response& r) {
      ++api_requests;
      if (q.get_header_value("Authorization") != "Bearer " + good_token) {
        r.status = 401;
        r.set_header("X-Error-Message", "Invalid credentials in Authorization header");
        return;
      }
      r.set_content(R"({"type":"user","name":"alice","orgs":[]})", "application/json");
    });
    api_.Get(R"(/api/(models|datasets|spaces)/([^/]+)/([^/]+)/revision/([^/]+))", [this](const httplib::Request& q, httplib::Response& r) {
      ++api_requests;
      const EmuRepo* repo = access(q, q.matches[2].str() + "/" + q.matches[3].str(), r);
      if (!repo) return;
      const std::string rev = q.matches[4];
      if (rev != "main" && rev != "HEAD" && rev != repo->commit) return error(r, 404, "RevisionNotFound", "Invalid rev id: " + rev);
      const bool blobs = q.get_param_value("blobs") == "true";
      nlohmann::json sib = nlohmann::json::array();
      for (const auto& f : repo->files) {
        nlohmann::json e = {{"rfilename", f.path}};
        if (blobs) {
          e["size"] = f.data.size();
          e["blobId"] = git_sha1_of(f.data);
          if (f.lfs) e["lfs"] = {{"size", f.data.size()}, {"sha256", sha256_of(f.data)}, {"pointerSize", 128}};
        }
        sib.push_back(e);
      }
      r.set_content(nlohmann::json{{"id", repo->id}, {"sha", repo->commit}, {"siblings", sib}, {"gated", repo->gated ? nlohmann::json("manual") : nlohmann::json(false)},
                                   {"private", repo->is_private}, {"pipeline_tag", repo->pipeline_tag}, {"cardData", {{"license", repo->license}}},
                                   {"safetensors", {{"total", 1234}}}}
                        .dump(),
                    "application/json");
    });
    api_.Get(R"(/(?:datasets/|spaces/)?([^/]+)/([^/]+)/resolve/([^/]+)/(.+))", [this](const httplib::Request& q, httplib::Response& r) {
      ++api_requests;
      const EmuRepo* repo = access(q, q.matches[1].str() + "/" + q.matches[2].str(), r);
      if (!repo) return;
      const std::string path = q.matches[4];
      for (const auto& f : repo->files) {
        if (f.path != path) continue;
        r.set_header("X-Repo-Commit", repo->commit);
        if (f.lfs) {
          r.status = 302;
          r.set_header("Location", "http://127.0.0.1:" + std::to_string(cdn_port) + "/blob/" + sha256_of(f.data) + "?sig=x");
          r.set_header("X-Linked-Etag", "\"" + sha256_of(f.data) + "\"");
          r.set_header("X-Linked-Size", std::to_string(f.data.size()));
          r.set_header("ETag", "\"" + git_sha1_of("version https://git-lfs.github.com/spec/v1\n") + "\"");
          return;
        }
        r.set_header("ETag", "\"" + git_sha1_of(f.data) + "\"");
        r.set_header("Accept-Ranges", "bytes");
        r.set_content(f.data, "application/octet-stream");
        return;
      }
      r.set_header("X-Repo-Commit", repo->commit);
      error(r, 404, "EntryNotFound", path + " does not exist");
    });
    cdn_.Get(R"(/blob/([0-9a-f]{64}))", [this](const httplib::Request& q, httplib::Response& r) {
      ++cdn_requests;
      {
        std::lock_guard<std::mutex> l(mu);
        cdn_authorization.push_back(q.get_header_value("Authorization"));
      }
      if (fail_429 > 0) {
        --fail_429;
        r.status = 429;
        r.set_header("Retry-After", "1");
        return;
      }
      if (fail_500 > 0) {
        --fail_500;
        r.status = 500;
        return;
      }
      const std::string* data = nullptr;
      for (auto& [id, repo] : repos)
        for (auto& f : repo.files)
          if (f.lfs && sha256_of(f.data) == q.matches[1]) data = &f.data;
      if (!data) return error(r, 404, "EntryNotFound", "no such object");
      r.set_header("ETag", "\"" + sha256_of(*data) + "\"");
      const size_t cut = cut_after.exchange(0);
      if (cut > 0 && !q.has_header("Range")) {
        const std::string* d = data;
        r.set_content_provider(d->size(), "application/octet-stream",
                               [d, cut](size_t off, size_t len, httplib::DataSink& sink) {
                                 if (off >= cut) return false;  // drop the connection midway
                                 const size_t n = std::min(len, cut - off);
                                 sink.write(d->data() + off, n);
                                 return true;
                               });
        return;
      }
      if (slow_ms > 0 && !q.has_header("Range")) {
        const std::string* d = data;
        const int ms = slow_ms;
        const int now = ++inflight;
        for (int m = max_inflight; now > m && !max_inflight.compare_exchange_weak(m, now);) {
        }
        r.set_content_provider(
            d->size(), "application/octet-stream",
            [d, ms](size_t off, size_t len, httplib::DataSink& sink) {
              const size_t n = std::min<size_t>(len, 65536);
              std::this_thread::sleep_for(std::chrono::milliseconds(ms));
              sink.write(d->data() + off, n);
              return true;
            },
            [this](bool) { --inflight; });
        return;
      }
      r.set_content(*data, "application/octet-stream");  // httplib answers Range with 206
    });
    api_port = api_.bind_to_any_port("127.0.0.1");
    cdn_port = cdn_.bind_to_any_port("127.0.0.1");
    t1_ = std::thread([this] { api_.listen_after_bind(); });
    t2_ = std::thread([this] { cdn_.listen_after_bind(); });
  }
  ~HubEmulator() {
    api_.stop();
    cdn_.stop();
    t1_.join();
    t2_.join();
  }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(api_port); }
  int api_port = 0, cdn_port = 0;

 private:
  static void error(httplib::Response& r, int status, const std::string& code, const std::string& msg) {
    r.status = status;
    r.set_header("X-Error-Code", code);
    r.set_header("X-Error-Message", msg);
    r.set_content(nlohmann::json{{"error", msg}}.dump(), "application/json");
  }
  const EmuRepo* access(const httplib::Request& q, const std::string& id, httplib::Response& r) {
    auto it = repos.find(id);
    const std::string auth = q.get_header_value("Authorization");
    const bool authed = auth == "Bearer " + good_token;
    if (it == repos.end() || (it->second.is_private && !authed)) {
      error(r, authed ? 404 : 401, "RepoNotFound", "Repository not found");
      return nullptr;
    }
    if (it->second.gated && !authed) {
      error(r, 401, "GatedRepo", "Access to model " + id + " is restricted");
      return nullptr;
    }
    return &it->second;
  }
  httplib::Server api_, cdn_;
  std::thread t1_, t2_;
};

}  // namespace vg::test
