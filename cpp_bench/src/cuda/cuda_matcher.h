// CUDA matcher: fp16 gallery resident on the GPU, cuBLAS GemmEx (fp16 in, fp32 compute/out) in bounded chunks, and a
// block-wise top-k kernel whose per-segment winners are merged by re-running it until k remain.
// This header has no CUDA includes so plain C++ translation units (match_bench_main.cpp, trt_bench) can use it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "topk.h"

namespace tvreid_bench {

/// Facts about the GPU and CUDA libraries, for the report.
struct CudaDeviceSummary {
  int device_index = 0;
  std::string name;
  int cc_major = 0;
  int cc_minor = 0;
  int64_t total_mem_bytes = 0;
  int runtime_version = 0;  // e.g. 13000
  int driver_version = 0;
  int cublas_version = 0;   // e.g. 130002
};

/// Settings for CudaMatcher.
struct CudaMatcherCfg {
  int device = 0;
  int64_t max_chunk_rows = 0;  // gallery rows per GEMM; 0 = auto (fp32 score buffer <= 256 MiB)
};

class CudaMatcher {
 public:
  /// Converts host fp32 gallery [rows, dim] to fp16 and uploads it. Throws std::runtime_error on any CUDA/cuBLAS error.
  CudaMatcher(const float* host_gallery, int64_t rows, int dim, CudaMatcherCfg cfg);
  ~CudaMatcher();
  CudaMatcher(const CudaMatcher&) = delete;
  CudaMatcher& operator=(const CudaMatcher&) = delete;

  /// Top-k over the first `rows_used` gallery rows for host fp32 queries [q, dim]. Returns the CUDA-event time in ms of
  /// query upload + GEMM + top-k + result download (fp32->fp16 query conversion on the host is outside the timing).
  float search_host(const float* host_queries, int q, int k, int64_t rows_used, TopKResult* out);

  /// Same for queries already on the device ([q, dim], fp32 or fp16), enqueued on stream(); returns after the results
  /// are on the host.
  void search_device(const void* device_queries, bool queries_fp16, int q, int k, int64_t rows_used, TopKResult* out);

  /// The cudaStream_t all work is enqueued on (as void* to keep CUDA headers out of this file).
  void* stream() const;

  CudaDeviceSummary describe() const;

  /// Largest supported k.
  static int max_k();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Rounds `count` host floats through fp16 in place (the CUDA self-check's reference sees the GPU's inputs).
void round_through_fp16(float* data, size_t count);

}  // namespace tvreid_bench
