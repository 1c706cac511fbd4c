#!/usr/bin/env bash
# Installs the Debian 12 packages visiongen needs to build and test. Idempotent.
set -euo pipefail
PKGS=(build-essential cmake ninja-build pkg-config libcpp-httplib-dev
      libdnnl-dev nlohmann-json3-dev libpng-dev libjpeg-dev libwebp-dev
      libcli11-dev libgtest-dev libgmock-dev libicu-dev libssl-dev libyaml-cpp-dev)
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
