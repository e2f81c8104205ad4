// match_bench: text-query matching benchmark (scores = Q x N GEMM + per-query top-k) on random L2-normalised
// embeddings. Exit status: 0 ok, 1 runtime error, 2 bad command line, 3 self-check mismatch.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <new>
#include <thread>
#include <vector>

#include <unistd.h>

#include "bench_json.h"
#include "bench_stats.h"
#include "cpu_matcher.h"
#include "gallery_gen.h"
#include "match_bench_args.h"
#include "self_check.h"
#include "sgemm.h"
#include "system_info.h"
#if defined(TVREID_BENCH_WITH_CUDA)
#include "cuda/cuda_matcher.h"
#endif

namespace tvreid_bench {
namespace {

constexpr int kExitRuntimeError = 1;
constexpr int kExitBadArgs = 2;
constexpr int kExitSelfCheckFailed = 3;

/// Thrown when a self-check finds a mismatch; maps to exit status 3.
class SelfCheckFailure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Workload {
  std::vector<float> gallery;  // [max_n, dim]
  std::vector<float> queries;  // [max_q, dim]
};

Workload make_workload(const MatchBenchArgs& args) {
  const int64_t max_n = *std::max_element(args.gallery_sizes.begin(), args.gallery_sizes.end());
  const int max_q = *std::max_element(args.queries.begin(), args.queries.end());
  Workload w;
  w.gallery.resize(static_cast<size_t>(max_n) * args.dim);
  w.queries.resize(static_cast<size_t>(max_q) * args.dim);
  fill_unit_rows(w.gallery.data(), max_n, args.dim, args.seed, args.threads);
  fill_unit_rows(w.queries.data(), max_q, args.dim, args.seed + 1, args.threads);
  return w;
}

// Row fields as tvreid_sdk.bench.report.make_row orders them: identity (task, backend, precision, device), timing
// statistics, clock + timing note, then the match shape (batch = queries, as `tvreid bench` match rows).
JsonFields make_row(const char* backend, const char* precision, const char* device, int64_t n, int q,
                    const MatchBenchArgs& args, const LatencyStats& stats, const char* clock, const char* timing_note,
                    size_t bytes_per_value) {
  JsonFields row = report_row("match", backend, precision, device, stats, clock, timing_note);
  row.emplace_back("batch", static_cast<int64_t>(q));
  row.emplace_back("gallery_size", n);
  row.emplace_back("queries", static_cast<int64_t>(q));
  row.emplace_back("k", static_cast<int64_t>(args.k));
  row.emplace_back("dim", static_cast<int64_t>(args.dim));
  // Achieved bandwidth: every gallery byte is read once per search; time = p50.
  const double gallery_bytes = static_cast<double>(n) * args.dim * static_cast<double>(bytes_per_value);
  row.emplace_back("gb_per_s", gallery_bytes / (stats.p50_ms * 1e-3) / 1e9);
  return row;
}

void log_row(const JsonFields& row) {
  std::fprintf(stderr, "  ");
  for (const auto& [key, value] : row) {
    if (key == "task" || key == "precision" || key == "device" || key == "dim" || key == "min_ms" ||
        key == "max_ms" || key == "clock" || key == "timing" || key == "batch") {
      continue;
    }
    if (const auto* d = std::get_if<double>(&value)) std::fprintf(stderr, "%s=%.4g ", key.c_str(), *d);
    if (const auto* i = std::get_if<int64_t>(&value)) std::fprintf(stderr, "%s=%lld ", key.c_str(), (long long)*i);
    if (const auto* s = std::get_if<std::string>(&value)) std::fprintf(stderr, "%s=%s ", key.c_str(), s->c_str());
  }
  std::fprintf(stderr, "\n");
}

void bench_cpu(const MatchBenchArgs& args, const Workload& w, BenchReport* report) {
  const bool pinned = sgemm_pin_single_thread();
  report->device = {{"kind", std::string("cpu")},
                    {"name", cpu_model_name()},
                    {"logical_cpus", static_cast<int64_t>(std::thread::hardware_concurrency())},
                    {"threads", static_cast<int64_t>(args.threads)},
                    {"gemm_library_single_threaded", pinned}};
  TopKResult result;
  for (const int64_t n : args.gallery_sizes) {
    CpuMatcher matcher(w.gallery.data(), n, args.dim, CpuMatcherCfg{args.threads, args.chunk_rows});
    for (const int q : args.queries) {
      for (int i = 0; i < args.warmup; ++i) matcher.search(w.queries.data(), q, args.k, &result);
      std::vector<double> samples;
      samples.reserve(static_cast<size_t>(args.reps));
      for (int i = 0; i < args.reps; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        matcher.search(w.queries.data(), q, args.k, &result);
        const auto t1 = std::chrono::steady_clock::now();
        samples.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
      }
      JsonFields row = make_row(sgemm_backend_name(), "fp32", "cpu", n, q, args, summarize_ms(samples), "host",
                                "host steady_clock around one search(): fp32 queries on the host -> top-k on the host",
                                sizeof(float));
      row.emplace_back("threads", static_cast<int64_t>(matcher.threads()));
      row.emplace_back("chunk_rows", matcher.chunk_rows_for(q));
      log_row(row);
      report->rows.push_back(std::move(row));
    }
  }
}

#if defined(TVREID_BENCH_WITH_CUDA)
std::string version_string(int v, int major_div, int minor_div) {
  return std::to_string(v / major_div) + "." + std::to_string((v / minor_div) % 100);
}

void cuda_self_check_case(int64_t rows, int dim, int q, int k, int64_t chunk_rows) {
  std::vector<float> gallery(static_cast<size_t>(rows) * dim), queries(static_cast<size_t>(q) * dim);
  fill_unit_rows(gallery.data(), rows, dim, 4242, 4);
  fill_unit_rows(queries.data(), q, dim, 99, 1);
  CudaMatcher matcher(gallery.data(), rows, dim, CudaMatcherCfg{0, chunk_rows});
  TopKResult got;
  matcher.search_host(queries.data(), q, k, rows, &got);
  round_through_fp16(gallery.data(), gallery.size());  // the reference sees exactly the GPU's fp16 inputs
  round_through_fp16(queries.data(), queries.size());
  const std::string why = compare_topk(got, queries.data(), gallery.data(), rows, dim, k, 1e-3);
  if (!why.empty()) {
    throw SelfCheckFailure("CUDA top-k mismatch vs the naive loop (" + std::to_string(rows) + "x" +
                           std::to_string(dim) + ", k=" + std::to_string(k) + "): " + why);
  }
}

void bench_cuda(const MatchBenchArgs& args, const Workload& w, BenchReport* report) {
  if (args.k > CudaMatcher::max_k()) {
    throw ArgError("--k " + std::to_string(args.k) + " exceeds the CUDA top-k limit " +
                   std::to_string(CudaMatcher::max_k()));
  }
  cuda_self_check_case(5000, 67, 5, 7, 1500);       // several chunks, partial segments, one merge pass
  cuda_self_check_case(40000, 64, 3, 200, 20000);  // several merge passes (candidates > one segment)
  std::fprintf(stderr, "match_bench: CUDA self-check passed\n");
  report->extra.emplace_back("cuda_self_check", std::string("passed"));

  const int64_t max_n = *std::max_element(args.gallery_sizes.begin(), args.gallery_sizes.end());
  CudaMatcher matcher(w.gallery.data(), max_n, args.dim, CudaMatcherCfg{0, args.chunk_rows});
  const CudaDeviceSummary dev = matcher.describe();
  report->device = {{"kind", std::string("cuda")},
                    {"name", dev.name},
                    {"device_index", static_cast<int64_t>(dev.device_index)},
                    {"compute_capability", std::to_string(dev.cc_major) + "." + std::to_string(dev.cc_minor)},
                    {"memory_gib", static_cast<double>(dev.total_mem_bytes) / (1024.0 * 1024.0 * 1024.0)}};
  report->versions.emplace_back("cuda_runtime", version_string(dev.runtime_version, 1000, 10));
  report->versions.emplace_back("cuda_driver", version_string(dev.driver_version, 1000, 10));
  report->versions.emplace_back("cublas", version_string(dev.cublas_version, 10000, 100));
  TopKResult result;
  for (const int64_t n : args.gallery_sizes) {
    for (const int q : args.queries) {
      for (int i = 0; i < args.warmup; ++i) matcher.search_host(w.queries.data(), q, args.k, n, &result);
      std::vector<double> samples;
      for (int i = 0; i < args.reps; ++i) {
        samples.push_back(matcher.search_host(w.queries.data(), q, args.k, n, &result));
      }
      JsonFields row = make_row("cpp-cuda-cublas", "fp16", "cuda", n, q, args, summarize_ms(samples), "cuda",
                                "cuda events: fp16 query H2D + GEMM + top-k + results D2H (host fp32->fp16 untimed)",
                                2);
      log_row(row);
      report->rows.push_back(std::move(row));
    }
  }
}
#endif

void check_args_against_build(const MatchBenchArgs& args) {
#if !defined(TVREID_BENCH_WITH_CUDA)
  if (args.device == "cuda") {
    throw ArgError("this match_bench was built without CUDA; reconfigure with -DTVREID_BENCH_CUDA=ON "
                   "(needs nvcc and cuBLAS) or use --device cpu");
  }
#endif
  if (!args.json_path.empty()) {
    const size_t slash = args.json_path.find_last_of('/');
    const std::string folder = slash == std::string::npos ? "." : args.json_path.substr(0, std::max<size_t>(slash, 1));
    if (::access(folder.c_str(), W_OK) != 0) {
      throw ArgError("--json folder '" + folder + "' does not exist or is not writable; create it or pick another "
                     "path");
    }
  }
}

int run(const MatchBenchArgs& args) {
  check_args_against_build(args);
  sgemm_pin_single_thread();
  const SelfCheckOutcome check = run_cpu_self_check(args.threads, args.inject_self_check_error);
  if (!check.passed) throw SelfCheckFailure("CPU " + check.detail);
  std::fprintf(stderr, "match_bench: CPU self-check passed (%s)\n", check.detail.c_str());

  BenchReport report;
  report.tool = "match_bench";
  report.version = TVREID_BENCH_VERSION;
  report.date = utc_now_iso8601();
  report.versions = {{"match_bench", std::string(TVREID_BENCH_VERSION)},
                     {"compiler", compiler_version()},
                     {"gemm_library", sgemm_library_version()}};
  report.extra = {{"self_check", std::string("passed")},
                  {"self_check_detail", check.detail},
                  {"seed", static_cast<int64_t>(args.seed)},
                  {"warmup", static_cast<int64_t>(args.warmup)}};

  const Workload workload = make_workload(args);
  std::fprintf(stderr, "match_bench: device=%s dim=%d k=%d reps=%d threads=%d\n", args.device.c_str(), args.dim,
               args.k, args.reps, args.threads);
  if (args.device == "cpu") {
    bench_cpu(args, workload, &report);
  } else {
#if defined(TVREID_BENCH_WITH_CUDA)
    bench_cuda(args, workload, &report);
#endif
  }

  const std::string text = render_report(report);
  if (args.json_path.empty()) {
    std::cout << text;
  } else {
    write_text_atomic(args.json_path, text);
    std::fprintf(stderr, "match_bench: wrote %s\n", args.json_path.c_str());
  }
  return 0;
}

}  // namespace
}  // namespace tvreid_bench

int main(int argc, char** argv) {
  using namespace tvreid_bench;
  MatchBenchArgs args;
  try {
    args = parse_match_bench_args(argc, argv);
  } catch (const ArgError& e) {
    std::fprintf(stderr, "match_bench: error: %s\n", e.what());
    return kExitBadArgs;
  }
  if (args.help) {
    std::cout << match_bench_usage();
    return 0;
  }
  try {
    return run(args);
  } catch (const ArgError& e) {
    std::fprintf(stderr, "match_bench: error: %s\n", e.what());
    return kExitBadArgs;
  } catch (const SelfCheckFailure& e) {
    std::fprintf(stderr, "match_bench: self-check FAILED: %s\n", e.what());
    return kExitSelfCheckFailed;
  } catch (const std::bad_alloc&) {
    const int64_t max_n = *std::max_element(args.gallery_sizes.begin(), args.gallery_sizes.end());
    std::fprintf(stderr, "match_bench: error: out of memory (the gallery alone is %.2f GiB as fp32); "
                 "pass smaller --gallery-sizes or --dim\n", static_cast<double>(max_n) * args.dim * 4 / (1 << 30));
    return kExitRuntimeError;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "match_bench: error: %s\n", e.what());
    return kExitRuntimeError;
  }
}
