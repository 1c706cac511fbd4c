#!/usr/bin/env bash
# Runs one libFuzzer harness: scripts/fuzz.sh NAME SECONDS [BINARY]
#   NAME: safetensors gguf image params_json yaml registry lora prompt tokenizers openai_body sdapi_body infotext multipart
# Replays fuzz/regressions/NAME first (inputs that once crashed), then fuzzes
# for SECONDS from the committed seeds plus the corpus kept in
# $VG_FUZZ_WORK/NAME (default /tmp/vg-fuzz), so longer campaigns resume.
# Without BINARY it builds build-san/fuzz/fuzz_NAME (clang, ASan+UBSan).
# VG_FUZZ_RUNS=N stops earlier, after N executions. VG_FUZZ_TIMEOUT=S (10)
# is the wall-clock time one input may take: raise it for a campaign that
# shares a busy machine (a starved process is not a hang).
# Crashing inputs land in $VG_FUZZ_WORK/NAME-crashes; add them to
# fuzz/regressions/NAME once fixed. Prints the executions and the exec/s.
set -euo pipefail
cd "$(dirname "$0")/.."
name=$1 seconds=$2 bin=${3:-}
if [[ -z "$bin" ]]; then
  bash scripts/sanitize-test.sh --configure-only
  cmake --build build-san --target "fuzz_$name" -j"$(nproc)" >/dev/null
  bin=build-san/fuzz/fuzz_$name
fi
work=${VG_FUZZ_WORK:-/tmp/vg-fuzz}
mkdir -p "$work/$name" "$work/$name-crashes"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
if compgen -G "fuzz/regressions/$name/*" >/dev/null; then
  "$bin" -runs=1 fuzz/regressions/"$name"/* >"$work/$name-regressions.log" 2>&1 ||
    { tail -40 "$work/$name-regressions.log"; echo "fuzz $name: a regression input fails again"; exit 1; }
fi
log=$work/$name.log
status=0
runs_flag=()
[[ -n "${VG_FUZZ_RUNS:-}" ]] && runs_flag=(-runs="$VG_FUZZ_RUNS")
"$bin" "${runs_flag[@]}" -max_total_time="$seconds" -timeout="${VG_FUZZ_TIMEOUT:-10}" -rss_limit_mb=4096 -max_len=65536 -print_final_stats=1 \
  -artifact_prefix="$work/$name-crashes/" "$work/$name" "fuzz/corpus/$name" >"$log" 2>&1 || status=$?
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
if [[ $status != 0 ]]; then
  grep -E "ERROR|SUMMARY|runtime error|==[0-9]+==|Test unit written" "$log" | head -20
  echo "fuzz $name: FAILED after ${runs:-?} executions (log: $log)"
  exit 1
fi
elapsed=$(sed -n 's/.*Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
echo "fuzz $name: ${runs:-0} executions in ${elapsed:-$seconds} s (${rate:-?}/s), 0 crashes, corpus $(ls "$work/$name" | wc -l) files"
