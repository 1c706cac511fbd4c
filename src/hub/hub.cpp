#include "hub/hub.h"

#include <fcntl.h>
#include <fnmatch.h>
#include <sys/file.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <ctime>
#include <map>
#include <mutex>
#include <optional>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/hash.h"
#include "core/error.h"
#include "hub/http.h"
#include "io/atomic_file.h"
#include "io/hf_cache.h"

namespace vg::hub {

namespace fs = std::filesystem;

HubConfig HubConfig::from_env() {
  HubConfig c;
  const char* ep = std::getenv("HF_ENDPOINT");
  c.endpoint = ep && *ep ? ep : "https://huggingface.co";
  while (!c.endpoint.empty() && c.endpoint.back() == '/') c.endpoint.pop_back();
  if (const char* t = std::getenv("HF_TOKEN"); t && *t) {
    c.token = t;
  } else {
    std::string path;
    if (const char* p = std::getenv("HF_TOKEN_PATH"); p && *p) path = p;
    else if (const char* h = std::getenv("HF_HOME"); h && *h) path = std::string(h) + "/token";
    else if (const char* home = std::getenv("HOME"); home) path = std::string(home) + "/.cache/huggingface/token";
    if (!path.empty() && path_exists(path)) {
      c.token = read_file(path);
      while (!c.token.empty() && (c.token.back() == '\n' || c.token.back() == '\r' || c.token.back() == ' ')) c.token.pop_back();
    }
  }
  c.cache_dir = hf_cache_dir();
  const char* off = std::getenv("HF_HUB_OFFLINE");
  c.offline = off && (std::string(off) == "1" || std::string(off) == "true" || std::string(off) == "TRUE");
  return c;
}

bool unsafe_path(const std::string& p) {
  static const char* kExt[] = {".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib", ".exe", ".dll", ".so", ".sh", ".bat"};
  for (const char* e : kExt) {
    const std::string ext = e;
    if (p.size() >= ext.size() && p.compare(p.size() - ext.size(), ext.size(), ext) == 0) return true;
  }
  return false;
}

namespace {

std::string strip_etag(std::string e) {
  if (e.rfind("W/", 0) == 0) e = e.substr(2);
  e.erase(std::remove(e.begin(), e.end(), '"'), e.end());
  return e;
}

[[noreturn]] void raise_for(const HttpResponse& r, const std::string& what) {
  auto h = [&](const char* k) { auto it = r.headers.find(k); return it == r.headers.end() ? std::string() : it->second; };
  const std::string code = h("x-error-code"), msg = h("x-error-message");
  const std::string detail = msg.empty() ? std::string() : " (" + msg + ")";
  if (code == "RepoNotFound" || (r.status == 404 && code.empty() && what.find("/api/") != std::string::npos))
    fail(ErrorCode::kFileNotFound, what + ": repository not found, or private and your token cannot see it" + detail +
                                       "; check the id, or set HF_TOKEN");
  if (code == "GatedRepo")
    fail(ErrorCode::kUnauthorized, what + ": this repository is gated" + detail +
                                       "; request access on its Hub page, then set HF_TOKEN to a token of that account");
  if (code == "RevisionNotFound") fail(ErrorCode::kFileNotFound, what + ": revision not found" + detail);
  if (code == "EntryNotFound") fail(ErrorCode::kFileNotFound, what + ": no such file in the repository" + detail);
  if (r.status == 401) fail(ErrorCode::kUnauthorized, what + ": the token was refused" + detail + "; check HF_TOKEN");
  if (r.status == 403) fail(ErrorCode::kUnauthorized, what + ": forbidden" + detail + "; make sure your token has the right permissions");
  if (r.status == 429) fail(ErrorCode::kBusy, what + ": rate limited by the Hub" + detail + "; retry later");
  if (r.status == 0) fail(ErrorCode::kIoError, what + ": network error: " + r.error);
  fail(ErrorCode::kIoError, what + ": HTTP " + std::to_string(r.status) + detail);
}

std::vector<std::string> auth_headers(const HubConfig& c) {
  std::vector<std::string> h = {"User-Agent: visiongen/0.1; hf_hub-compatible", "Accept-Encoding: identity"};
  if (!c.token.empty()) h.push_back("Authorization: Bearer " + c.token);
  return h;
}

bool selected(const std::string& p, const PullOptions& o) {
  bool inc = o.include.empty();
  for (const auto& g : o.include) inc |= fnmatch(g.c_str(), p.c_str(), 0) == 0;
  for (const auto& g : o.exclude)
    if (fnmatch(g.c_str(), p.c_str(), 0) == 0) return false;
  return inc;
}


// Exclusive advisory lock on .locks/<folder>/<etag>.lock while a blob is
// written, as huggingface_hub does; released on scope exit.
class BlobLock {
 public:
  explicit BlobLock(const fs::path& path) {
    std::error_code ec;
    fs::create_directories(path.parent_path(), ec);
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ >= 0 && ::flock(fd_, LOCK_EX) != 0) ::close(fd_), fd_ = -1;
  }
  ~BlobLock() {
    if (fd_ >= 0) ::flock(fd_, LOCK_UN), ::close(fd_);
  }
  BlobLock(const BlobLock&) = delete;
  BlobLock& operator=(const BlobLock&) = delete;

