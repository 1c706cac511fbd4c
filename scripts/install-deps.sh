#!/usr/bin/env bash
# Installs the Debian 12 packages visiongen needs to build (and, with --test,
# to run every test: redis-server and botocore for the scale-out tests, Node.js + npm for the OpenAI SDK client, Chromium for
# the UI test, PyTorch for the demo model's training tools, clang + libFuzzer for
# scripts/sanitize-test.sh, debootstrap for the .deb test). Idempotent.
set -euo pipefail
PKGS=(build-essential cmake ninja-build pkg-config libcpp-httplib-dev
      libdnnl-dev nlohmann-json3-dev libpng-dev libjpeg-dev libwebp-dev
      libcli11-dev libgtest-dev libgmock-dev libicu-dev libssl-dev libyaml-cpp-dev libcurl4-openssl-dev
      libsentencepiece-dev libhiredis-dev libavcodec-dev libavformat-dev libavutil-dev libswscale-dev)
if [[ "${1:-}" == "--test" ]]; then
  PKGS+=(chromium python3-torch python3-numpy python3-pil ffmpeg debootstrap groff-base redis-server python3-botocore clang libclang-rt-14-dev libomp-dev)
  command -v node >/dev/null || PKGS+=(nodejs)
  command -v npm >/dev/null || PKGS+=(npm)
fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
