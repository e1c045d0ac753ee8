// The Eigen baseline's only TU; CMake builds it with the flags of ALIBI_BENCH_EIGEN_ISA (see
// bench/CMakeLists.txt) and without OpenMP, so Eigen runs on one thread.
#include "eigen_baseline.hpp"

namespace alibi_bench {

void run_eigen_attention(const AttentionCall& call) {
  eigen_unfused::attention(call);
}

}  // namespace alibi_bench