 private:
  int fd_ = -1;
};

// "this path does not exist at that commit", as the official client records it.
void touch_no_exist(const fs::path& base, const std::string& commit, const std::string& path) {
  if (commit.size() != 40 || path.find("..") != std::string::npos || path.empty() || path.front() == '/') return;
  std::error_code ec;
  const fs::path p = base / ".no_exist" / commit / path;
  fs::create_directories(p.parent_path(), ec);
  if (!fs::exists(p, ec)) std::fclose(std::fopen(p.c_str(), "wb"));
}

void write_cachedir_tag(const std::string& cache_dir) {
  const fs::path tag = fs::path(cache_dir) / "CACHEDIR.TAG";
  std::error_code ec;
  if (fs::exists(tag, ec)) return;
  fs::create_directories(cache_dir, ec);
  write_file_atomic(tag.string(),
                    "Signature: 8a477f597d28d172789f06886806bc55\n"
                    "# This file is a cache directory tag created by huggingface_hub.\n"
                    "# For information about cache directory tags, see:\n"
                    "#\thttp://www.brynosaurus.com/cachedir/\n");
}

// Per-path security entries (securityFileStatus) from paths-info with
// expand; an empty map when the endpoint does not exist (e.g. a mirror).
std::map<std::string, nlohmann::json> security_entries(const HubConfig& cfg, const std::string& kind, const std::string& repo,
                                                       const std::string& commit, const std::vector<std::string>& paths) {
  std::map<std::string, nlohmann::json> out;
  if (paths.empty()) return out;
  HttpRequest req{"POST", cfg.endpoint + "/api/" + kind + "s/" + repo + "/paths-info/" + url_quote(commit, false), auth_headers(cfg)};
  req.headers.push_back("Content-Type: application/json");
  req.body = nlohmann::json{{"paths", paths}, {"expand", true}}.dump();
  HttpResponse r = send_with_retries(req);
  if (r.status == 404 || r.status == 405 || r.status == 501) {
    if (r.headers.count("x-error-code") && r.headers["x-error-code"] != "EntryNotFound") raise_for(r, repo);
    return out;
  }
  if (r.status != 200) raise_for(r, repo);
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  if (!j.is_array()) return out;
  for (const auto& e : j)
    if (e.is_object() && e.contains("path") && e["path"].is_string()) out[e["path"].get<std::string>()] = e;
  return out;
}

}  // namespace

