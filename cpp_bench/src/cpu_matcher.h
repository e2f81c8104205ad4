// CPU matcher: scores = queries x gallery^T computed in bounded-memory gallery chunks, with per-query top-k.
#pragma once

#include <cstdint>
#include <vector>

#include "topk.h"

namespace tvreid_bench {

/// Settings for CpuMatcher.
struct CpuMatcherCfg {
  int threads = 1;         // gallery shards searched in parallel (one std::thread each, the caller runs shard 0)
  int64_t chunk_rows = 0;  // gallery rows per GEMM call and score buffer; 0 = auto (score buffer <= 4 MiB/thread)
};

/// Searches a row-major fp32 gallery [rows, dim] (not owned; must outlive the matcher).
class CpuMatcher {
 public:
  /// Throws std::invalid_argument on empty gallery, dim <= 0, threads <= 0 or chunk_rows < 0.
  CpuMatcher(const float* gallery, int64_t rows, int dim, CpuMatcherCfg cfg);

  /// Top-k gallery rows for each of `q` queries [q, dim]; needs 0 < k <= rows. Reuses internal buffers,
  /// so repeated calls with the same (q, k) allocate nothing.
  void search(const float* queries, int q, int k, TopKResult* out);

  /// Gallery rows per GEMM call actually used for `q` queries.
  int64_t chunk_rows_for(int q) const;

  int threads() const { return cfg_.threads; }

  /// Number of gallery shards (<= threads; tiny galleries use fewer).
  int shard_count() const { return static_cast<int>(shards_.size()); }

 private:
  struct Shard {
    int64_t begin = 0;
    int64_t end = 0;
    std::vector<float> scores;  // [q, chunk_rows]
    std::vector<TopKHeap> heaps;  // [q]
  };

  void search_shard(Shard* shard, const float* queries, int q, int k, int64_t chunk) const;

  const float* gallery_;  // [rows_, dim_]
  int64_t rows_;
  int dim_;
  CpuMatcherCfg cfg_;
  std::vector<Shard> shards_;
  std::vector<Candidate> merge_buffer_;
};

}  // namespace tvreid_bench
