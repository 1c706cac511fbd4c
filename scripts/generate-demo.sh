#!/usr/bin/env bash
# Installs dependencies, builds, and generates one image with the reference
# tiny model (../shared/fixtures) or the model given as $1.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL="${1:-../shared/fixtures/sd1-tiny/models/sd1-tiny}"
bash scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
./build/visiongen generate -m "$MODEL" -p "a photograph of an astronaut riding a horse" \
  --steps 20 --seed 42 -o output.png