std::string scan_verdict(const nlohmann::json& e) {
  if (!e.is_object() || !e.contains("securityFileStatus") || !e["securityFileStatus"].is_object()) return "unknown";
  const auto& s = e["securityFileStatus"];
  if (s.contains("avScan") && s["avScan"].is_object() && s["avScan"].value("virusFound", false)) {
    std::string names;
    for (const auto& n : s["avScan"].value("virusNames", nlohmann::json::array()))
      if (n.is_string()) names += (names.empty() ? "" : ", ") + n.get<std::string>();
    return "virus found" + (names.empty() ? std::string() : " (" + names + ")");
  }
  if (s.contains("pickleImportScan") && s["pickleImportScan"].is_object() &&
      s["pickleImportScan"].value("highestSafetyLevel", "") == "dangerous")
    return "dangerous pickle imports";
  const std::string status = s.contains("status") && s["status"].is_string() ? s["status"].get<std::string>() : "";
  if (status != "safe") return "scan status '" + (status.empty() ? std::string("missing") : status) + "'";
  return "safe";
}

bool in_split(const std::string& path, const std::string& split) {
  if (split.empty()) return true;
  size_t start = 0;
  for (size_t slash; (slash = path.find('/', start)) != std::string::npos; start = slash + 1)
    if (path.compare(start, slash - start, split) == 0 && slash - start == split.size()) return true;
  const std::string file = path.substr(start);
  if (file.rfind(split, 0) != 0) return false;
  if (file.size() == split.size()) return true;
  const char next = file[split.size()];
  return next == '-' || next == '.' || next == '_';
}

PullReport pull_model(const HubConfig& cfg, const std::string& repo, const PullOptions& o) {
  return pull_repo(cfg, "model", repo, o);
}

