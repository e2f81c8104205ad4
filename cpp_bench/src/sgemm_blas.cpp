// CBLAS implementation of sgemm_scores (compiled only when CMake found a linkable cblas.h).
#include <cblas.h>

#include <climits>
#include <stdexcept>

#include "sgemm.h"

namespace tvreid_bench {

void sgemm_scores(const float* queries, int64_t q, const float* gallery, int64_t n, int64_t dim, float* scores,
                  int64_t ld_scores) {
  if (q > INT_MAX || n > INT_MAX || dim > INT_MAX || ld_scores > INT_MAX) {
    throw std::invalid_argument("CBLAS takes 32-bit sizes; use a smaller --chunk-rows");
  }
  if (q == 1) {
    // One query is a matrix-vector product; sgemm with m=1 would pack (copy) the whole gallery chunk first.
    cblas_sgemv(CblasRowMajor, CblasNoTrans, static_cast<int>(n), static_cast<int>(dim), 1.0f, gallery,
                static_cast<int>(dim), queries, 1, 0.0f, scores, 1);
    return;
  }
  // Row-major: [q, dim] x [n, dim]^T -> [q, n].
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(q), static_cast<int>(n), static_cast<int>(dim),
              1.0f, queries, static_cast<int>(dim), gallery, static_cast<int>(dim), 0.0f, scores,
              static_cast<int>(ld_scores));
}

const char* sgemm_backend_name() { return "cpp-cpu-blas"; }

std::string sgemm_library_version() {
#if defined(TVREID_HAVE_OPENBLAS_API)
  const char* config = openblas_get_config();
  return config != nullptr ? std::string(config) : std::string("OpenBLAS");
#else
  return "cblas (vendor unknown)";
#endif
}

bool sgemm_pin_single_thread() {
#if defined(TVREID_HAVE_OPENBLAS_API)
  openblas_set_num_threads(1);
  return true;
#else
  return false;
#endif
}

}  // namespace tvreid_bench
