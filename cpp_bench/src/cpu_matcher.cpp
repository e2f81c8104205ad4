#include "cpu_matcher.h"

#include <algorithm>
#include <exception>
#include <stdexcept>
#include <thread>

#include "sgemm.h"

namespace tvreid_bench {
namespace {

constexpr int64_t kScoreBufferBytes = int64_t{4} << 20;  // per-thread score buffer budget for auto chunking
constexpr int64_t kRowAlign = 16;

}  // namespace

CpuMatcher::CpuMatcher(const float* gallery, int64_t rows, int dim, CpuMatcherCfg cfg)
    : gallery_(gallery), rows_(rows), dim_(dim), cfg_(cfg) {
  if (gallery == nullptr || rows <= 0) throw std::invalid_argument("CpuMatcher needs a non-empty gallery");
  if (dim <= 0) throw std::invalid_argument("CpuMatcher needs dim > 0");
  if (cfg.threads <= 0) throw std::invalid_argument("CpuMatcher needs threads >= 1");
  if (cfg.chunk_rows < 0) throw std::invalid_argument("CpuMatcher needs chunk_rows >= 0 (0 = auto)");
  // Contiguous shards, aligned so GEMM tiles rarely straddle shard edges; tiny galleries use fewer threads.
  const int64_t workers = std::max<int64_t>(1, std::min<int64_t>(cfg.threads, rows / kRowAlign));
  const int64_t per = ((rows + workers - 1) / workers + kRowAlign - 1) / kRowAlign * kRowAlign;
  for (int64_t b = 0; b < rows; b += per) {
    Shard s;
    s.begin = b;
    s.end = std::min(rows, b + per);
    shards_.push_back(std::move(s));
  }
}

int64_t CpuMatcher::chunk_rows_for(int q) const {
  if (cfg_.chunk_rows > 0) return cfg_.chunk_rows;
  const int64_t by_budget = kScoreBufferBytes / (static_cast<int64_t>(sizeof(float)) * std::max(q, 1));
  return std::max<int64_t>(kRowAlign, by_budget / kRowAlign * kRowAlign);
}

void CpuMatcher::search_shard(Shard* shard, const float* queries, int q, int k, int64_t chunk) const {
  const int64_t shard_rows = shard->end - shard->begin;
  const int64_t ld = std::min(chunk, shard_rows);
  shard->scores.resize(static_cast<size_t>(q) * static_cast<size_t>(ld));  // [q, ld]
  shard->heaps.resize(static_cast<size_t>(q));
  const int k_shard = static_cast<int>(std::min<int64_t>(k, shard_rows));
  for (auto& h : shard->heaps) h.reset(k_shard);
  for (int64_t c0 = shard->begin; c0 < shard->end; c0 += ld) {
    const int64_t c_rows = std::min(ld, shard->end - c0);
    sgemm_scores(queries, q, gallery_ + c0 * dim_, c_rows, dim_, shard->scores.data(), ld);  // [q, c_rows]
    for (int i = 0; i < q; ++i) {
      shard->heaps[i].offer_row(shard->scores.data() + static_cast<size_t>(i) * ld, c_rows, c0);
    }
  }
}

void CpuMatcher::search(const float* queries, int q, int k, TopKResult* out) {
  if (queries == nullptr || q <= 0) throw std::invalid_argument("search needs at least one query");
  if (k <= 0 || k > rows_) {
    throw std::invalid_argument("k=" + std::to_string(k) + " must be in [1, gallery rows=" + std::to_string(rows_) +
                                "]");
  }
  const int64_t chunk = chunk_rows_for(q);
  std::vector<std::thread> workers;
  std::vector<std::exception_ptr> errors(shards_.size());
  workers.reserve(shards_.size());
  for (size_t s = 1; s < shards_.size(); ++s) {
    workers.emplace_back([this, s, queries, q, k, chunk, &errors] {
      try {
        search_shard(&shards_[s], queries, q, k, chunk);
      } catch (...) {
        errors[s] = std::current_exception();
      }
    });
  }
  try {
    search_shard(&shards_[0], queries, q, k, chunk);
  } catch (...) {
    errors[0] = std::current_exception();
  }
  for (auto& w : workers) w.join();
  for (const auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }

  out->queries = q;
  out->k = k;
  out->scores.resize(static_cast<size_t>(q) * k);
  out->indices.resize(static_cast<size_t>(q) * k);
  for (int i = 0; i < q; ++i) {
    merge_buffer_.clear();
    for (const auto& shard : shards_) {
      const auto& items = shard.heaps[i].items();
      merge_buffer_.insert(merge_buffer_.end(), items.begin(), items.end());
    }
    select_sorted_topk(&merge_buffer_, k);
    for (int r = 0; r < k; ++r) {
      out->scores[static_cast<size_t>(i) * k + r] = merge_buffer_[r].score;
      out->indices[static_cast<size_t>(i) * k + r] = merge_buffer_[r].index;
    }
  }
}

}  // namespace tvreid_bench
