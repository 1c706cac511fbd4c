#!/usr/bin/env bash
# Installs dependencies, builds, and generates one image with the demo model
# shipped in models/visiongen-shapes (or the model given as $1, prompt $2).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL="${1:-models/visiongen-shapes}"
PROMPT="${2:-a yellow star on a black background}"
bash scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
./build/visiongen generate -m "$MODEL" -p "$PROMPT" --seed 42 -o output.png
