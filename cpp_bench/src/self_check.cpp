#include "self_check.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>
#include <vector>

#include "cpu_matcher.h"
#include "gallery_gen.h"
#include "sgemm.h"

namespace tvreid_bench {
namespace {

double exact_dot(const float* a, const float* b, int dim) {
  double s = 0.0;
  for (int j = 0; j < dim; ++j) s += static_cast<double>(a[j]) * b[j];
  return s;
}

}  // namespace

TopKResult naive_topk(const float* queries, int q, const float* gallery, int64_t n, int dim, int k) {
  TopKResult out;
  out.queries = q;
  out.k = k;
  std::vector<Candidate> all(static_cast<size_t>(n));
  for (int i = 0; i < q; ++i) {
    for (int64_t r = 0; r < n; ++r) {
      all[r] = {static_cast<float>(exact_dot(queries + static_cast<int64_t>(i) * dim, gallery + r * dim, dim)), r};
    }
    std::sort(all.begin(), all.end(), ranks_before);
    for (int r = 0; r < k; ++r) {
      out.scores.push_back(all[r].score);
      out.indices.push_back(all[r].index);
    }
  }
  return out;
}

std::string compare_topk(const TopKResult& got, const float* queries, const float* gallery, int64_t n, int dim,
                         int k, double tol) {
  if (got.k != k || got.scores.size() != static_cast<size_t>(got.queries) * k ||
      got.indices.size() != got.scores.size()) {
    return "result has the wrong shape";
  }
  const TopKResult ref = naive_topk(queries, got.queries, gallery, n, dim, k);
  for (int i = 0; i < got.queries; ++i) {
    std::set<int64_t> seen;
    for (int r = 0; r < k; ++r) {
      const size_t at = static_cast<size_t>(i) * k + r;
      const int64_t idx = got.indices[at];
      const std::string where = "query " + std::to_string(i) + " rank " + std::to_string(r);
      if (idx < 0 || idx >= n) return where + ": index " + std::to_string(idx) + " out of range";
      if (!seen.insert(idx).second) return where + ": index " + std::to_string(idx) + " repeated";
      if (r > 0 && got.scores[at] > got.scores[at - 1]) return where + ": scores not sorted descending";
      const double exact = exact_dot(queries + static_cast<int64_t>(i) * dim, gallery + idx * dim, dim);
      if (std::fabs(exact - got.scores[at]) > tol) {
        return where + ": score " + std::to_string(got.scores[at]) + " but exact dot of index " +
               std::to_string(idx) + " is " + std::to_string(exact);
      }
      if (std::fabs(static_cast<double>(ref.scores[at]) - got.scores[at]) > tol) {
        return where + ": score " + std::to_string(got.scores[at]) + " but the exact rank score is " +
               std::to_string(ref.scores[at]) + " (index " + std::to_string(ref.indices[at]) + ")";
      }
    }
  }
  return "";
}

SelfCheckOutcome run_cpu_self_check(int threads, bool inject_error) {
  // Odd sizes on purpose: dim % 8 != 0 (kernel tails), several chunks and shards, k not a power of two.
  constexpr int kDim = 67, kQueries = 5, kK = 7;
  constexpr int64_t kRows = 1237, kChunk = 96;
  std::vector<float> gallery(static_cast<size_t>(kRows) * kDim), queries(static_cast<size_t>(kQueries) * kDim);
  fill_unit_rows(gallery.data(), kRows, kDim, /*seed=*/12345, 1);
  fill_unit_rows(queries.data(), kQueries, kDim, /*seed=*/777, 1);

  // 1) GEMM against the double-precision loop, with a padded leading dimension.
  const int64_t ld = kRows + 3;
  std::vector<float> scores(static_cast<size_t>(kQueries) * ld, 0.0f);
  sgemm_scores(queries.data(), kQueries, gallery.data(), kRows, kDim, scores.data(), ld);
  double max_err = 0.0;
  for (int i = 0; i < kQueries; ++i) {
    for (int64_t r = 0; r < kRows; ++r) {
      const double exact = exact_dot(queries.data() + i * kDim, gallery.data() + r * kDim, kDim);
      max_err = std::max(max_err, std::fabs(exact - scores[static_cast<size_t>(i) * ld + r]));
    }
  }
  if (!(max_err <= 1e-5)) {
    return {false, "GEMM max |error| " + std::to_string(max_err) + " vs the naive loop exceeds 1e-5"};
  }

  // 2) Chunked, sharded top-k against brute force.
  CpuMatcher matcher(gallery.data(), kRows, kDim, CpuMatcherCfg{std::max(1, threads), kChunk});
  TopKResult got;
  matcher.search(queries.data(), kQueries, kK, &got);
  if (inject_error) got.indices[0] = (got.indices[0] + 1) % kRows;  // a real row, but not the one that was scored
  const std::string why = compare_topk(got, queries.data(), gallery.data(), kRows, kDim, kK, 1e-5);
  if (!why.empty()) return {false, "top-k mismatch vs the naive loop: " + why};
  char detail[160];
  std::snprintf(detail, sizeof(detail), "gemm max_abs_err=%.2e on 5x1237x67; top-k (Q=5, k=7, %d shard(s), chunk %lld) "
                "matches the naive loop", max_err, matcher.shard_count(), static_cast<long long>(kChunk));
  return {true, detail};
}

}  // namespace tvreid_bench
