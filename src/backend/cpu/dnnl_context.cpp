#include "backend/cpu/dnnl_context.h"

#include <omp.h>
#include <pthread.h>
#include <sched.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <utility>

namespace vg {

dnnl::engine& dnnl_engine() {
  static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  return eng;
}

dnnl::stream& dnnl_stream() {
  static dnnl::stream s(dnnl_engine());
  return s;
}

namespace {

int read_int(const std::string& path) {
  std::ifstream f(path);
  int v = -1;
  if (!(f >> v)) return -1;
  return v;
}

}  // namespace

std::vector<int> physical_core_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return {};
  std::set<std::pair<int, int>> seen;  // (package, core): SMT siblings share one
  std::vector<int> cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (!CPU_ISSET(c, &set)) continue;
    const std::string t = "/sys/devices/system/cpu/cpu" + std::to_string(c) + "/topology/";
    const int pkg = read_int(t + "physical_package_id"), core = read_int(t + "core_id");
    if (pkg < 0 || core < 0) {
      cpus.push_back(c);  // no topology (some containers): every allowed CPU counts
      continue;
    }
    if (seen.insert({pkg, core}).second) cpus.push_back(c);
  }
  return cpus;
}

void set_num_threads(int n) {
  // Default: one thread per physical core this process may run on (GEMM
  // kernels gain nothing from SMT siblings, and a cpuset may allow fewer
  // CPUs than the machine has).
  const std::vector<int> cores = physical_core_cpus();
  if (n <= 0) n = cores.empty() ? static_cast<int>(std::thread::hardware_concurrency()) : static_cast<int>(cores.size());
  if (n <= 0) n = 1;
  omp_set_num_threads(n);
  // The team's worker threads are pinned one per core, so the OpenMP pool
  // that oneDNN and our kernels share never migrates mid-kernel. The calling
  // thread is left free: threads it creates later inherit its affinity.
  // VG_PIN_THREADS=0 leaves placement to the OS (or to OMP_PROC_BIND).
  const char* pin = std::getenv("VG_PIN_THREADS");
  const bool want = !(pin && std::string(pin) == "0") && !std::getenv("OMP_PROC_BIND");
  if (!want || n < 2 || n > static_cast<int>(cores.size())) return;
#pragma omp parallel num_threads(n)
  {
    const int t = omp_get_thread_num();
    if (t > 0) {
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(cores[static_cast<size_t>(t)], &one);
      pthread_setaffinity_np(pthread_self(), sizeof one, &one);
    }
  }
}

int num_threads() { return omp_get_max_threads(); }

}  // namespace vg
