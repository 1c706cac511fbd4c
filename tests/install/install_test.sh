#!/usr/bin/env bash
# `cmake --install` into a fresh prefix, moved elsewhere afterwards (nothing
# may point back at the build tree), then: the installed CLI draws the demo
# image with no -m; pkg-config and find_package(visiongen) build the C example
# against the installed headers and libraries (shared and static), which
# generates an image and cancels a second job from its progress callback; the
# installed Python package generates too.
# Usage: install_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$(realpath "$1") src=$(realpath "$2")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/staging" >/dev/null
mv "$work/staging" "$work/prefix"
prefix=$work/prefix
cd "$work"
unset VG_DATA_DIR VG_DEFAULT_MODEL VG_LIBRARY
source "$src/tests/install/check_prefix.sh"
check_prefix "$prefix" "$src"
echo "install test passed"
