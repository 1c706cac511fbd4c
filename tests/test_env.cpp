// Parity tests compare against diffusers' float32 results: unless the caller
// says otherwise, engines in this test binary (and the CLI processes it
// starts) resolve precision "auto" to fp32. bf16 tests ask for bf16 explicitly.
#include <cstdlib>

namespace {
const int kPrecisionDefault = (setenv("VG_PRECISION", "fp32", 0), 0);
}  // namespace