PullReport pull_repo(const HubConfig& cfg, const std::string& kind, const std::string& repo, const PullOptions& o) {
  if (!looks_like_repo_ref(repo) || repo.find('@') != std::string::npos)
    fail(ErrorCode::kInvalidArgument, "'" + repo + "' is not a Hub repository id (org/name)");
  if (kind != "model" && kind != "dataset" && kind != "space")
    fail(ErrorCode::kInvalidArgument, "repo kind '" + kind + "' must be model, dataset or space");
  const std::string api_kind = kind + "s", url_prefix = kind == "model" ? "" : kind + "s/";
  PullReport rep;
  rep.repo = repo;
  std::string folder = kind + "s--" + repo;
  folder.replace(folder.find('/'), 1, "--");
  const fs::path base = fs::path(cfg.cache_dir) / folder;
  if (cfg.offline) {
    std::optional<std::string> snap;
    const fs::path refs = base / "refs" / o.revision;
    const std::string commit = fs::exists(refs) ? read_file(refs.string()) : o.revision;
    if (fs::is_directory(base / "snapshots" / commit)) snap = (base / "snapshots" / commit).string();
    if (!snap) fail(ErrorCode::kModelNotAvailableOffline, repo + "@" + o.revision + " is not in the cache and HF_HUB_OFFLINE is set");
    rep.snapshot_dir = *snap;
    rep.commit = fs::path(*snap).filename().string();
    return rep;
  }
  const auto auth = auth_headers(cfg);
  // 1. the file list and commit of the revision
  const std::string info_url = cfg.endpoint + "/api/" + api_kind + "/" + repo + "/revision/" + url_quote(o.revision, false);
  HttpResponse info = send_with_retries({"GET", info_url, auth});
  if (info.status != 200) raise_for(info, repo);
  nlohmann::json j = nlohmann::json::parse(info.body, nullptr, false);
  if (j.is_discarded() || !j.contains("sha") || !j.contains("siblings")) fail(ErrorCode::kIoError, repo + ": the Hub answered an unexpected body");
  rep.commit = j["sha"];
  if (o.local_dir.empty() && !o.dry_run) {
    fs::create_directories(base / "blobs");
    fs::create_directories(base / "refs");
  }
  const fs::path snap = base / "snapshots" / rep.commit;
  rep.snapshot_dir = snap.string();
  std::vector<std::string> paths, listed;
  for (const auto& s : j["siblings"]) listed.push_back(s.value("rfilename", ""));
  if (!o.split.empty()) {  // the split's files, plus the card and metadata (never other splits' data)
    static const char* kData[] = {".parquet", ".csv", ".tsv", ".jsonl", ".json.gz", ".jsonl.gz", ".arrow", ".txt", ".tar", ".zip", ".webdataset"};
    auto is_data = [](const std::string& p) {
      for (const char* e : kData) {
        const std::string ext = e;
        if (p.size() >= ext.size() && p.compare(p.size() - ext.size(), ext.size(), ext) == 0) return true;
      }
      return false;
    };
    bool any = false;
    std::vector<std::string> kept;
    for (const auto& p : listed) {
      if (is_data(p) && !in_split(p, o.split)) continue;
      any |= is_data(p) && in_split(p, o.split);
      kept.push_back(p);
    }
    if (!any) {
      std::string found;
      for (const char* sp : {"train", "validation", "valid", "dev", "test"})
        if (std::any_of(listed.begin(), listed.end(), [&](const std::string& p) { return is_data(p) && in_split(p, sp); }))
          found += std::string(found.empty() ? "" : ", ") + sp;
      fail(ErrorCode::kFileNotFound, repo + ": no data files for split '" + o.split + "'" +
                                         (found.empty() ? std::string("") : "; splits found: " + found));
    }
    listed = kept;
  }
  for (const auto& path : listed) {
    if (path.empty() || path.find("..") != std::string::npos || path.front() == '/') continue;
    if (!selected(path, o)) continue;
    if (unsafe_path(path) && !o.allow_unsafe) {
      rep.skipped_unsafe.push_back(path);
      continue;
    }
    paths.push_back(path);
  }
  if (!o.files.empty()) {
    for (const auto& want : o.files)
      if (std::find(paths.begin(), paths.end(), want) == paths.end()) {
        const bool absent = std::find(listed.begin(), listed.end(), want) == listed.end();
        if (absent && o.local_dir.empty() && !o.dry_run) touch_no_exist(base, rep.commit, want);
        fail(ErrorCode::kFileNotFound, repo + ": no file '" + want + "' in the repository (or it is an unsafe format; see --allow-unsafe)");
      }
    paths = o.files;
  }
  if (!o.quantization.empty()) {
    auto lower = [](std::string x) { std::transform(x.begin(), x.end(), x.begin(), ::tolower); return x; };
    std::vector<std::string> kept, ggufs;
    for (const auto& p : paths) {
      if (lower(p).size() < 5 || lower(p).substr(lower(p).size() - 5) != ".gguf") {
        kept.push_back(p);
        continue;
      }
      ggufs.push_back(p);
      if (lower(p).find(lower(o.quantization)) != std::string::npos) kept.push_back(p);
    }
    if (std::none_of(kept.begin(), kept.end(), [&](const std::string& p) { return lower(p).find(".gguf") != std::string::npos; })) {
      std::string list;
      for (const auto& g : ggufs) list += " " + g;
      fail(ErrorCode::kFileNotFound, repo + ": no GGUF file for quantization " + o.quantization + "; the repository has:" + (list.empty() ? " none" : list));
    }
    paths = kept;
  }
  // The Hub's own scan: files it flags are never fetched, even with --allow-unsafe.
  {
    const auto sec = security_entries(cfg, kind, repo, rep.commit, paths);
    std::vector<std::string> ok;
    for (const auto& p : paths) {
      auto it = sec.find(p);
      const std::string v = it == sec.end() ? "unknown" : scan_verdict(it->second);
      if (v == "safe") ok.push_back(p);
      else if (v == "unknown") ok.push_back(p), rep.unscanned.push_back(p);
      else rep.refused_by_scan.push_back(p + " (" + v + ")");
    }
    if (!o.files.empty() && !rep.refused_by_scan.empty())
      fail(ErrorCode::kUnsupportedFormat, repo + ": refused, the Hub security scan is not clean for " + rep.refused_by_scan.front());
    paths = ok;
  }
  if (!o.dry_run && o.local_dir.empty()) write_cachedir_tag(cfg.cache_dir);
  if (!o.dry_run && !o.local_dir.empty()) {  // once, before the workers start
    const fs::path hfdir = fs::path(o.local_dir) / ".cache" / "huggingface";
    fs::create_directories(hfdir);
    if (!fs::exists(hfdir / ".gitignore")) write_file_atomic((hfdir / ".gitignore").string(), "*");
    if (!fs::exists(hfdir / "CACHEDIR.TAG"))
      write_file_atomic((hfdir / "CACHEDIR.TAG").string(), "Signature: 8a477f597d28d172789f06886806bc55\n# local_dir metadata of a Hugging Face download\n");
  }
  // 2-3. up to 8 files at once; one progress line per file plus a total on a terminal
  std::vector<PulledFile> results(paths.size());
  std::vector<std::atomic<uint64_t>> progress(paths.size());
  std::vector<uint64_t> sizes(paths.size(), 0), base_bytes(paths.size(), 0);
  std::atomic<uint64_t> downloaded_bytes{0};
  std::atomic<size_t> next{0}, done{0};
  std::mutex err_mu;
  std::exception_ptr first_error;
  auto fetch_one = [&](size_t index) {
    const std::string& path = paths[index];
    // 2. metadata: HEAD on /resolve without following redirects
    const std::string url = cfg.endpoint + "/" + url_prefix + repo + "/resolve/" + rep.commit + "/" + url_quote(path, true);
    HttpRequest head_req{"HEAD", url, auth};
    if (const char* t = std::getenv("HF_HUB_ETAG_TIMEOUT"); t && std::atol(t) > 0) head_req.timeout_s = std::atol(t);
    HttpResponse head = send_with_retries(head_req);
    if (head.status == 404 && head.headers["x-error-code"] == "EntryNotFound" && head.headers.count("x-repo-commit") && o.local_dir.empty())
      touch_no_exist(base, head.headers["x-repo-commit"], path);
    if (head.status >= 400 || head.status == 0) raise_for(head, repo + "/" + path);
    const std::string etag = strip_etag(head.headers.count("x-linked-etag") ? head.headers["x-linked-etag"] : head.headers["etag"]);
    const uint64_t size = std::stoull(head.headers.count("x-linked-size") ? head.headers["x-linked-size"]
                                                                         : (head.headers.count("content-length") ? head.headers["content-length"] : "0"));
    if (etag.empty() || etag.find('/') != std::string::npos) fail(ErrorCode::kIoError, repo + "/" + path + ": no usable ETag from the Hub");
    std::string location = head.status >= 300 && head.status < 400 ? head.headers["location"] : url;
    if (!location.empty() && location.front() == '/') location = url_origin(url) + location;
    PulledFile pf{path, etag, size, false};
    sizes[index] = size;
    const bool local = !o.local_dir.empty();
    const fs::path meta = fs::path(o.local_dir) / ".cache" / "huggingface" / "download" / (path + ".metadata");
    const fs::path blob = local ? fs::path(o.local_dir) / path : base / "blobs" / etag;
    bool have_it = fs::exists(blob);
    if (local && have_it) {  // trust the metadata only when it names this etag
      const std::string m = fs::exists(meta) ? read_file(meta.string()) : "";
      have_it = m.find("\n" + etag + "\n") != std::string::npos;
    }
    std::optional<BlobLock> lock;
    if (!o.dry_run && !have_it && !local) {
      lock.emplace(fs::path(cfg.cache_dir) / ".locks" / folder / (etag + ".lock"));
      have_it = fs::exists(blob);  // another process may have finished it while we waited
    }
    if (!o.dry_run && !have_it) {
      // 3. download, resuming <etag>.incomplete across runs
      const fs::path part = local ? fs::path(o.local_dir) / ".cache" / "huggingface" / "download" / (path + "." + etag + ".incomplete")
                                  : base / "blobs" / (etag + ".incomplete");
      fs::create_directories(part.parent_path());
      std::vector<std::string> hdrs = url_origin(location) == url_origin(url) ? auth : auth_headers(HubConfig{});  // no token to other hosts
      uint64_t have = fs::exists(part) ? fs::file_size(part) : 0;
      if (have > size) fs::remove(part), have = 0;
      for (int attempt = 0; have < size || size == 0; ++attempt) {
        std::FILE* f = std::fopen(part.c_str(), "ab");
        if (!f) fail(ErrorCode::kIoError, "cannot write '" + part.string() + "'");
        const char* dt = std::getenv("HF_HUB_DOWNLOAD_TIMEOUT");
        HttpRequest get{"GET", location, hdrs, f, dt && std::atol(dt) > 0 ? std::atol(dt) : 10, &progress[index]};
        if (have > 0) get.headers.push_back("Range: bytes=" + std::to_string(have) + "-");
        HttpResponse r = http_send(get);
        const int closed_errno = std::fclose(f) == 0 ? 0 : errno;
        // a full disk keeps the .incomplete file: the next pull resumes it once there is space
        if (r.write_errno || closed_errno) fail_write(r.write_errno ? r.write_errno : closed_errno, "downloading into", part.string());
        base_bytes[index] = have;
        if (r.status == 200 && have > 0) {  // server ignored the range: start over
          fs::remove(part);
          have = 0;
          continue;
        }
        if (r.status >= 400 && !retryable(r.status)) raise_for(r, repo + "/" + path);
        downloaded_bytes += r.written;
        have = fs::exists(part) ? fs::file_size(part) : 0;
        if (size == 0 && (r.status == 200 || r.status == 206)) break;
        if (have >= size) break;
        if (attempt >= 5) fail(ErrorCode::kIoError, repo + "/" + path + ": download kept failing (" + std::to_string(have) + " of " + std::to_string(size) + " bytes); run the pull again to resume");
        wait_with_countdown(retry_wait_s(r, attempt), path + ": " + retry_reason(r));
      }
      if (have != size) fail(ErrorCode::kIoError, repo + "/" + path + ": got " + std::to_string(have) + " bytes, expected " + std::to_string(size));
      if (etag.size() == 64 && sha256_hex(read_file(part.string())) != etag) {
        fs::remove(part);
        fail(ErrorCode::kCorruptFile, repo + "/" + path + ": the download does not match its sha256; run the pull again");
      }
      // names can lie: refuse pickles and archives dressed as safe formats
      if (!o.allow_unsafe && std::string(safety_class(path)) == "safe") {
        std::FILE* f = std::fopen(part.c_str(), "rb");
        unsigned char mg[4] = {0, 0, 0, 0};
        const size_t got = f ? std::fread(mg, 1, 4, f) : 0;
        if (f) std::fclose(f);
        const bool pickle = got >= 2 && mg[0] == 0x80 && mg[1] >= 2 && mg[1] <= 5;
        const bool zip = got >= 4 && mg[0] == 'P' && mg[1] == 'K' && mg[2] == 3 && mg[3] == 4;
        if (pickle || zip) {
          fs::remove(part);
          fail(ErrorCode::kUnsupportedFormat, repo + "/" + path + " is a " + (pickle ? "pickle" : "zip/torch archive") +
                                                  " despite its name; refused (use --allow-unsafe only if you trust it)");
        }
      }
      fs::create_directories(blob.parent_path());
      fs::rename(part, blob);
      pf.downloaded = true;
      if (local) {
        fs::create_directories(meta.parent_path());
        write_file_atomic(meta.string(), rep.commit + "\n" + etag + "\n" + std::to_string(std::time(nullptr)) + ".0\n");
      }
    }
    if (!o.dry_run && !local) {
      const fs::path link = snap / path;
      fs::create_directories(link.parent_path());
      // made under a unique name, then renamed over: concurrent pulls never
      // see a missing pointer, and never write through an existing link
      static std::atomic<unsigned> seq{0};
      const fs::path tmp = link.string() + ".vgtmp-" + std::to_string(::getpid()) + "-" + std::to_string(seq++);
      std::error_code ec;
      fs::create_symlink(fs::relative(blob, link.parent_path()), tmp, ec);
      if (ec) fs::copy_file(blob, tmp, fs::copy_options::overwrite_existing);  // filesystems without symlinks
      fs::rename(tmp, link);
    }
    results[index] = pf;
  };
  auto worker = [&] {
    for (size_t i; (i = next++) < paths.size();) {
      try {
        fetch_one(i);
      } catch (...) {
        std::lock_guard<std::mutex> l(err_mu);
        if (!first_error) first_error = std::current_exception();
        next = paths.size();
      }
      ++done;
    }
  };
  const bool tty = isatty(STDERR_FILENO) && !o.dry_run;
  std::atomic<bool> finished{false};
  std::thread reporter([&] {
    if (!tty) return;
    const auto t0 = std::chrono::steady_clock::now();
    size_t lines = 0;
    while (!finished) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      std::string out;
      for (size_t k = 0; k < lines; ++k) out += "\x1b[1A\x1b[2K";
      lines = 0;
      uint64_t got = 0, want = 0;
      for (size_t k = 0; k < paths.size(); ++k) {
        const uint64_t g = base_bytes[k] + progress[k].load();
        got += std::min(g, sizes[k]);
        want += sizes[k];
        if (sizes[k] == 0 || g == 0 || g >= sizes[k]) continue;
        const int bar = static_cast<int>(20.0 * g / sizes[k]);
        char line[256];
        std::snprintf(line, sizeof line, "%-40.40s [%-20s] %6.1f/%6.1f MB\n", paths[k].c_str(), std::string(bar, '#').c_str(),
                      g / 1e6, sizes[k] / 1e6);
        out += line;
        ++lines;
      }
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const double speed = secs > 0 ? downloaded_bytes.load() / secs : 0;
      char total[256];
      std::snprintf(total, sizeof total, "total %zu/%zu files %.1f/%.1f MB  %.1f MB/s  ETA %.0f s\n", done.load(), paths.size(),
                    got / 1e6, want / 1e6, speed / 1e6, speed > 0 && want > got ? (want - got) / speed : 0.0);
      out += total;
      ++lines;
      std::fputs(out.c_str(), stderr);
    }
  });
  std::vector<std::thread> pool;
  for (size_t w = 0; w < std::min<size_t>(8, paths.size()); ++w) pool.emplace_back(worker);
  for (auto& t : pool) t.join();
  finished = true;
  reporter.join();
  if (first_error) std::rethrow_exception(first_error);
  rep.files = results;
  rep.bytes_downloaded = downloaded_bytes;
  if (!o.local_dir.empty()) rep.snapshot_dir = o.local_dir;
  if (!o.dry_run && o.local_dir.empty() && o.revision != rep.commit) {
    fs::create_directories((base / "refs" / o.revision).parent_path());
    write_file_atomic((base / "refs" / o.revision).string(), rep.commit);  // no newline, as the official client
  }
  return rep;
}

