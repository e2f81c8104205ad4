// Per-query top-k selection: a streaming bounded heap per (shard, query) plus an nth_element merge across shards.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

namespace tvreid_bench {

/// One scored gallery row.
struct Candidate {
  float score;
  int64_t index;
};

/// Ranking order used everywhere (CPU, CUDA, reference): higher score first, then lower gallery index.
inline bool ranks_before(const Candidate& a, const Candidate& b) {
  return a.score > b.score || (a.score == b.score && a.index < b.index);
}

/// Top-k result for a batch of queries: scores/indices are [queries, k], each row sorted by ranks_before.
struct TopKResult {
  int queries = 0;
  int k = 0;
  std::vector<float> scores;     // [queries, k]
  std::vector<int64_t> indices;  // [queries, k]
};

/// Bounded heap keeping the best `k` candidates seen so far (front = current worst).
class TopKHeap {
 public:
  /// Empties the heap and sets its capacity to `k` (> 0).
  void reset(int k);

  /// Offers scores[0..count) for gallery indices index_base + [0, count). Rows must be offered in increasing index
  /// order, which lets equal scores be dropped without a tie-break (the earlier index already ranks first).
  void offer_row(const float* scores, int64_t count, int64_t index_base);

  /// Current contents, unordered.
  const std::vector<Candidate>& items() const { return heap_; }

 private:
  void push_full(const Candidate& c);

  std::vector<Candidate> heap_;
  int k_ = 0;
};

/// Keeps the best `k` of `candidates` and sorts them by ranks_before (nth_element + sort).
void select_sorted_topk(std::vector<Candidate>* candidates, int k);

}  // namespace tvreid_bench
