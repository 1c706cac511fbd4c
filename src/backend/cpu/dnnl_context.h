// One oneDNN CPU engine + stream for the process, and the shared thread count
// (oneDNN and our kernels both run on the same OpenMP pool).
#pragma once
#include <oneapi/dnnl/dnnl.hpp>

namespace vg {

dnnl::engine& dnnl_engine();
dnnl::stream& dnnl_stream();

// 0 = number of cores. Applies to oneDNN and our own kernels.
void set_num_threads(int n);
int num_threads();

}  // namespace vg
