#!/usr/bin/env bash
# Installs the Debian package in a freshly debootstrapped Debian 12 (no build
# tree, no build dependencies) with apt, which pulls the runtime packages the
# .deb depends on, then draws the demo image with no -m and runs the Python
# binding. Needs root and a Debian mirror (not part of `ctest`: CI machines
# may lack both; tests/install/deb_test.sh checks the unpacked package there).
# Usage: scripts/test-deb-debootstrap.sh path/to/visiongen_*.deb [CHROOT_DIR]
set -euo pipefail
deb=$(realpath "$1")
root=${2:-/tmp/vg-debootstrap}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap
[[ -x "$root/bin/bash" ]] || debootstrap --variant=minbase bookworm "$root" "$mirror"
cp "$deb" "$root/tmp/visiongen.deb"
mount --bind /proc "$root/proc"
trap 'umount "$root/proc"' EXIT
chroot "$root" /bin/bash -euo pipefail -c '
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends /tmp/visiongen.deb python3
  cd /tmp
  visiongen generate -p "a red star on a white background" --seed 1 -o star.png
  test -s star.png
  python3 -c "import visiongen; print(visiongen.Engine().generate(\"a red star\", seed=1))"
  visiongen --version
'
echo "debootstrap test passed in $root"
