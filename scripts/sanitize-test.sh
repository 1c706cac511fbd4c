#!/usr/bin/env bash
# The reliability run (.ci/run calls it after scripts/test.sh): builds
# everything with clang under AddressSanitizer + UndefinedBehaviorSanitizer
# (and libFuzzer coverage) in build-san/, runs the fast tests there, then each
# fuzz harness for VG_FUZZ_SECONDS (default 30). --configure-only: just the
# build folder. Extra arguments go to ctest (e.g. -R Safetensors).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" != "--configure-only" ]]; then bash scripts/install-deps.sh --test; fi
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S . -B build-san -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2" -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O2" \
  -DVG_SANITIZE=address,undefined -DVG_FUZZ=ON -DVG_FUZZ_SECONDS="${VG_FUZZ_SECONDS:-30}" "${launcher[@]}" >/dev/null
[[ "${1:-}" == "--configure-only" ]] && exit 0
cmake --build build-san -j"$(nproc)"
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1:suppressions=$PWD/tests/sanitizers/asan.supp
export LSAN_OPTIONS=suppressions=$PWD/tests/sanitizers/lsan.supp
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# python_binding loads the instrumented library into an uninstrumented python3: not under ASan.
# One test at a time: each uses every core (OpenMP), and two at once run ~3x slower.
ctest --test-dir build-san --output-on-failure --no-tests=error -L fast -LE python "$@"
ctest --test-dir build-san --output-on-failure --no-tests=error -L fuzz -j2
