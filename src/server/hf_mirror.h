// `visiongen hf mirror`: serves a local Hugging Face cache read-only over the
// Hub's download protocol (revision info, /resolve with HEAD/GET and Range),
// so machines without internet can use it as HF_ENDPOINT.
#pragma once
#include <memory>
#include <string>

#include "visiongen/error.h"

namespace vg::server {

class HfMirror {
 public:
  HfMirror(std::string cache_dir, std::string host, int port);
  ~HfMirror();
  Result<int> start();  // returns the bound port
  void stop();
  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace vg::server
