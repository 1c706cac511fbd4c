// One oneDNN CPU engine + stream for the process, and the shared thread count
// (oneDNN and our kernels both run on the same OpenMP pool).
#pragma once
#include <oneapi/dnnl/dnnl.hpp>
#include <vector>

namespace vg {

dnnl::engine& dnnl_engine();
dnnl::stream& dnnl_stream();

// 0 = one per physical core allowed to this process; the team is pinned one
// thread per core (VG_PIN_THREADS=0 or OMP_PROC_BIND turn that off).
// Applies to oneDNN and our own kernels.
void set_num_threads(int n);
// The first allowed logical CPU of each physical core.
std::vector<int> physical_core_cpus();
int num_threads();

}  // namespace vg