const char* safety_class(const std::string& p) {
  if (unsafe_path(p)) return "unsafe";
  static const char* kSafe[] = {".safetensors", ".json", ".txt", ".md", ".yaml", ".yml", ".png", ".jpg", ".jpeg", ".webp",
                                ".gguf", ".model", ".csv", ".parquet", ".gitattributes"};
  for (const char* e : kSafe) {
    const std::string ext = e;
    if (p.size() >= ext.size() && p.compare(p.size() - ext.size(), ext.size(), ext) == 0) return "safe";
  }
  return "other";
}

nlohmann::json search(const HubConfig& cfg, const SearchQuery& q) {
  if (cfg.offline) fail(ErrorCode::kModelNotAvailableOffline, "search needs the network and HF_HUB_OFFLINE is set");
  std::string url = cfg.endpoint + "/api/" + q.kind + "s?limit=" + std::to_string(q.limit);
  if (!q.text.empty()) url += "&search=" + url_quote(q.text, false);
  if (!q.author.empty()) url += "&author=" + url_quote(q.author, false);
  if (!q.sort.empty()) url += "&sort=" + url_quote(q.sort, false);
  if (!q.task.empty()) url += "&pipeline_tag=" + url_quote(q.task, false);
  if (!q.library.empty()) url += "&filter=" + url_quote(q.library, false);
  for (const auto& f : q.filters) url += "&filter=" + url_quote(f, false);
  // language and size are tags on the Hub (datasets spell them language:xx, size_categories:...)
  if (!q.language.empty()) url += "&filter=" + url_quote(q.kind == "dataset" ? "language:" + q.language : q.language, false);
  if (!q.size.empty()) url += "&filter=" + url_quote("size_categories:" + q.size, false);
  if (!q.sdk.empty()) url += "&filter=" + url_quote(q.sdk, false);
  HttpResponse r = send_with_retries({"GET", url, auth_headers(cfg)});
  if (r.status != 200) raise_for(r, "search");
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  if (!j.is_array()) fail(ErrorCode::kIoError, "search: the Hub answered an unexpected body");
  return j;
}

