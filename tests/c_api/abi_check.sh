#!/usr/bin/env bash
# The C API's ABI snapshot test: the preprocessed header (declarations without
# comments), the struct layout and enum values (abi_dump) and the vg_* symbols
# libvisiongen.so exports must equal tests/c_api/abi.txt. An intended change
# bumps VG_ABI_VERSION (and the SONAME when it breaks old programs) and
# refreshes the snapshot: UPDATE=1 tests/c_api/abi_check.sh ABI_DUMP LIB HEADER
set -euo pipefail
dump=$1 lib=$2 header=$3
snapshot=$(dirname "$0")/abi.txt
current=$(mktemp)
trap 'rm -f "$current"' EXIT
{
  echo "# header"
  cc -std=c11 -E -P -x c "$header" -I"$(dirname "$header")/.." | grep -v '^\s*$' | tr -s ' \t' ' ' |
    grep -v '^typedef .*\(size_t\|ptrdiff_t\|wchar_t\|max_align_t\|int[0-9]*_t\|intptr_t\|intmax_t\|_least\|_fast\)' |
    sed -n '/vg_status/,$p'
  echo "# layout"
  "$dump"
  echo "# symbols"
  nm -D --defined-only "$lib" | awk '$2 == "T" && $3 ~ /^vg_/ {print $3}' | sort
} >"$current"
# Every function the header declares VG_API is exported (the *_init wrappers are inline).
missing=$(grep 'visibility("default")' "$current" | grep -o '\bvg_[a-z_]*(' | tr -d '(' | sort -u | while read -r f; do
  grep -qx "$f" <(sed -n '/^# symbols/,$p' "$current") || echo "$f"; done)
if [[ -n "$missing" ]]; then echo "declared but not exported: $missing"; exit 1; fi
if [[ "${UPDATE:-0}" == 1 ]]; then cp "$current" "$snapshot"; echo "wrote $snapshot"; exit 0; fi
if ! diff -u "$snapshot" "$current"; then
  echo "The C API's ABI changed (see the diff). If intended: bump VG_ABI_VERSION when old programs break,"
  echo "then refresh the snapshot with UPDATE=1 $0 $*"
  exit 1
fi
echo "C ABI matches tests/c_api/abi.txt"
