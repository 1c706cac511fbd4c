#include "hub/hub.h"

#include <fnmatch.h>
#include <openssl/sha.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <mutex>
#include <optional>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

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

std::string url_quote(const std::string& s, bool keep_slash) {
  static const char* hex = "0123456789ABCDEF";
  std::string o;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) o += static_cast<char>(c);
    else o += '%', o += hex[c >> 4], o += hex[c & 15];
  }
  return o;
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

bool retryable(long s) { return s == 0 || s == 408 || s == 429 || s == 500 || s == 502 || s == 503 || s == 504; }

// Up to 5 retries: 1, 2, 4, 8, 8 s, or Retry-After + 1 on 429.
HttpResponse send_with_retries(HttpRequest req, const std::function<void()>& before_retry = nullptr) {
  HttpResponse r;
  for (int attempt = 0;; ++attempt) {
    r = http_send(req);
    if (!retryable(r.status) || attempt == 5) return r;
    double wait = std::min(8, 1 << attempt);
    if (r.status == 429 && r.headers.count("retry-after")) wait = std::atoi(r.headers["retry-after"].c_str()) + 1;
    if (isatty(STDERR_FILENO)) std::fprintf(stderr, "HTTP %ld from the Hub; retrying in %.0f s\n", r.status, wait);
    std::this_thread::sleep_for(std::chrono::duration<double>(wait));
    if (before_retry) before_retry();
  }
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

std::string sha256_file(const std::string& path) {
  const std::string d = read_file(path);
  unsigned char h[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(d.data()), d.size(), h);
  static const char* k = "0123456789abcdef";
  std::string s;
  for (unsigned char c : h) s += k[c >> 4], s += k[c & 15];
  return s;
}

}  // namespace

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
  std::vector<std::string> paths;
  for (const auto& s : j["siblings"]) {
    const std::string path = s.value("rfilename", "");
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
      if (std::find(paths.begin(), paths.end(), want) == paths.end())
        fail(ErrorCode::kFileNotFound, repo + ": no file '" + want + "' in the repository (or it is an unsafe format; see --allow-unsafe)");
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
        std::fclose(f);
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
        double wait = r.status == 429 && r.headers.count("retry-after") ? std::atoi(r.headers["retry-after"].c_str()) + 1 : std::min(8, 1 << attempt);
        std::this_thread::sleep_for(std::chrono::duration<double>(wait));
      }
      if (have != size) fail(ErrorCode::kIoError, repo + "/" + path + ": got " + std::to_string(have) + " bytes, expected " + std::to_string(size));
      if (etag.size() == 64 && sha256_file(part.string()) != etag) {
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
      std::error_code ec;
      fs::remove(link, ec);
      fs::create_symlink(fs::relative(blob, link.parent_path()), link, ec);
      if (ec) fs::copy_file(blob, link, fs::copy_options::overwrite_existing);  // filesystems without symlinks
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
  for (const auto& s : j.value("siblings", nlohmann::json::array())) {
    const std::string p = s.value("rfilename", "");
    const uint64_t size = s.value("size", 0ull);
    total += size;
    files.push_back({{"path", p}, {"size", size}, {"lfs", s.contains("lfs")}, {"safety", safety_class(p)}});
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