nlohmann::json repo_info(const HubConfig& cfg, const std::string& kind, const std::string& repo, const std::string& rev) {
  if (cfg.offline) fail(ErrorCode::kModelNotAvailableOffline, "info needs the network and HF_HUB_OFFLINE is set");
  const std::string url = cfg.endpoint + "/api/" + kind + "s/" + repo + "/revision/" + url_quote(rev, false) + "?blobs=true";
  HttpResponse r = send_with_retries({"GET", url, auth_headers(cfg)});
  if (r.status != 200) raise_for(r, repo);
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  if (!j.is_object()) fail(ErrorCode::kIoError, repo + ": the Hub answered an unexpected body");
  nlohmann::json files = nlohmann::json::array();
  uint64_t total = 0;
  std::vector<std::string> all;
  for (const auto& s : j.value("siblings", nlohmann::json::array())) all.push_back(s.value("rfilename", ""));
  const auto sec = security_entries(cfg, kind, repo, j.value("sha", rev), all);
  for (const auto& s : j.value("siblings", nlohmann::json::array())) {
    const std::string p = s.value("rfilename", "");
    const uint64_t size = s.value("size", 0ull);
    total += size;
    auto it = sec.find(p);
    files.push_back({{"path", p}, {"size", size}, {"lfs", s.contains("lfs")}, {"safety", safety_class(p)},
                     {"scan", it == sec.end() ? "unknown" : scan_verdict(it->second)}});
  }
  nlohmann::json card = j.value("cardData", nlohmann::json::object());
  return {{"id", j.value("id", repo)}, {"kind", kind}, {"sha", j.value("sha", "")}, {"files", files}, {"total_size", total},
          {"license", card.is_object() ? card.value("license", nlohmann::json(nullptr)) : nlohmann::json(nullptr)},
          {"gated", j.value("gated", nlohmann::json(false))}, {"private", j.value("private", false)},
          {"pipeline_tag", j.value("pipeline_tag", nlohmann::json(nullptr))},
          {"safetensors_parameters", j.contains("safetensors") ? j["safetensors"].value("total", nlohmann::json(nullptr)) : nlohmann::json(nullptr)}};
}

