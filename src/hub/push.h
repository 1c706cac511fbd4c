// Uploading a folder to the Hub as one commit, the way huggingface_hub does:
// create the repo, preupload (which files are LFS, which are unchanged), LFS
// batch with basic or multipart transfers, then an NDJSON commit. Before any
// request: formats are validated, a secret scan refuses the upload with the
// list of findings, and a model card is written when there is none.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "hub/hub.h"

namespace vg::hub {

struct PushOptions {
  std::string repo, kind = "model", revision = "main";
  std::string message = "Upload folder using visiongen";
  bool is_private = false;
  bool create_pr = false;  // commit to a new pull request (refs/pr/N) instead of the branch
};

struct PushPlan {
  std::vector<std::string> upload, unchanged;
  uint64_t upload_bytes = 0;
};

struct PushReport {
  PushPlan plan;
  std::string commit;
  bool model_card_written = false;
  std::string pull_request_url, pull_request_ref;  // with create_pr
};

// Findings like "path:line: GitHub token"; empty when clean.
std::vector<std::string> scan_for_secrets(const std::string& dir);

// confirm: called with the plan before anything is uploaded; false aborts
// (cancelled). Throws VgException with stable codes.
PushReport push_folder(const HubConfig& cfg, const std::string& dir, const PushOptions& opts,
                       const std::function<bool(const PushPlan&)>& confirm = nullptr);

}  // namespace vg::hub
