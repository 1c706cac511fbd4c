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
#include <sstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace vg::test {

struct EmuFile {
  std::string path, data;
  bool lfs = false;
  // The Hub's scan result: safe, unscanned (no securityFileStatus), unsafe,
  // dangerous (pickle imports) or virus.
  std::string scan = "safe";
};
struct EmuRepo {
  std::string id, commit;
  std::vector<EmuFile> files;
  bool is_private = false, gated = false;
  std::string kind = "model", license = "mit", pipeline_tag = "text-to-image";
  int downloads = 0;
  std::vector<std::string> tags;
  std::map<int, std::pair<std::string, std::vector<EmuFile>>> prs;  // number -> (commit, files)
  // the files at a revision (main, HEAD, the commit, refs/pr/N or its commit); null when unknown
  const std::vector<EmuFile>* files_at(const std::string& rev, std::string* sha) const {
    if (rev == "main" || rev == "HEAD" || rev == commit) return *sha = commit, &files;
    for (const auto& [n, pr] : prs)
      if (rev == "refs/pr/" + std::to_string(n) || rev == pr.first) return *sha = pr.first, &pr.second;
    return nullptr;
  }
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
  std::atomic<int> api_ratelimit_429{0};  // next API revision requests answer 429 with RateLimit t=1 (and Retry-After 5)
  std::atomic<size_t> cut_after{0};  // next CDN GET stops after this many bytes (0 = off)
  std::atomic<int> slow_ms{0};       // CDN sends 64 KB per this many ms (0 = full speed)
  std::atomic<int> inflight{0}, max_inflight{0};
  std::mutex mu;
  std::vector<std::string> cdn_authorization;  // Authorization headers the CDN saw
  std::map<std::string, std::string> lfs_store;  // sha256 -> bytes uploaded
  std::map<std::string, std::map<int, std::string>> parts;
  std::atomic<int> lfs_puts{0}, part_puts{0}, commits{0};
  std::vector<std::string> last_commit_paths;
  size_t multipart_threshold = 1 << 20, chunk_size = 256 * 1024;

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
        bool tags_ok = true;
        for (size_t k = 0; k < q.get_param_value_count("filter"); ++k) {
          const std::string f = q.get_param_value("filter", k);
          tags_ok &= std::find(repo.tags.begin(), repo.tags.end(), f) != repo.tags.end();
        }
        if (!tags_ok) continue;
        out.push_back({{"id", id}, {"modelId", id}, {"downloads", repo.downloads}, {"likes", 0}, {"pipeline_tag", repo.pipeline_tag}, {"tags", repo.tags}});
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
    api_.Get(R"(/api/(models|datasets|spaces)/([^/]+)/([^/]+)/revision/(.+))", [this](const httplib::Request& q, httplib::Response& r) {
      ++api_requests;
      if (api_ratelimit_429 > 0) {
        --api_ratelimit_429;
        r.status = 429;
        r.set_header("RateLimit", "\"api\";r=0;t=1");
        r.set_header("RateLimit-Policy", "\"fixed window\";\"api\";q=500;w=300");
        r.set_header("Retry-After", "5");
        return;
      }
      const EmuRepo* repo = access(q, q.matches[2].str() + "/" + q.matches[3].str(), r);
      if (!repo) return;
      const std::string rev = q.matches[4];  // httplib has decoded %2F
      std::string sha;
      const auto* files = repo->files_at(rev, &sha);
      if (!files) return error(r, 404, "RevisionNotFound", "Invalid rev id: " + rev);
      const bool blobs = q.get_param_value("blobs") == "true";
      nlohmann::json sib = nlohmann::json::array();
      for (const auto& f : *files) {
        nlohmann::json e = {{"rfilename", f.path}};
        if (blobs) {
          e["size"] = f.data.size();
          e["blobId"] = git_sha1_of(f.data);
          if (f.lfs) e["lfs"] = {{"size", f.data.size()}, {"sha256", sha256_of(f.data)}, {"pointerSize", 128}};
        }
        sib.push_back(e);
      }
      r.set_content(nlohmann::json{{"id", repo->id}, {"sha", sha}, {"siblings", sib}, {"gated", repo->gated ? nlohmann::json("manual") : nlohmann::json(false)},
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
      std::string sha;
      const auto* files = repo->files_at(q.matches[3], &sha);
      if (!files) return error(r, 404, "RevisionNotFound", "Invalid rev id: " + q.matches[3].str());
      for (const auto& f : *files) {
        if (f.path != path) continue;
        r.set_header("X-Repo-Commit", sha);
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
      r.set_header("X-Repo-Commit", sha);
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
      for (auto& [id, repo] : repos) {
        for (auto& f : repo.files)
          if (f.lfs && sha256_of(f.data) == q.matches[1]) data = &f.data;
        for (auto& [n, pr] : repo.prs)
          for (auto& f : pr.second)
            if (f.lfs && sha256_of(f.data) == q.matches[1]) data = &f.data;
      }
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
    api_.Post(R"(/api/(models|datasets|spaces)/([^/]+)/([^/]+)/paths-info/(.+))", [this](const httplib::Request& q, httplib::Response& r) {
      ++api_requests;
      const EmuRepo* repo = access(q, q.matches[2].str() + "/" + q.matches[3].str(), r);
      if (!repo) return;
      std::string sha;
      const auto* files = repo->files_at(q.matches[4], &sha);
      if (!files) return error(r, 404, "RevisionNotFound", "Invalid rev id: " + q.matches[4].str());
      std::vector<std::string> paths;  // JSON (JS) or form (Python)
      bool expand = false;
      auto j = nlohmann::json::parse(q.body, nullptr, false);
      if (j.is_object()) {
        for (const auto& p : j.value("paths", nlohmann::json::array())) paths.push_back(p);
        expand = j.value("expand", false);
      } else {
        for (size_t k = 0; k < q.get_param_value_count("paths"); ++k) paths.push_back(q.get_param_value("paths", k));
        expand = q.get_param_value("expand") == "true";
      }
      nlohmann::json out = nlohmann::json::array();
      for (const auto& want : paths)
        for (const auto& f : *files) {
          if (f.path != want) continue;  // unknown paths are silently omitted
          nlohmann::json e = {{"type", "file"}, {"oid", git_sha1_of(f.data)}, {"size", f.data.size()}, {"path", f.path}};
          if (f.lfs) e["lfs"] = {{"oid", sha256_of(f.data)}, {"size", f.data.size()}, {"pointerSize", 128}};
          if (expand && f.scan != "unscanned") {
            nlohmann::json st = {{"status", f.scan == "safe" ? "safe" : "unsafe"},
                                 {"avScan", {{"virusFound", f.scan == "virus"}, {"virusNames", f.scan == "virus" ? nlohmann::json{"Eicar-Test-Signature"} : nlohmann::json::array()}}},
                                 {"pickleImportScan", nullptr}};
            if (f.scan == "dangerous") {
              st["status"] = "safe";  // only the pickle scan says it: the client must look there too
              st["pickleImportScan"] = {{"highestSafetyLevel", "dangerous"}, {"imports", {{{"module", "os"}, {"name", "system"}, {"safety", "dangerous"}}}}};
            }
            e["securityFileStatus"] = st;
          }
          out.push_back(e);
        }
      r.set_content(out.dump(), "application/json");
    });
    api_.Post("/api/repos/create", [this](const httplib::Request& q, httplib::Response& r) {
      ++api_requests;
      if (q.get_header_value("Authorization") != "Bearer " + good_token) return error(r, 401, "", "Invalid credentials in Authorization header");
      auto b = nlohmann::json::parse(q.body);
      const std::string id = b.value("organization", "alice") + "/" + b.value("name", "");
      if (repos.count(id)) return error(r, 409, "", "You already created this model repo");
      EmuRepo repo{id, sha256_of(id).substr(0, 40), {{".gitattributes", "*.safetensors filter=lfs diff=lfs merge=lfs -text\n", false}}};
      repo.is_private = b.value("private", false);
      repos[id] = repo;
      r.set_content(nlohmann::json{{"url", endpoint() + "/" + id}}.dump(), "application/json");
    });
    api_.Post(R"(/api/models/([^/]+)/([^/]+)/preupload/([^/]+))", [this](const httplib::Request& q, httplib::Response& r) {
      ++api_requests;
      const EmuRepo* repo = access(q, q.matches[1].str() + "/" + q.matches[2].str(), r);
      if (!repo) return;
      auto b = nlohmann::json::parse(q.body);
      nlohmann::json out = nlohmann::json::array();
      for (const auto& f : b["files"]) {
        const std::string sample = f.value("sample", "");
        const bool lfs = f.value("size", 0) > (10 << 20) || base64_has_nul(sample) || f["path"].get<std::string>().find(".safetensors") != std::string::npos;
        nlohmann::json oid = nullptr;
        for (const auto& e : repo->files)
          if (e.path == f["path"]) oid = e.lfs ? sha256_of(e.data) : git_sha1_of(e.data);
        out.push_back({{"path", f["path"]}, {"uploadMode", lfs ? "lfs" : "regular"}, {"shouldIgnore", false}, {"oid", oid}});
      }
      r.set_content(nlohmann::json{{"files", out}, {"commitOid", repo->commit}}.dump(), "application/json");
    });
    api_.Post(R"(/([^/]+)/([^/]+)\.git/info/lfs/objects/batch)", [this](const httplib::Request& q, httplib::Response& r) {
      ++api_requests;
      auto b = nlohmann::json::parse(q.body);
      nlohmann::json objs = nlohmann::json::array();
      const std::string cdn = "http://127.0.0.1:" + std::to_string(cdn_port);
      for (const auto& o : b["objects"]) {
        const std::string oid = o["oid"];
        const size_t size = o["size"];
        nlohmann::json e = {{"oid", oid}, {"size", size}, {"authenticated", true}};
        std::lock_guard<std::mutex> l(mu);
        if (!lfs_store.count(oid)) {
          if (size > multipart_threshold) {
            nlohmann::json h = {{"chunk_size", std::to_string(chunk_size)}};
            for (size_t k = 1; k <= (size + chunk_size - 1) / chunk_size; ++k) {
              char key[8];
              std::snprintf(key, sizeof key, "%05zu", k);
              h[key] = cdn + "/upload/" + oid + "/part/" + std::to_string(k);
            }
            e["actions"] = {{"upload", {{"href", cdn + "/upload/" + oid + "/complete"}, {"header", h}}}};
          } else {
            e["actions"] = {{"upload", {{"href", cdn + "/upload/" + oid}, {"header", nlohmann::json::object()}}},
                            {"verify", {{"href", endpoint() + "/lfs-verify"}, {"header", nlohmann::json::object()}}}};
          }
        }
        objs.push_back(e);
      }
      r.set_content(nlohmann::json{{"transfer", "basic"}, {"objects", objs}}.dump(), "application/vnd.git-lfs+json");
    });
    api_.Post("/lfs-verify", [this](const httplib::Request& q, httplib::Response& r) {
      auto b = nlohmann::json::parse(q.body);
      std::lock_guard<std::mutex> l(mu);
      r.status = lfs_store.count(b.value("oid", "")) ? 200 : 404;
    });
    cdn_.Put(R"(/upload/([0-9a-f]{64}))", [this](const httplib::Request& q, httplib::Response& r) {
      ++lfs_puts;
      if (!q.get_header_value("Authorization").empty()) return error(r, 400, "", "presigned URLs take no Authorization");
      if (sha256_of(q.body) != q.matches[1]) return error(r, 400, "", "content does not match the oid");
      std::lock_guard<std::mutex> l(mu);
      lfs_store[q.matches[1]] = q.body;
    });
    cdn_.Put(R"(/upload/([0-9a-f]{64})/part/(\d+))", [this](const httplib::Request& q, httplib::Response& r) {
      ++part_puts;
      std::lock_guard<std::mutex> l(mu);
      parts[q.matches[1]][std::stoi(q.matches[2])] = q.body;
      r.set_header("ETag", "\"" + sha256_of(q.body).substr(0, 16) + "\"");
    });
    cdn_.Post(R"(/upload/([0-9a-f]{64})/complete)", [this](const httplib::Request& q, httplib::Response& r) {
      auto b = nlohmann::json::parse(q.body);
      std::lock_guard<std::mutex> l(mu);
      std::string all;
      for (const auto& p : b["parts"]) all += parts[q.matches[1]][p["partNumber"].get<int>()];
      if (sha256_of(all) != q.matches[1]) return error(r, 400, "", "assembled parts do not match the oid");
      lfs_store[q.matches[1]] = all;
    });
    api_.Post(R"(/api/models/([^/]+)/([^/]+)/commit/(.+))", [this](const httplib::Request& q, httplib::Response& r) {
      ++api_requests;
      auto it = repos.find(q.matches[1].str() + "/" + q.matches[2].str());
      if (it == repos.end()) return error(r, 404, "RepoNotFound", "Repository not found");
      if (q.get_header_value("Authorization") != "Bearer " + good_token) return error(r, 401, "", "Invalid credentials in Authorization header");
      EmuRepo& main_repo = it->second;
      const bool create_pr = q.get_param_value("create_pr") == "1";
      // a pull request starts from main's files and never changes main
      EmuRepo pr_view = main_repo;
      EmuRepo& repo = create_pr ? pr_view : main_repo;
      std::vector<std::string> paths;
      std::istringstream lines(q.body);
      std::string line;
      while (std::getline(lines, line)) {
        if (line.empty()) continue;
        auto e = nlohmann::json::parse(line);
        const auto& v = e["value"];
        if (e["key"] == "header") continue;
        EmuFile f;
        f.path = v["path"];
        if (e["key"] == "lfsFile") {
          std::lock_guard<std::mutex> l(mu);
          if (!lfs_store.count(v["oid"])) return error(r, 422, "", "LFS object " + v["oid"].get<std::string>() + " was never uploaded");
          f.data = lfs_store[v["oid"]];
          f.lfs = true;
        } else {
          f.data = b64decode(v["content"]);
        }
        paths.push_back(f.path);
        auto at = std::find_if(repo.files.begin(), repo.files.end(), [&](const EmuFile& x) { return x.path == f.path; });
        if (at != repo.files.end()) *at = f;
        else repo.files.push_back(f);
      }
      repo.commit = sha256_of(repo.commit + q.body).substr(0, 40);
      ++commits;
      last_commit_paths = paths;
      nlohmann::json res = {{"success", true}, {"commitOid", repo.commit}, {"commitUrl", endpoint() + "/" + repo.id + "/commit/" + repo.commit},
                            {"hookOutput", ""}};
      if (create_pr) {
        const int n = static_cast<int>(main_repo.prs.size()) + 1;
        main_repo.prs[n] = {repo.commit, repo.files};
        res["pullRequestUrl"] = endpoint() + "/" + repo.id + "/discussions/" + std::to_string(n);
      }
      r.set_content(res.dump(), "application/json");
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
  static std::string b64decode(const std::string& in) {
    static const std::string t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    int val = 0, bits = -8;
    for (char c : in) {
      const size_t pos = t.find(c);
      if (pos == std::string::npos) break;
      val = (val << 6) + static_cast<int>(pos);
      bits += 6;
      if (bits >= 0) {
        out += static_cast<char>((val >> bits) & 0xFF);
        bits -= 8;
      }
    }
    return out;
  }
  static bool base64_has_nul(const std::string& b) { return b64decode(b).find('\0') != std::string::npos; }
  static void error(httplib::Response& r, int status, const std::string& code, const std::string& msg) {
    r.status = status;
    if (!code.empty()) r.set_header("X-Error-Code", code);
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
