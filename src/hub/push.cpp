#include "hub/push.h"

#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>

#include "core/hash.h"
#include "core/error.h"
#include "hub/http.h"
#include "io/atomic_file.h"

namespace vg::hub {

namespace fs = std::filesystem;

namespace {

std::string b64(const std::string& in) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    out += {t[v >> 18], t[(v >> 12) & 63], t[(v >> 6) & 63], t[v & 63]};
  }
  if (i + 1 == in.size()) {
    const uint32_t v = uint8_t(in[i]) << 16;
    out += {t[v >> 18], t[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == in.size()) {
    const uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += {t[v >> 18], t[(v >> 12) & 63], t[(v >> 6) & 63], '='};
  }
  return out;
}

struct LocalFile {
  std::string path, data;
};

std::vector<LocalFile> collect(const std::string& dir) {
  std::vector<LocalFile> out;
  for (auto it = fs::recursive_directory_iterator(dir); it != fs::recursive_directory_iterator(); ++it) {
    const std::string name = it->path().filename().string();
    if (it->is_directory() && (name == ".git" || name == ".cache")) {
      it.disable_recursion_pending();
      continue;
    }
    if (!it->is_regular_file()) continue;
    out.push_back({it->path().lexically_relative(dir).generic_string(), read_file(it->path().string())});
  }
  std::sort(out.begin(), out.end(), [](const LocalFile& a, const LocalFile& b) { return a.path < b.path; });
  return out;
}

void validate_formats(const std::vector<LocalFile>& files) {
  for (const auto& f : files) {
    auto ends = [&](const char* e) { return f.path.size() >= strlen(e) && f.path.compare(f.path.size() - strlen(e), strlen(e), e) == 0; };
    if (ends(".json") && nlohmann::json::parse(f.data, nullptr, false).is_discarded())
      fail(ErrorCode::kCorruptFile, "'" + f.path + "' is not valid JSON; fix it before pushing");
    if (ends(".safetensors")) {
      uint64_t n = 0;
      if (f.data.size() >= 8) std::memcpy(&n, f.data.data(), 8);
      if (f.data.size() < 8 || n > f.data.size() - 8 || nlohmann::json::parse(f.data.substr(8, n), nullptr, false).is_discarded())
        fail(ErrorCode::kCorruptFile, "'" + f.path + "' is not a valid safetensors file (header does not parse); fix it before pushing");
    }
  }
}

// A model card for a folder that has none: YAML front matter the Hub reads
// (license, library, pipeline tag, tags) and what the folder says about how
// it was made (pipeline class and components, the scheduler's settings).
std::string model_card(const std::string& name, const std::vector<LocalFile>& files) {
  const LocalFile* index = nullptr;
  const LocalFile* sched = nullptr;
  for (const auto& f : files) {
    if (f.path == "model_index.json") index = &f;
    if (f.path == "scheduler/scheduler_config.json") sched = &f;
  }
  std::string c = std::string("---\nlicense: other\nlibrary_name: ") + (index ? "diffusers" : "visiongen") +
                  "\npipeline_tag: text-to-image\ntags:\n- visiongen\n" + (index ? "- diffusers\n" : "") + "---\n# " + name + "\n\n" +
                  "Uploaded with visiongen (" + std::to_string(files.size()) + " files).\n";
  const auto ij = index ? nlohmann::json::parse(index->data, nullptr, false) : nlohmann::json();
  if (ij.is_object()) {
    c += "\n## Pipeline\n\n- class: `" + ij.value("_class_name", std::string("?")) + "`\n";
    if (ij.contains("_diffusers_version")) c += "- diffusers version: " + ij["_diffusers_version"].dump() + "\n";
    for (auto it = ij.begin(); it != ij.end(); ++it)
      if (it.key()[0] != '_' && it->is_array() && it->size() == 2 && (*it)[1].is_string())
        c += "- " + it.key() + ": `" + (*it)[1].get<std::string>() + "`\n";
  }
  const auto sj = sched ? nlohmann::json::parse(sched->data, nullptr, false) : nlohmann::json();
  if (sj.is_object()) {
    c += "\n## Scheduler settings\n\n";
    for (const char* k : {"_class_name", "prediction_type", "beta_schedule", "beta_start", "beta_end", "num_train_timesteps", "timestep_spacing", "steps_offset"})
      if (sj.contains(k)) c += std::string("- ") + k + ": " + sj[k].dump() + "\n";
  }
  return c;
}


bool is_lfs(const LocalFile& f) {
  if (f.data.size() > (10u << 20)) return true;
  return f.data.substr(0, 512).find('\0') != std::string::npos;
}

HttpResponse post_json(const HubConfig& cfg, const std::string& url, const nlohmann::json& body, const std::string& type = "application/json") {
  std::vector<std::string> h = {"Content-Type: " + type, "Accept: " + type};
  if (!cfg.token.empty()) h.push_back("Authorization: Bearer " + cfg.token);
  HttpRequest r{"POST", url, h};
  r.body = body.dump();
  return send_with_retries(r);
}

[[noreturn]] void push_fail(const HttpResponse& r, const std::string& what) {
  auto it = r.headers.find("x-error-message");
  const std::string msg = it != r.headers.end() ? it->second : r.body.substr(0, 200);
  if (r.status == 401 || r.status == 403)
    fail(ErrorCode::kUnauthorized, what + ": the Hub refused the token (" + msg + "); a write token is needed (visiongen hf login)");
  if (r.status == 0) fail(ErrorCode::kIoError, what + ": network error: " + r.error);
  fail(ErrorCode::kIoError, what + ": HTTP " + std::to_string(r.status) + " " + msg);
}

}  // namespace

std::vector<std::string> scan_for_secrets(const std::string& dir) {
  static const std::vector<std::pair<std::regex, const char*>> kPatterns = {
      {std::regex(R"(hf_[A-Za-z0-9]{30,})"), "Hugging Face token"},
      {std::regex(R"(AKIA[0-9A-Z]{16})"), "AWS access key"},
      {std::regex(R"(-----BEGIN [A-Z ]*PRIVATE KEY-----)"), "private key"},
      {std::regex(R"(gh[pousr]_[A-Za-z0-9]{36})"), "GitHub token"},
      {std::regex(R"(sk-[A-Za-z0-9_-]{20,})"), "OpenAI key"},
      {std::regex(R"(xox[baprs]-[A-Za-z0-9-]{10,})"), "Slack token"},
      {std::regex(R"(AIza[0-9A-Za-z_-]{35})"), "Google API key"}};
  std::vector<std::string> out;
  for (const auto& f : collect(dir)) {
    const std::string name = fs::path(f.path).filename().string();
    if (name == ".env" || name.rfind(".env.", 0) == 0) out.push_back(f.path + ": environment file (.env)");
    if (fs::path(f.path).extension() == ".pem") out.push_back(f.path + ": certificate/key file (.pem)");
    if (name.rfind("id_rsa", 0) == 0 || name.rfind("id_ed25519", 0) == 0) out.push_back(f.path + ": SSH key file");
    if (f.data.size() > (20u << 20) || f.data.substr(0, 512).find('\0') != std::string::npos) continue;  // binary
    size_t line = 1, start = 0;
    while (start <= f.data.size()) {
      size_t end = f.data.find('\n', start);
      if (end == std::string::npos) end = f.data.size();
      const std::string l = f.data.substr(start, end - start);
      for (const auto& [re, what] : kPatterns)
        if (std::regex_search(l, re)) out.push_back(f.path + ":" + std::to_string(line) + ": " + what);
      start = end + 1;
      ++line;
    }
  }
  return out;
}

PushReport push_folder(const HubConfig& cfg, const std::string& dir, const PushOptions& o,
                       const std::function<bool(const PushPlan&)>& confirm) {
  if (!fs::is_directory(dir)) fail(ErrorCode::kFileNotFound, "'" + dir + "' is not a folder");
  const size_t slash = o.repo.find('/');
  if (slash == std::string::npos || o.repo.find("..") != std::string::npos)
    fail(ErrorCode::kInvalidArgument, "'" + o.repo + "' is not a repository id (org/name)");
  if (cfg.offline) fail(ErrorCode::kInvalidArgument, "HF_HUB_OFFLINE is set; pushing needs the network");
  if (cfg.token.empty()) fail(ErrorCode::kUnauthorized, "pushing needs a write token; run 'visiongen hf login' or set HF_TOKEN");
  // checks before any request
  const auto secrets = scan_for_secrets(dir);
  if (!secrets.empty()) {
    std::string list;
    for (const auto& s : secrets) list += "\n  " + s;
    fail(ErrorCode::kInvalidArgument, "refusing to push: possible secrets found (remove them, then push again):" + list);
  }
  PushReport rep;
  auto files = collect(dir);
  validate_formats(files);
  if (std::none_of(files.begin(), files.end(), [](const LocalFile& f) { return f.path == "README.md"; })) {
    const std::string card = model_card(o.repo.substr(slash + 1), files);
    write_file_atomic(dir + "/README.md", card);
    files.push_back({"README.md", card});
    rep.model_card_written = true;
  }
  const std::string api = cfg.endpoint + "/api/" + o.kind + "s/" + o.repo;
  // 1. create (an existing repo is fine)
  HttpResponse cr = post_json(cfg, cfg.endpoint + "/api/repos/create",
                              {{"name", o.repo.substr(slash + 1)}, {"organization", o.repo.substr(0, slash)}, {"type", o.kind}, {"private", o.is_private}});
  if (cr.status != 200 && cr.status != 409) push_fail(cr, "creating " + o.repo);
  // 2. preupload: LFS or regular, and what the remote already has
  nlohmann::json pre = {{"files", nlohmann::json::array()}};
  for (const auto& f : files) pre["files"].push_back({{"path", f.path}, {"size", f.data.size()}, {"sample", b64(f.data.substr(0, 512))}});
  const std::string pr_query = o.create_pr ? "?create_pr=1" : "";
  HttpResponse pr = post_json(cfg, api + "/preupload/" + url_quote(o.revision, false) + pr_query, pre);
  if (pr.status != 200) push_fail(pr, "preupload");
  auto pj = nlohmann::json::parse(pr.body, nullptr, false);
  std::map<std::string, nlohmann::json> modes;
  for (const auto& e : pj.value("files", nlohmann::json::array())) modes[e.value("path", "")] = e;
  std::vector<const LocalFile*> to_upload;
  std::map<std::string, bool> lfs;
  for (const auto& f : files) {
    const auto& m = modes[f.path];
    if (m.value("shouldIgnore", false)) continue;
    lfs[f.path] = m.value("uploadMode", is_lfs(f) ? "lfs" : "regular") == "lfs" && !f.data.empty();
    const std::string oid = lfs[f.path] ? sha256_hex(f.data) : git_blob_sha1_hex(f.data);
    if (m.contains("oid") && m["oid"].is_string() && m["oid"] == oid) {
      rep.plan.unchanged.push_back(f.path);
      continue;
    }
    to_upload.push_back(&f);
    rep.plan.upload.push_back(f.path);
    rep.plan.upload_bytes += f.data.size();
  }
  if (confirm && !confirm(rep.plan)) fail(ErrorCode::kCancelled, "push cancelled; nothing was uploaded");
  if (to_upload.empty()) return rep;  // nothing changed: no commit
  // 3. LFS batch, then basic or multipart transfers
  nlohmann::json objs = nlohmann::json::array();
  for (const auto* f : to_upload)
    if (lfs[f->path]) objs.push_back({{"oid", sha256_hex(f->data)}, {"size", f->data.size()}});
  if (!objs.empty()) {
    const std::string prefix = o.kind == "model" ? "" : o.kind + "s/";
    nlohmann::json batch = {{"operation", "upload"}, {"transfers", {"basic", "multipart"}}, {"objects", objs}, {"hash_algo", "sha256"}};
    if (!o.create_pr) batch["ref"] = {{"name", o.revision}};  // a pull request has no ref yet
    HttpResponse br = post_json(cfg, cfg.endpoint + "/" + prefix + o.repo + ".git/info/lfs/objects/batch", batch, "application/vnd.git-lfs+json");
    if (br.status != 200) push_fail(br, "LFS batch");
    auto bj = nlohmann::json::parse(br.body, nullptr, false);
    for (const auto& ob : bj.value("objects", nlohmann::json::array())) {
      if (ob.contains("error")) fail(ErrorCode::kIoError, "LFS upload refused for " + ob.value("oid", "") + ": " + ob["error"].dump());
      if (!ob.contains("actions")) continue;  // already stored
      const std::string oid = ob["oid"];
      const std::string* data = nullptr;
      for (const auto* f : to_upload)
        if (lfs[f->path] && sha256_hex(f->data) == oid) data = &f->data;
      if (!data) continue;
      const auto& up = ob["actions"]["upload"];
      const auto header = up.value("header", nlohmann::json::object());
      if (header.contains("chunk_size")) {  // multipart: PUT each part, then complete with the ETags
        const size_t chunk = std::stoull(header["chunk_size"].get<std::string>());
        const size_t parts = (data->size() + chunk - 1) / chunk;
        nlohmann::json done = nlohmann::json::array();
        for (size_t k = 1; k <= parts; ++k) {
          char key[8];
          std::snprintf(key, sizeof key, "%05zu", k);
          if (!header.contains(key)) fail(ErrorCode::kIoError, "LFS multipart: the Hub sent fewer part URLs than parts");
          HttpRequest put{"PUT", header[key].get<std::string>(), {"Content-Type: application/octet-stream"}};
          put.body = data->substr((k - 1) * chunk, chunk);
          HttpResponse pr2 = send_with_retries(put);
          if (pr2.status != 200 || !pr2.headers.count("etag")) push_fail(pr2, "LFS part upload");
          done.push_back({{"partNumber", k}, {"etag", pr2.headers["etag"]}});
        }
        HttpResponse fin = post_json(HubConfig{}, up["href"].get<std::string>(), {{"oid", oid}, {"parts", done}}, "application/vnd.git-lfs+json");
        if (fin.status != 200) push_fail(fin, "LFS multipart completion");
      } else {  // basic: one PUT, no Hub token (presigned URL)
        HttpRequest put{"PUT", up["href"].get<std::string>(), {"Content-Type: application/octet-stream"}};
        put.body = *data;
        HttpResponse pr2 = send_with_retries(put);
        if (pr2.status != 200) push_fail(pr2, "LFS upload");
      }
      if (ob["actions"].contains("verify")) {
        HttpResponse vr = post_json(cfg, ob["actions"]["verify"]["href"].get<std::string>(), {{"oid", oid}, {"size", data->size()}},
                                    "application/vnd.git-lfs+json");
        if (vr.status != 200) push_fail(vr, "LFS verify");
      }
    }
  }
  // 4. one commit, NDJSON
  std::string nd = nlohmann::json{{"key", "header"}, {"value", {{"summary", o.message}, {"description", ""}}}}.dump() + "\n";
  for (const auto* f : to_upload) {
    if (lfs[f->path])
      nd += nlohmann::json{{"key", "lfsFile"}, {"value", {{"path", f->path}, {"algo", "sha256"}, {"oid", sha256_hex(f->data)}, {"size", f->data.size()}}}}.dump() + "\n";
    else
      nd += nlohmann::json{{"key", "file"}, {"value", {{"path", f->path}, {"content", b64(f->data)}, {"encoding", "base64"}}}}.dump() + "\n";
  }
  // The commit is not retried: it is not idempotent (huggingface_hub does not either).
  HttpRequest cm{"POST", api + "/commit/" + url_quote(o.revision, false) + pr_query, {"Content-Type: application/x-ndjson", "Authorization: Bearer " + cfg.token}};
  cm.body = nd;
  HttpResponse cres = http_send(cm);
  if (cres.status != 200) push_fail(cres, "commit");
  const auto cj = nlohmann::json::parse(cres.body, nullptr, false);
  rep.commit = cj.is_object() ? cj.value("commitOid", "") : "";
  if (o.create_pr) {
    rep.pull_request_url = cj.is_object() ? cj.value("pullRequestUrl", "") : "";
    const size_t d = rep.pull_request_url.rfind("/discussions/");
    if (d == std::string::npos) fail(ErrorCode::kIoError, "the Hub accepted the commit but sent no pullRequestUrl");
    rep.pull_request_ref = "refs/pr/" + rep.pull_request_url.substr(d + 13);
  }
  return rep;
}

}  // namespace vg::hub
