#include "topk.h"

#include <algorithm>
#include <stdexcept>

namespace tvreid_bench {

void TopKHeap::reset(int k) {
  if (k <= 0) throw std::invalid_argument("top-k needs k > 0");
  k_ = k;
  heap_.clear();
  heap_.reserve(static_cast<size_t>(k));
}

void TopKHeap::push_full(const Candidate& c) {
  // With ranks_before as "less", std's max-heap keeps the worst-ranked candidate at the front.
  std::pop_heap(heap_.begin(), heap_.end(), ranks_before);
  heap_.back() = c;
  std::push_heap(heap_.begin(), heap_.end(), ranks_before);
}

void TopKHeap::offer_row(const float* scores, int64_t count, int64_t index_base) {
  int64_t i = 0;
  for (; i < count && static_cast<int>(heap_.size()) < k_; ++i) {
    heap_.push_back({scores[i], index_base + i});
    std::push_heap(heap_.begin(), heap_.end(), ranks_before);
  }
  float worst = heap_.empty() ? 0.0f : heap_.front().score;
  for (; i < count; ++i) {
    // Strictly greater: an equal score at a later index ranks after the current worst. NaN never enters.
    if (scores[i] > worst) {
      push_full({scores[i], index_base + i});
      worst = heap_.front().score;
    }
  }
}

void select_sorted_topk(std::vector<Candidate>* candidates, int k) {
  const size_t keep = std::min(candidates->size(), static_cast<size_t>(k));
  if (keep < candidates->size()) {
    std::nth_element(candidates->begin(), candidates->begin() + static_cast<std::ptrdiff_t>(keep),
                     candidates->end(), ranks_before);
    candidates->resize(keep);
  }
  std::sort(candidates->begin(), candidates->end(), ranks_before);
}

}  // namespace tvreid_bench
