// `visiongen hf cache ...`: the shared Hugging Face cache, offline.
#include <cstdio>
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "core/error.h"
#include "io/hf_cache.h"
#include "hub/hub.h"
#include "hub/push.h"
#include "server/hf_mirror.h"

#include <chrono>
#include <thread>
#include "io/hf_cache_tools.h"

#include <nlohmann/json.hpp>

namespace vg::cli {

namespace {

// "10G", "500M", "123456" -> bytes; throws invalid_argument.
uint64_t parse_bytes(const std::string& s) {
  try {
    size_t n = 0;
    const double v = std::stod(s, &n);
    const std::string unit = s.substr(n);
    const double mult = unit.empty() || unit == "B" ? 1 : unit == "K" || unit == "KB" ? 1e3 : unit == "M" || unit == "MB" ? 1e6
                        : unit == "G" || unit == "GB" ? 1e9 : unit == "T" || unit == "TB" ? 1e12 : -1;
    if (mult < 0 || v < 0) throw std::invalid_argument(s);
    return static_cast<uint64_t>(v * mult);
  } catch (const std::exception&) {
    fail(ErrorCode::kInvalidArgument, "size '" + s + "' must look like 500M or 10G");
  }
}

}  // namespace

void add_hf_commands(CLI::App& app) {
  struct Opts {
    bool json = false;
    std::string id, max_size;
  };
  auto o = std::make_shared<Opts>();
  auto* hf = app.add_subcommand("hf", "the Hugging Face cache shared with the official tools ($HF_HUB_CACHE, $HF_HOME)");
  hf->require_subcommand(1);
  struct PullArgs {
    std::string kind, id, revision = "main";
    std::vector<std::string> include, exclude, files;
    std::string local_dir, quantization, split;
    bool allow_unsafe = false, dry_run = false, json = false;
  };
  auto pa = std::make_shared<PullArgs>();
  auto* pull = hf->add_subcommand("pull", "download a model into the shared cache (safetensors, JSON, text, images; pickles only with --allow-unsafe)");
  pull->add_option("kind", pa->kind, "model, dataset, space, or files (then FILE... after the id)")->required()
      ->check(CLI::IsMember({"model", "dataset", "space", "files"}));
  pull->add_option("id", pa->id, "org/name")->required();
  pull->add_option("paths", pa->files, "with 'files': the repository paths to fetch");
  pull->add_option("--local-dir", pa->local_dir, "write real files into this folder (metadata in .cache/huggingface) instead of the cache");
  pull->add_option("--quantization", pa->quantization, "pick the GGUF file of this quant (e.g. Q4_K_M) in repos with several");
  pull->add_option("--split", pa->split, "datasets: only the files of this split (e.g. train), plus the card and metadata");
  pull->add_option("--revision", pa->revision, "branch, tag or commit")->capture_default_str();
  pull->add_option("--include", pa->include, "only paths matching this glob (repeatable)");
  pull->add_option("--exclude", pa->exclude, "skip paths matching this glob (repeatable)");
  pull->add_flag("--allow-unsafe", pa->allow_unsafe, "also fetch pickle/executable files");
  pull->add_flag("--dry-run", pa->dry_run, "list what would be fetched");
  pull->add_flag("--json", pa->json, "print the report as JSON");
  pull->callback([pa] {
    hub::PullOptions po;
    po.revision = pa->revision;
    po.include = pa->include;
    po.exclude = pa->exclude;
    po.allow_unsafe = pa->allow_unsafe;
    po.dry_run = pa->dry_run;
    po.local_dir = pa->local_dir;
    po.quantization = pa->quantization;
    po.files = pa->files;
    po.split = pa->split;
    if (!po.split.empty() && pa->kind != "dataset")
      return set_exit_code(report_error({ErrorCode::kInvalidArgument, "--split applies to 'pull dataset'"}));
    if (pa->kind == "files" && pa->files.empty())
      return set_exit_code(report_error({ErrorCode::kInvalidArgument, "pull files needs at least one FILE after the repository id"}));
    const std::string kind = pa->kind == "files" ? "model" : pa->kind;
    auto rep = guard([&] { return hub::pull_repo(hub::HubConfig::from_env(), kind, pa->id, po); });
    if (!rep) return set_exit_code(report_error(rep.error()));
    if (pa->json) {
      nlohmann::json files = nlohmann::json::array();
      for (const auto& f : rep->files) files.push_back({{"path", f.path}, {"etag", f.etag}, {"size", f.size}, {"downloaded", f.downloaded}});
      std::printf("%s\n", nlohmann::json{{"repo", rep->repo}, {"commit", rep->commit}, {"snapshot", rep->snapshot_dir},
                                          {"files", files}, {"skipped_unsafe", rep->skipped_unsafe}, {"refused_by_scan", rep->refused_by_scan},
                                          {"unscanned", rep->unscanned},
                                          {"bytes_downloaded", rep->bytes_downloaded}}.dump(1).c_str());
      return;
    }
    for (const auto& f : rep->files)
      std::printf("%s %-60s %12llu bytes\n", pa->dry_run ? "would fetch" : (f.downloaded ? "fetched" : "cached "), f.path.c_str(),
                  static_cast<unsigned long long>(f.size));
    for (const auto& s : rep->skipped_unsafe) std::printf("skipped (unsafe format; --allow-unsafe to fetch) %s\n", s.c_str());
    for (const auto& s : rep->refused_by_scan) std::printf("refused (the Hub security scan is not clean) %s\n", s.c_str());
    for (const auto& s : rep->unscanned) std::printf("note: no Hub security scan for %s (unscanned or private)\n", s.c_str());
    std::printf("%s at %s\n", rep->repo.c_str(), rep->snapshot_dir.c_str());
  });
  auto sq = std::make_shared<hub::SearchQuery>();
  auto sjson = std::make_shared<bool>(false);
  auto* search = hf->add_subcommand("search", "search the Hub: models, datasets or spaces");
  search->add_option("kind", sq->kind, "models, datasets or spaces")->required()->transform([](std::string k) {
    return k.size() > 1 && k.back() == 's' ? k.substr(0, k.size() - 1) : k;
  })->check(CLI::IsMember({"model", "dataset", "space"}));
  search->add_option("query", sq->text, "text to search for");
  search->add_option("--author", sq->author, "only this namespace");
  search->add_option("--task", sq->task, "pipeline tag, e.g. text-to-image");
  search->add_option("--library", sq->library, "e.g. diffusers");
  search->add_option("--filter", sq->filters, "tag (repeatable, all must match)");
  search->add_option("--language", sq->language, "datasets (and models): language code, e.g. en");
  search->add_option("--size", sq->size, "datasets: size category, e.g. 1K<n<10K");
  search->add_option("--sdk", sq->sdk, "spaces: gradio, streamlit, docker or static");
  search->add_option("--sort", sq->sort, "downloads, likes, lastModified or trending")
      ->check(CLI::IsMember({"downloads", "likes", "lastModified", "trending", "trendingScore"}));
  search->add_option("--limit", sq->limit, "at most this many results")->capture_default_str();
  search->add_flag("--json", *sjson, "print the Hub's JSON items");
  search->callback([sq, sjson] {
    if (sq->sort == "trending") sq->sort = "trendingScore";
    if (!sq->size.empty() && sq->kind != "dataset")
      return set_exit_code(report_error({ErrorCode::kInvalidArgument, "--size applies to dataset searches"}));
    if (!sq->sdk.empty() && sq->kind != "space")
      return set_exit_code(report_error({ErrorCode::kInvalidArgument, "--sdk applies to space searches"}));
    auto r = guard([&] { return hub::search(hub::HubConfig::from_env(), *sq); });
    if (!r) return set_exit_code(report_error(r.error()));
    if (*sjson) return static_cast<void>(std::printf("%s\n", r->dump(1).c_str()));
    for (const auto& m : *r)
      std::printf("%-60s downloads %-10lld likes %-6lld %s\n", m.value("id", "").c_str(), m.value("downloads", 0LL),
                  m.value("likes", 0LL), m.value("pipeline_tag", "").c_str());
  });

  struct InfoArgs {
    std::string kind, id, revision = "main";
    bool json = false;
  };
  auto ia = std::make_shared<InfoArgs>();
  auto* info = hf->add_subcommand("info", "files, sizes, safety and license of a repo");
  info->add_option("kind", ia->kind, "model, dataset or space")->required()->check(CLI::IsMember({"model", "dataset", "space"}));
  info->add_option("id", ia->id, "org/name")->required();
  info->add_option("--revision", ia->revision, "branch, tag or commit")->capture_default_str();
  info->add_flag("--json", ia->json, "print JSON");
  info->callback([ia] {
    auto r = guard([&] { return hub::repo_info(hub::HubConfig::from_env(), ia->kind, ia->id, ia->revision); });
    if (!r) return set_exit_code(report_error(r.error()));
    if (ia->json) return static_cast<void>(std::printf("%s\n", r->dump(1).c_str()));
    const auto& j = *r;
    std::printf("%s @ %s\nlicense: %s  gated: %s  pipeline: %s  safetensors parameters: %s\n", j["id"].get<std::string>().c_str(),
                j["sha"].get<std::string>().c_str(), j["license"].dump().c_str(), j["gated"].dump().c_str(),
                j["pipeline_tag"].dump().c_str(), j["safetensors_parameters"].dump().c_str());
    std::printf("  %-7s %-12s %12s  %s\n", "format", "hub scan", "bytes", "path");
    for (const auto& f : j["files"])
      std::printf("  %-7s %-12s %12llu  %s\n", f["safety"].get<std::string>().c_str(), f["scan"].get<std::string>().c_str(),
                  static_cast<unsigned long long>(f["size"].get<uint64_t>()), f["path"].get<std::string>().c_str());
    std::printf("total %.1f MB\n", j["total_size"].get<uint64_t>() / 1e6);
  });

  auto token = std::make_shared<std::string>();
  auto* login = hf->add_subcommand("login", "store a Hub token where the official clients read it");
  login->add_option("--token", *token, "the token (read from stdin when absent)");
  login->callback([token] {
    std::string t = *token;
    if (t.empty()) std::getline(std::cin, t);
    auto ok = guard([&] { hub::save_token(t); return 0; });
    if (!ok) return set_exit_code(report_error(ok.error()));
    std::printf("token saved to %s\n", hub::token_path().c_str());
  });
  hf->add_subcommand("logout", "delete the stored token")->callback([] {
    std::printf(hub::delete_token() ? "logged out\n" : "no token was stored\n");
  });
  hf->add_subcommand("whoami", "the account of the current token")->callback([] {
    auto r = guard([] { return hub::whoami(hub::HubConfig::from_env()); });
    if (!r) return set_exit_code(report_error(r.error()));
    std::printf("%s\n", r->value("name", "?").c_str());
  });

  struct PushArgs {
    std::string kind, dir;
    hub::PushOptions opts;
    bool interactive = false;
  };
  auto pu = std::make_shared<PushArgs>();
  auto* push = hf->add_subcommand("push", "upload a folder as one commit (validated, secret-scanned, only changed files)");
  push->add_option("kind", pu->kind, "model, dataset or space")->required()->check(CLI::IsMember({"model", "dataset", "space"}));
  push->add_option("dir", pu->dir, "folder to upload")->required();
  push->add_option("--repo", pu->opts.repo, "org/name (created when missing)")->required();
  push->add_flag("--private", pu->opts.is_private, "create the repository private");
  push->add_flag("--create-pr", pu->opts.create_pr, "commit to a new pull request (refs/pr/N) instead of the branch");
  push->add_option("--revision", pu->opts.revision, "branch to commit to")->capture_default_str();
  push->add_option("--message", pu->opts.message, "commit message")->capture_default_str();
  push->add_flag("--interactive", pu->interactive, "show the plan and ask before a public upload");
  push->callback([pu] {
    pu->opts.kind = pu->kind;
    auto confirm = [pu](const hub::PushPlan& plan) {
      for (const auto& f : plan.unchanged) std::printf("unchanged %s\n", f.c_str());
      for (const auto& f : plan.upload) std::printf("upload    %s\n", f.c_str());
      if (!pu->interactive || pu->opts.is_private) return true;
      std::printf("Upload %zu files (%.1f MB) to the PUBLIC repository %s? [y/N] ", plan.upload.size(), plan.upload_bytes / 1e6,
                  pu->opts.repo.c_str());
      std::fflush(stdout);
      std::string answer;
      std::getline(std::cin, answer);
      return answer == "y" || answer == "Y" || answer == "yes";
    };
    auto rep = guard([&] { return hub::push_folder(hub::HubConfig::from_env(), pu->dir, pu->opts, confirm); });
    if (!rep) return set_exit_code(report_error(rep.error()));
    if (rep->model_card_written) std::printf("wrote a model card (README.md)\n");
    if (rep->commit.empty()) std::printf("nothing changed; no commit\n");
    else if (!rep->pull_request_url.empty())
      std::printf("committed %s to %s as pull request %s (%s)\n", rep->commit.c_str(), pu->opts.repo.c_str(), rep->pull_request_url.c_str(),
                  rep->pull_request_ref.c_str());
    else std::printf("committed %s to %s\n", rep->commit.c_str(), pu->opts.repo.c_str());
  });

  struct MirrorArgs {
    std::string host = "127.0.0.1";
    int port = 8090;
  };
  auto ma = std::make_shared<MirrorArgs>();
  auto* mirror = hf->add_subcommand("mirror", "serve this machine's cache read-only as a Hub endpoint (HF_ENDPOINT) for machines without internet");
  mirror->add_option("--host", ma->host, "address to listen on")->capture_default_str();
  mirror->add_option("--port", ma->port, "port (0 = any free port)")->capture_default_str();
  mirror->callback([ma] {
    server::HfMirror m(hf_cache_dir(), ma->host, ma->port);
    auto port = m.start();
    if (!port) return set_exit_code(report_error(port.error()));
    std::printf("serving %s read-only on http://%s:%d (use HF_ENDPOINT=http://%s:%d); Ctrl+C stops\n", hf_cache_dir().c_str(),
                ma->host.c_str(), *port, ma->host.c_str(), *port);
    std::fflush(stdout);
    for (;;) std::this_thread::sleep_for(std::chrono::seconds(3600));
  });

  hf->add_subcommand("tree", "what the Hub ecosystem offers and what visiongen reads")->callback([] {
    std::printf(
        "formats:   safetensors (read; diffusers folders, sharded, fp16 variants, single-file SD checkpoints)\n"
        "           gguf (listed and pulled with --quantization; SD1/SD2/SDXL GGUFs run with -m or --unet)\n"
        "           pickle .bin/.pt/.ckpt (never opened; pulled only with --allow-unsafe)\n"
        "libraries: diffusers (StableDiffusionPipeline layouts: run), transformers CLIP text encoders (run),\n"
        "           others (pull/push only)\n"
        "tasks:     text-to-image, image-to-image, inpainting (run); text-to-video, image-to-video, upscale (known,\n"
        "           no engine yet); see 'visiongen models' for the registry\n"
        "repos:     models, datasets, spaces (search, info, pull, push); cache shared with hf/huggingface_hub\n");
  });

  auto* cache = hf->add_subcommand("cache", "list, verify, remove and prune cached repos (no network)");
  cache->require_subcommand(1);
  auto* ls = cache->add_subcommand("ls", "cached repos with size, refs and snapshots");
  ls->add_flag("--json", o->json, "print JSON");
  ls->callback([o] {
    auto repos = guard([] { return hf_cache_list(hf_cache_dir()); });
    if (!repos) return set_exit_code(report_error(repos.error()));
    if (o->json) {
      nlohmann::json a = nlohmann::json::array();
      for (const auto& r : *repos) a.push_back(r.to_json());
      std::printf("%s\n", a.dump(1).c_str());
      return;
    }
    std::printf("%-8s %-50s %12s  %s\n", "type", "id", "size (MB)", "refs");
    for (const auto& r : *repos) {
      std::string refs;
      for (const auto& [ref, c] : r.refs) refs += (refs.empty() ? "" : ", ") + ref + "=" + c.substr(0, 10);
      std::printf("%-8s %-50s %12.1f  %s\n", r.type.c_str(), r.id.c_str(), static_cast<double>(r.bytes) / 1e6, refs.c_str());
    }
  });
  auto* verify = cache->add_subcommand("verify", "re-hash every blob (sha256 for LFS files, git sha1 otherwise)");
  verify->callback([] {
    auto bad = guard([] { return hf_cache_verify(hf_cache_dir()); });
    if (!bad) return set_exit_code(report_error(bad.error()));
    for (const auto& b : *bad) std::printf("CORRUPT %s\n", b.c_str());
    if (!bad->empty())
      return set_exit_code(report_error({ErrorCode::kCorruptFile, std::to_string(bad->size()) +
                                                                      " cached file(s) do not match their hash; remove the repo and fetch it again"}));
    std::printf("all blobs match their hashes\n");
  });
  auto* rm = cache->add_subcommand("rm", "remove one repo from the cache");
  rm->add_option("id", o->id, "org/name")->required();
  rm->callback([o] {
    if (!hf_cache_remove(hf_cache_dir(), o->id))
      return set_exit_code(report_error({ErrorCode::kFileNotFound, "'" + o->id + "' is not in the cache; see 'visiongen hf cache ls'"}));
    std::printf("removed %s\n", o->id.c_str());
  });
  auto* prune = cache->add_subcommand("prune", "remove least recently used repos until the cache fits");
  prune->add_option("--max-size", o->max_size, "e.g. 20G")->required();
  prune->callback([o] {
    auto removed = guard([&] { return hf_cache_prune(hf_cache_dir(), parse_bytes(o->max_size)); });
    if (!removed) return set_exit_code(report_error(removed.error()));
    for (const auto& r : *removed) std::printf("removed %s\n", r.c_str());
    if (removed->empty()) std::printf("the cache already fits in %s\n", o->max_size.c_str());
  });
}

}  // namespace vg::cli
