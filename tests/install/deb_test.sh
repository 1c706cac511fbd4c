#!/usr/bin/env bash
# The Debian package: `cpack -G DEB` from the build tree, its dependencies
# (computed by dpkg-shlibdeps: the Debian runtime packages), its contents,
# then the installed-tree checks on the package unpacked into a fresh folder
# (no build tree: the program, the C example, the Python package).
# Usage: deb_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$(realpath "$1") src=$(realpath "$2")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$build" && cpack -G DEB -B "$work/pkg" >"$work/cpack.log" 2>&1) || { cat "$work/cpack.log"; exit 1; }
deb=$(ls "$work"/pkg/visiongen_*.deb)
echo "package: $(basename "$deb") ($(du -h "$deb" | cut -f1))"
depends=$(dpkg-deb -f "$deb" Depends)
echo "Depends: $depends"
for pkg in libc6 libstdc++6 libgomp1 libdnnl2 libpng16-16 libjpeg62-turbo libwebp7 libcurl4 libsentencepiece0 \
           libyaml-cpp0.7 libicu72 libssl3 libavcodec59 libavformat59; do
  grep -q "\b$pkg\b" <<<"$depends" || { echo "Depends lacks $pkg"; exit 1; }
done
contents=$(dpkg-deb -c "$deb")
for f in ./usr/bin/visiongen ./usr/lib/libvisiongen.so.0 ./usr/include/visiongen/visiongen_c.h \
         ./usr/share/visiongen/models/visiongen-shapes/model_index.json ./usr/lib/pkgconfig/visiongen.pc; do
  grep -q " $f" <<<"$contents" || { echo "package lacks $f"; exit 1; }
done
dpkg-deb -x "$deb" "$work/root"
cd "$work"
unset VG_DATA_DIR VG_DEFAULT_MODEL VG_LIBRARY
source "$src/tests/install/check_prefix.sh"
check_prefix "$work/root/usr" "$src"
echo "deb test passed"
