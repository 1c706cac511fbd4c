#!/usr/bin/env bash
# Installs dependencies, builds, runs the whole test suite (fast + slow) and a
# benchmark smoke run. Pass -L fast for the quick subset.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh --test
(cd tests/node && npm ci --no-audit --no-fund --loglevel=error)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)"
./build/visiongen bench --quick
./build/visiongen bench --quick --arch sdxl
ctest --test-dir build --output-on-failure "$@"
