// Latency summaries (percentiles match numpy.percentile's default "linear" method).
#pragma once

#include <string>
#include <vector>

#include "bench_json.h"

namespace tvreid_bench {

/// Summary of one configuration's timed repetitions, in milliseconds.
struct LatencyStats {
  double p50_ms = 0.0;
  double p95_ms = 0.0;
  double p99_ms = 0.0;
  double mean_ms = 0.0;
  double min_ms = 0.0;
  double max_ms = 0.0;
  int reps = 0;
};

/// Linear-interpolated percentile `q` in [0, 100] of ascending `sorted` (non-empty), as numpy.percentile.
double percentile_linear(const std::vector<double>& sorted, double q);

/// Summarises per-repetition latencies (ms). Throws std::invalid_argument when `samples_ms` is empty.
LatencyStats summarize_ms(std::vector<double> samples_ms);

/// Appends p50_ms, p95_ms, p99_ms, mean_ms, reps to a report row (the schema's timing fields).
void append_latency_fields(const LatencyStats& stats, JsonFields* row);

/// The leading fields of a report row, in tvreid_sdk.bench.report.make_row's order: task, backend, precision,
/// device, the timing statistics, clock ("host" | "cuda") and the timing note. Callers append the shape fields.
JsonFields report_row(const std::string& task, const std::string& backend, const std::string& precision,
                      const std::string& device, const LatencyStats& stats, const std::string& clock,
                      const std::string& timing_note);

}  // namespace tvreid_bench
