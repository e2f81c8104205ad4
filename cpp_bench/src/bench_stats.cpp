#include "bench_stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace tvreid_bench {

double percentile_linear(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) throw std::invalid_argument("percentile of an empty sample");
  const double pos = (q / 100.0) * static_cast<double>(sorted.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  const double frac = pos - static_cast<double>(lo);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * frac;
}

LatencyStats summarize_ms(std::vector<double> samples_ms) {
  if (samples_ms.empty()) throw std::invalid_argument("no timed repetitions to summarise; use --reps >= 1");
  std::sort(samples_ms.begin(), samples_ms.end());
  LatencyStats s;
  s.p50_ms = percentile_linear(samples_ms, 50.0);
  s.p95_ms = percentile_linear(samples_ms, 95.0);
  s.p99_ms = percentile_linear(samples_ms, 99.0);
  s.mean_ms = std::accumulate(samples_ms.begin(), samples_ms.end(), 0.0) / static_cast<double>(samples_ms.size());
  s.min_ms = samples_ms.front();
  s.max_ms = samples_ms.back();
  s.reps = static_cast<int>(samples_ms.size());
  return s;
}

void append_latency_fields(const LatencyStats& stats, JsonFields* row) {
  row->emplace_back("p50_ms", stats.p50_ms);
  row->emplace_back("p95_ms", stats.p95_ms);
  row->emplace_back("p99_ms", stats.p99_ms);
  row->emplace_back("mean_ms", stats.mean_ms);
  row->emplace_back("min_ms", stats.min_ms);
  row->emplace_back("max_ms", stats.max_ms);
  row->emplace_back("reps", static_cast<int64_t>(stats.reps));
}

JsonFields report_row(const std::string& task, const std::string& backend, const std::string& precision,
                      const std::string& device, const LatencyStats& stats, const std::string& clock,
                      const std::string& timing_note) {
  JsonFields row{{"task", task}, {"backend", backend}, {"precision", precision}, {"device", device}};
  append_latency_fields(stats, &row);
  row.emplace_back("clock", clock);
  row.emplace_back("timing", timing_note);
  return row;
}

}  // namespace tvreid_bench
