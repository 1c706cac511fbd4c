# check_prefix PREFIX SOURCE_DIR: the checks an installed tree must pass
# (sourced by install_test.sh and deb_test.sh).
check_png_64() {
  python3 - "$1" <<'PY'
import struct, sys
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
w, h = struct.unpack(">II", data[16:24])
assert (w, h) == (64, 64), (w, h)
PY
}

check_prefix() {
  local prefix=$1 src=$2
  local libdir
  libdir=$(dirname "$(find "$prefix" -name 'libvisiongen.so.0' | head -1)")
  [[ -f "$libdir/libvisiongen.a" && -L "$libdir/libvisiongen.so" ]] || { echo "static library or .so link missing"; return 1; }
  [[ -f "$prefix/share/visiongen/models/visiongen-shapes/model_index.json" ]] || { echo "demo model not installed"; return 1; }
  for f in visiongen.h visiongen_c.h params.h error.h; do [[ -f "$prefix/include/visiongen/$f" ]]; done
  for f in man/man1/visiongen.1 man/man1/visiongen-generate.1 bash-completion/completions/visiongen \
           zsh/vendor-completions/_visiongen; do
    [[ -f "$prefix/share/$f" ]] || { echo "share/$f not installed"; return 1; }
  done
  grep -qF -- '\-\-steps' "$prefix/share/man/man1/visiongen-generate.1"
  # The CLI with no -m draws the demo image from the prefix's share folder.
  "$prefix/bin/visiongen" generate -p "a red star on a white background" --seed 1 -o star.png >cli.log 2>&1 ||
    { cat cli.log; return 1; }
  check_png_64 star.png
  # pkg-config: the C example against the installed shared library, then the static one.
  export PKG_CONFIG_PATH=$libdir/pkgconfig
  pkg-config --exists visiongen
  [[ "$(pkg-config --modversion visiongen)" == "$(sed -n 's/^project(visiongen VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")" ]]
  # shellcheck disable=SC2046
  cc -std=c11 -Wall -Wextra -Werror "$src/examples/c/generate.c" $(pkg-config --cflags --libs visiongen) -o gen_shared
  LD_LIBRARY_PATH=$libdir ./gen_shared shared.png >gen_shared.log || { cat gen_shared.log; return 1; }
  grep -q "second job: cancelled after 2 steps" gen_shared.log || { cat gen_shared.log; return 1; }
  check_png_64 shared.png
  # (ldd's output captured first: `ldd | grep -q` fails under pipefail when grep exits before ldd has written all)
  local deps
  deps=$(LD_LIBRARY_PATH=$libdir ldd ./gen_shared)
  grep -q "$libdir/libvisiongen.so.0" <<<"$deps" || { echo "$deps"; return 1; }
  # shellcheck disable=SC2046
  cc -std=c11 "$src/examples/c/generate.c" -o gen_static $(pkg-config --cflags visiongen) "$libdir/libvisiongen.a" \
    $(pkg-config --static --libs visiongen | sed 's/-lvisiongen\b//')
  # A static program outside the prefix finds no share/visiongen above itself: VG_DATA_DIR tells it.
  ./gen_static static.png >gen_static.log 2>&1 && { echo "gen_static found a demo model it should not see"; return 1; }
  grep -q "VG_DATA_DIR" gen_static.log || { cat gen_static.log; return 1; }
  VG_DATA_DIR=$prefix/share/visiongen ./gen_static static.png >gen_static.log || { cat gen_static.log; return 1; }
  cmp shared.png static.png
  # find_package(visiongen) from a CMake project.
  cmake -S "$src/examples/c" -B cmake-example -DCMAKE_PREFIX_PATH="$prefix" >cmake.log 2>&1 || { cat cmake.log; return 1; }
  cmake --build cmake-example >>cmake.log 2>&1 || { cat cmake.log; return 1; }
  LD_LIBRARY_PATH=$libdir ./cmake-example/generate_c cmake.png >/dev/null
  cmp shared.png cmake.png
  # The Python package, found from the prefix (it finds the library itself).
  local pydir
  pydir=$(dirname "$(find "$prefix" -path '*dist-packages/visiongen/__init__.py' | head -1)")
  PYTHONPATH=$(dirname "$pydir") python3 - <<'PY'
import visiongen
engine = visiongen.Engine()
images = engine.generate("a red star on a white background", seed=42, output="raw")
assert images[0].width == 64 and images[0].height == 64, images
print("python:", visiongen.version(), engine.info["family"])
PY
}