nlohmann::json whoami(const HubConfig& cfg) {
  if (cfg.token.empty()) fail(ErrorCode::kUnauthorized, "not logged in; run 'visiongen hf login' or set HF_TOKEN");
  HttpResponse r = http_send({"GET", cfg.endpoint + "/api/whoami-v2", auth_headers(cfg)});
  if (r.status == 401) fail(ErrorCode::kUnauthorized, "the token was refused (Invalid credentials); run 'visiongen hf login' again");
  if (r.status != 200) raise_for(r, "whoami");
  return nlohmann::json::parse(r.body, nullptr, false);
}

std::string token_path() {
  if (const char* p = std::getenv("HF_TOKEN_PATH"); p && *p) return p;
  if (const char* h = std::getenv("HF_HOME"); h && *h) return std::string(h) + "/token";
  const char* home = std::getenv("HOME");
  return std::string(home ? home : ".") + "/.cache/huggingface/token";
}

void save_token(const std::string& token) {
  if (token.empty() || token.find_first_of(" \n\r\t") != std::string::npos)
    fail(ErrorCode::kInvalidArgument, "that does not look like a token (no spaces or newlines allowed)");
  const std::string path = token_path();
  fs::create_directories(fs::path(path).parent_path());
  write_file_atomic(path, token);
  fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write, fs::perm_options::replace);
}

bool delete_token() {
  std::error_code ec;
  return fs::remove(token_path(), ec);
}

}  // namespace vg::hub
