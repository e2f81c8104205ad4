// Startup correctness checks: fast paths vs a naive double-precision loop on a small case.
#pragma once

#include <cstdint>
#include <string>

#include "topk.h"

namespace tvreid_bench {

/// Exact top-k by brute force: double-precision dot products, full sort by ranks_before.
TopKResult naive_topk(const float* queries, int q, const float* gallery, int64_t n, int dim, int k);

/// Checks `got` against brute force: indices valid and unique per query, rows sorted, each score within `tol` of the
/// exact dot product of its index, and each rank's score within `tol` of the exact k best (so ties may swap).
/// Returns "" when all hold, else a description of the first violation.
std::string compare_topk(const TopKResult& got, const float* queries, const float* gallery, int64_t n, int dim,
                         int k, double tol);

/// Result of a self-check run.
struct SelfCheckOutcome {
  bool passed = false;
  std::string detail;  // what was checked, or the first mismatch
};

/// Runs sgemm_scores and CpuMatcher (multi-chunk, multi-shard, odd dim) against the naive loop.
/// `inject_error` corrupts one result first, to prove that a mismatch is detected (tests use it).
SelfCheckOutcome run_cpu_self_check(int threads, bool inject_error);

}  // namespace tvreid_bench
