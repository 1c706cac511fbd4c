#!/usr/bin/env bash
# The .deb on a clean Debian 12: debootstrap a minimal bookworm, `apt install`
# the package there (apt pulls the runtime packages it depends on; no build
# tree, no build dependencies), draw the demo image with no -m and run the
# Python binding. Needs root, debootstrap and a Debian mirror: without them it
# reports "skipped" (exit 77) rather than failing; once the base system is
# there, every failure is a failure.
# Usage: debootstrap_test.sh BUILD_DIR SOURCE_DIR [DEB]   (DEBIAN_MIRROR overrides the mirror)
set -euo pipefail
build=$(realpath "$1")
skip() { echo "skipped: $*"; exit 77; }
[[ $(id -u) == 0 ]] || skip "needs root (chroot)"
command -v debootstrap >/dev/null || skip "debootstrap is not installed (scripts/install-deps.sh --test installs it)"
work=$(mktemp -d)
root=$work/root
mounted=0
cleanup() { [[ $mounted == 1 ]] && umount "$root/proc"; rm -rf "$work"; }
trap cleanup EXIT
deb=${3:-}
if [[ -z "$deb" ]]; then
  (cd "$build" && cpack -G DEB -B "$work/pkg" >"$work/cpack.log" 2>&1) || { cat "$work/cpack.log"; exit 1; }
  deb=$(ls "$work"/pkg/visiongen_*.deb)
fi
mirror=${DEBIAN_MIRROR:-$(sed -n 's/^URIs: *\(http[^ ]*debian\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)}
debootstrap --variant=minbase bookworm "$root" "${mirror:-http://deb.debian.org/debian}" >"$work/debootstrap.log" 2>&1 ||
  { tail -5 "$work/debootstrap.log"; skip "debootstrap could not build a base system (no mirror?)"; }
cp "$deb" "$root/tmp/visiongen.deb"
mount --bind /proc "$root/proc" 2>/dev/null && mounted=1
chroot "$root" /bin/bash -c 'DEBIAN_FRONTEND=noninteractive apt-get update -q' >"$work/apt.log" 2>&1 ||
  { tail -5 "$work/apt.log"; skip "apt-get update failed in the chroot (no mirror?)"; }
chroot "$root" /bin/bash -euo pipefail -c '
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends /tmp/visiongen.deb python3 >/tmp/apt-install.log 2>&1 ||
    { tail -20 /tmp/apt-install.log; exit 1; }
  cd /tmp
  visiongen --version
  visiongen generate -p "a red star on a white background" --seed 1 -o star.png
  test -s star.png
  python3 -c "import visiongen; im = visiongen.Engine().generate(\"a red star\", seed=1)[0]; assert (im.width, im.height) == (64, 64); print(\"python:\", im)"
  test -f /usr/lib/pkgconfig/visiongen.pc && test -f /usr/include/visiongen/visiongen_c.h
'
echo "debootstrap test passed"
