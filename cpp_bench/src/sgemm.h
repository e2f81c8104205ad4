// Score GEMM for matching: scores = queries x gallery^T, fp32, row-major. Exactly one implementation is linked:
// sgemm_blas.cpp (CBLAS) or sgemm_blocked.cpp (built-in cache-blocked kernel), chosen by CMake.
#pragma once

#include <cstdint>
#include <string>

namespace tvreid_bench {

/// scores[q, n] = sum_d queries[q, d] * gallery[n, d]. All row-major with leading dimension = `dim` for the inputs
/// and `ld_scores` (>= n) for the output. Runs on the calling thread only (callers parallelise over gallery shards).
void sgemm_scores(const float* queries, int64_t q, const float* gallery, int64_t n, int64_t dim, float* scores,
                  int64_t ld_scores);

/// Report backend name: "cpp-cpu-blas" or "cpp-cpu-naive-blocked".
const char* sgemm_backend_name();

/// Human-readable library description for the report's "versions" (e.g. "OpenBLAS 0.3.21 ...").
std::string sgemm_library_version();

/// Makes later sgemm_scores calls single-threaded inside the library. Returns false when it cannot
/// (then the library may oversubscribe cores when match_bench runs several shards at once).
bool sgemm_pin_single_thread();

}  // namespace tvreid_bench
