// CUDA matcher (see cuda_matcher.h). Layout: gallery fp16 [rows, dim] row-major on the device; per chunk of
// gallery rows, cublasGemmEx writes fp32 scores [q, chunk]; segment_topk_kernel reduces every kSegment-wide slice of
// each row to its k best (score, index) candidates; the same kernel then re-reduces the candidate lists until k remain
// per query.
#include "cuda/cuda_matcher.h"

#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

namespace tvreid_bench {
namespace {

// ------------------------------------------------------------------------------------------------ error checking
void cuda_check(cudaError_t status, const char* expr, const char* file, int line) {
  if (status != cudaSuccess) {
    throw std::runtime_error(std::string("CUDA error ") + cudaGetErrorName(status) + " (" +
                             cudaGetErrorString(status) + ") in " + expr + " at " + file + ":" + std::to_string(line) +
                             "; check that a GPU is visible (nvidia-smi) and the driver supports this CUDA runtime");
  }
}

void cublas_check(cublasStatus_t status, const char* expr, const char* file, int line) {
  if (status != CUBLAS_STATUS_SUCCESS) {
    throw std::runtime_error(std::string("cuBLAS error ") + cublasGetStatusName(status) + " (" +
                             cublasGetStatusString(status) + ") in " + expr + " at " + file + ":" +
                             std::to_string(line));
  }
}

#define TVREID_CUDA_CHECK(expr) cuda_check((expr), #expr, __FILE__, __LINE__)
#define TVREID_CUBLAS_CHECK(expr) cublas_check((expr), #expr, __FILE__, __LINE__)

// ------------------------------------------------------------------------------------------------ buffers (grow-only)
template <typename T>
struct DeviceBuffer {
  T* ptr = nullptr;
  size_t capacity = 0;
  void ensure(size_t count) {
    if (count <= capacity) return;
    release();
    TVREID_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&ptr), count * sizeof(T)));
    capacity = count;
  }
  void release() noexcept {
    if (ptr != nullptr) cudaFree(ptr);
    ptr = nullptr;
    capacity = 0;
  }
  ~DeviceBuffer() { release(); }
};

template <typename T>
struct PinnedBuffer {
  T* ptr = nullptr;
  size_t capacity = 0;
  void ensure(size_t count) {
    if (count <= capacity) return;
    release();
    TVREID_CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&ptr), count * sizeof(T)));
    capacity = count;
  }
  void release() noexcept {
    if (ptr != nullptr) cudaFreeHost(ptr);
    ptr = nullptr;
    capacity = 0;
  }
  ~PinnedBuffer() { release(); }
};

// ------------------------------------------------------------------------------------------------ kernels
constexpr int kThreads = 256;   // threads per top-k block
constexpr int kSegment = 2048;  // row elements one block reduces (scores 8 KiB + indices 16 KiB shared memory)
constexpr int kMaxK = 1024;     // <= kSegment / 2 so every merge pass shrinks the candidate list
constexpr int64_t kScoreBufferBytes = int64_t{256} << 20;
constexpr int kMaxQueries = 65535;  // queries are gridDim.y of the top-k launches

// Ranking: higher score first, then lower index; index -1 marks padding/taken slots and never wins a tie. A NaN score
// never ranks before anything, so NaN rows are dropped (a query with fewer than k non-NaN scores gets -1 indices).
__device__ __forceinline__ bool ranks_before_dev(float sa, long long ia, float sb, long long ib) {
  if (sa != sb) return sa > sb;
  if (ia < 0) return false;
  if (ib < 0) return true;
  return ia < ib;
}

// grid = (segments per row, rows). Reads row r's slice [blockIdx.x * kSegment, +kSegment) of `scores` [rows, in_stride]
// (indices from `in_index` with the same layout, or index_base + column when in_index is null) and writes its k best,
// sorted, to out_scores/out_index [rows, out_stride] at column out_offset + blockIdx.x * k.
__global__ void segment_topk_kernel(const float* __restrict__ scores, const long long* __restrict__ in_index,
                                    long long row_len, long long in_stride, long long index_base, int k,
                                    float* __restrict__ out_scores, long long* __restrict__ out_index,
                                    long long out_stride, long long out_offset) {
  __shared__ float s_score[kSegment];
  __shared__ long long s_index[kSegment];
  __shared__ float w_score[kThreads / 32];
  __shared__ long long w_index[kThreads / 32];
  __shared__ int w_pos[kThreads / 32];

  const long long row = blockIdx.y;
  const long long seg_begin = static_cast<long long>(blockIdx.x) * kSegment;
  const float* row_scores = scores + row * in_stride;  // [row_len]
  for (int t = threadIdx.x; t < kSegment; t += kThreads) {
    const long long col = seg_begin + t;
    if (col < row_len) {
      s_score[t] = row_scores[col];
      s_index[t] = in_index != nullptr ? in_index[row * in_stride + col] : index_base + col;
    } else {
      s_score[t] = -INFINITY;
      s_index[t] = -1;
    }
  }
  __syncthreads();

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  float* out_s = out_scores + row * out_stride + out_offset + static_cast<long long>(blockIdx.x) * k;  // [k]
  long long* out_i = out_index + row * out_stride + out_offset + static_cast<long long>(blockIdx.x) * k;
  for (int r = 0; r < k; ++r) {
    float best_s = -INFINITY;
    long long best_i = -1;
    int best_p = -1;
    for (int t = threadIdx.x; t < kSegment; t += kThreads) {
      if (ranks_before_dev(s_score[t], s_index[t], best_s, best_i)) {
        best_s = s_score[t];
        best_i = s_index[t];
        best_p = t;
      }
    }
    for (int offset = 16; offset > 0; offset >>= 1) {
      const float other_s = __shfl_down_sync(0xffffffffu, best_s, offset);
      const long long other_i = __shfl_down_sync(0xffffffffu, best_i, offset);
      const int other_p = __shfl_down_sync(0xffffffffu, best_p, offset);
      if (ranks_before_dev(other_s, other_i, best_s, best_i)) {
        best_s = other_s;
        best_i = other_i;
        best_p = other_p;
      }
    }
    if (lane == 0) {
      w_score[warp] = best_s;
      w_index[warp] = best_i;
      w_pos[warp] = best_p;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      for (int w = 1; w < kThreads / 32; ++w) {
        if (ranks_before_dev(w_score[w], w_index[w], best_s, best_i)) {
          best_s = w_score[w];
          best_i = w_index[w];
          best_p = w_pos[w];
        }
      }
      out_s[r] = best_s;
      out_i[r] = best_i;
      if (best_p >= 0) {  // take the winner out of the next round
        s_score[best_p] = -INFINITY;
        s_index[best_p] = -1;
      }
    }
    __syncthreads();
  }
}

__global__ void float_to_half_kernel(const float* __restrict__ in, __half* __restrict__ out, long long count) {
  const long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) out[i] = __float2half_rn(in[i]);
}

long long ceil_div(long long a, long long b) { return (a + b - 1) / b; }

}  // namespace

// ------------------------------------------------------------------------------------------------ CudaMatcher
struct CudaMatcher::Impl {
  int device = 0;
  int64_t rows = 0;
  int dim = 0;
  int64_t max_chunk_rows = 0;
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
  cudaEvent_t start = nullptr, stop = nullptr;
  DeviceBuffer<__half> gallery;        // [rows, dim]
  DeviceBuffer<__half> queries;        // [q, dim]
  DeviceBuffer<float> scores;          // [q, chunk]
  DeviceBuffer<float> cand_s[2];       // [q, candidates] ping-pong
  DeviceBuffer<long long> cand_i[2];
  PinnedBuffer<__half> host_queries;   // [q, dim]
  PinnedBuffer<float> host_scores;     // [q, k]
  PinnedBuffer<long long> host_index;  // [q, k]

  ~Impl() {
    // Best effort: destructors must not throw.
    if (start != nullptr) cudaEventDestroy(start);
    if (stop != nullptr) cudaEventDestroy(stop);
    if (cublas != nullptr) cublasDestroy(cublas);
    if (stream != nullptr) cudaStreamDestroy(stream);
  }

  int64_t chunk_rows_for(int q) const {
    const int64_t budget = std::max<int64_t>(kSegment, kScoreBufferBytes / (4 * static_cast<int64_t>(q)) / kSegment *
                                                           kSegment);
    const int64_t chunk = max_chunk_rows > 0 ? max_chunk_rows : budget;
    return std::min<int64_t>(chunk, 1 << 30);  // cuBLAS takes int sizes
  }

  // Sizes of one search: gallery rows per GEMM and first-stage candidates per query.
  struct Plan {
    int64_t chunk = 0;
    long long total = 0;
  };

  Plan plan_for(int q, int k, int64_t rows_used) const {
    Plan p;
    p.chunk = std::min<int64_t>(chunk_rows_for(q), rows_used);
    for (int64_t c0 = 0; c0 < rows_used; c0 += p.chunk) {
      p.total += ceil_div(std::min(p.chunk, rows_used - c0), kSegment) * k;
    }
    return p;
  }

  // Grows every buffer a search needs. Called before the timed region: cudaMalloc/cudaFree/cudaMallocHost inside it
  // would be counted by the CUDA events (the GPU idles while the host allocates), e.g. with --warmup 0.
  void reserve(const Plan& p, int q, int k) {
    queries.ensure(static_cast<size_t>(q) * dim);
    scores.ensure(static_cast<size_t>(q) * p.chunk);
    cand_s[0].ensure(static_cast<size_t>(q) * p.total);
    cand_i[0].ensure(static_cast<size_t>(q) * p.total);
    const long long second = std::max<long long>(k, ceil_div(p.total, kSegment) * k);
    cand_s[1].ensure(static_cast<size_t>(q) * second);
    cand_i[1].ensure(static_cast<size_t>(q) * second);
    host_scores.ensure(static_cast<size_t>(q) * k);
    host_index.ensure(static_cast<size_t>(q) * k);
  }

  // Enqueues GEMM + top-k for device fp16 queries already in `queries` (buffers sized by reserve(p, ...)); results
  // stay on the device. Returns the buffer index (0/1) of cand_s/cand_i holding [q, k] sorted results.
  int enqueue_match(const Plan& p, int q, int k, int64_t rows_used) {
    const int64_t chunk = p.chunk;
    const long long total = p.total;
    const float alpha = 1.0f, beta = 0.0f;
    long long offset = 0;
    for (int64_t c0 = 0; c0 < rows_used; c0 += chunk) {
      const int c_rows = static_cast<int>(std::min(chunk, rows_used - c0));
      // cuBLAS is column-major: the row-major gallery chunk [c_rows, dim] is A = [dim, c_rows] (lda = dim), used as
      // op(A) = A^T; queries [q, dim] are B = [dim, q] (ldb = dim); C = [c_rows, q] (ldc = c_rows) column-major is
      // exactly the row-major scores [q, c_rows].
      TVREID_CUBLAS_CHECK(cublasGemmEx(cublas, CUBLAS_OP_T, CUBLAS_OP_N, c_rows, q, dim, &alpha,
                                       gallery.ptr + static_cast<size_t>(c0) * dim, CUDA_R_16F, dim, queries.ptr,
                                       CUDA_R_16F, dim, &beta, scores.ptr, CUDA_R_32F, c_rows, CUBLAS_COMPUTE_32F,
                                       CUBLAS_GEMM_DEFAULT));
      const dim3 grid(static_cast<unsigned>(ceil_div(c_rows, kSegment)), static_cast<unsigned>(q));
      segment_topk_kernel<<<grid, kThreads, 0, stream>>>(scores.ptr, nullptr, c_rows, c_rows, c0, k, cand_s[0].ptr,
                                                         cand_i[0].ptr, total, offset);
      TVREID_CUDA_CHECK(cudaGetLastError());
      offset += static_cast<long long>(grid.x) * k;
    }
    // Merge passes: each keeps k per kSegment candidates until a single sorted list of k remains.
    int cur = 0;
    long long len = total;
    while (len > k) {
      const long long segments = ceil_div(len, kSegment);
      const dim3 grid(static_cast<unsigned>(segments), static_cast<unsigned>(q));
      segment_topk_kernel<<<grid, kThreads, 0, stream>>>(cand_s[cur].ptr, cand_i[cur].ptr, len, len, 0, k,
                                                         cand_s[1 - cur].ptr, cand_i[1 - cur].ptr, segments * k, 0);
      TVREID_CUDA_CHECK(cudaGetLastError());
      cur = 1 - cur;
      len = segments * k;
    }
    return cur;
  }

  void download(int buffer, int q, int k) {
    TVREID_CUDA_CHECK(cudaMemcpyAsync(host_scores.ptr, cand_s[buffer].ptr, sizeof(float) * q * k,
                                      cudaMemcpyDeviceToHost, stream));
    TVREID_CUDA_CHECK(cudaMemcpyAsync(host_index.ptr, cand_i[buffer].ptr, sizeof(long long) * q * k,
                                      cudaMemcpyDeviceToHost, stream));
  }

  static void copy_out(const PinnedBuffer<float>& s, const PinnedBuffer<long long>& i, int q, int k, TopKResult* out) {
    out->queries = q;
    out->k = k;
    out->scores.assign(s.ptr, s.ptr + static_cast<size_t>(q) * k);
    out->indices.assign(i.ptr, i.ptr + static_cast<size_t>(q) * k);
  }

  void validate(int q, int k, int64_t rows_used) const {
    if (q <= 0 || q > kMaxQueries) {
      throw std::invalid_argument("CUDA search takes 1.." + std::to_string(kMaxQueries) + " queries per call, got " +
                                  std::to_string(q));
    }
    if (rows_used <= 0 || rows_used > rows) throw std::invalid_argument("rows_used must be in [1, gallery rows]");
    if (k <= 0 || k > kMaxK || k > rows_used) {
      throw std::invalid_argument("k=" + std::to_string(k) + " must be in [1, min(" + std::to_string(kMaxK) +
                                  ", gallery rows)]");
    }
  }
};

CudaMatcher::CudaMatcher(const float* host_gallery, int64_t rows, int dim, CudaMatcherCfg cfg)
    : impl_(std::make_unique<Impl>()) {
  if (host_gallery == nullptr || rows <= 0 || dim <= 0) throw std::invalid_argument("CudaMatcher needs a gallery");
  Impl& m = *impl_;
  m.device = cfg.device;
  m.rows = rows;
  m.dim = dim;
  m.max_chunk_rows = cfg.max_chunk_rows;
  TVREID_CUDA_CHECK(cudaSetDevice(cfg.device));
  TVREID_CUDA_CHECK(cudaStreamCreateWithFlags(&m.stream, cudaStreamNonBlocking));
  TVREID_CUBLAS_CHECK(cublasCreate(&m.cublas));
  TVREID_CUBLAS_CHECK(cublasSetStream(m.cublas, m.stream));
  TVREID_CUDA_CHECK(cudaEventCreate(&m.start));
  TVREID_CUDA_CHECK(cudaEventCreate(&m.stop));
  m.gallery.ensure(static_cast<size_t>(rows) * dim);
  // Convert on the host in 16 MiB pieces through a pinned staging buffer (bounded host memory).
  const int64_t piece_rows = std::max<int64_t>(1, (int64_t{8} << 20) / dim);
  PinnedBuffer<__half> staging;
  staging.ensure(static_cast<size_t>(std::min(piece_rows, rows)) * dim);
  for (int64_t r0 = 0; r0 < rows; r0 += piece_rows) {
    const size_t count = static_cast<size_t>(std::min(piece_rows, rows - r0)) * dim;
    const float* src = host_gallery + static_cast<size_t>(r0) * dim;
    for (size_t i = 0; i < count; ++i) staging.ptr[i] = __float2half_rn(src[i]);
    TVREID_CUDA_CHECK(cudaMemcpyAsync(m.gallery.ptr + static_cast<size_t>(r0) * dim, staging.ptr,
                                      count * sizeof(__half), cudaMemcpyHostToDevice, m.stream));
    TVREID_CUDA_CHECK(cudaStreamSynchronize(m.stream));
  }
}

CudaMatcher::~CudaMatcher() = default;

float CudaMatcher::search_host(const float* host_queries, int q, int k, int64_t rows_used, TopKResult* out) {
  Impl& m = *impl_;
  m.validate(q, k, rows_used);
  const size_t count = static_cast<size_t>(q) * m.dim;
  const Impl::Plan plan = m.plan_for(q, k, rows_used);
  m.reserve(plan, q, k);
  m.host_queries.ensure(count);
  for (size_t i = 0; i < count; ++i) m.host_queries.ptr[i] = __float2half_rn(host_queries[i]);
  TVREID_CUDA_CHECK(cudaEventRecord(m.start, m.stream));
  TVREID_CUDA_CHECK(cudaMemcpyAsync(m.queries.ptr, m.host_queries.ptr, count * sizeof(__half),
                                    cudaMemcpyHostToDevice, m.stream));
  const int buffer = m.enqueue_match(plan, q, k, rows_used);
  m.download(buffer, q, k);
  TVREID_CUDA_CHECK(cudaEventRecord(m.stop, m.stream));
  TVREID_CUDA_CHECK(cudaEventSynchronize(m.stop));
  float ms = 0.0f;
  TVREID_CUDA_CHECK(cudaEventElapsedTime(&ms, m.start, m.stop));
  Impl::copy_out(m.host_scores, m.host_index, q, k, out);
  return ms;
}

void CudaMatcher::search_device(const void* device_queries, bool queries_fp16, int q, int k, int64_t rows_used,
                                TopKResult* out) {
  Impl& m = *impl_;
  m.validate(q, k, rows_used);
  const size_t count = static_cast<size_t>(q) * m.dim;
  const Impl::Plan plan = m.plan_for(q, k, rows_used);
  m.reserve(plan, q, k);
  if (queries_fp16) {
    TVREID_CUDA_CHECK(cudaMemcpyAsync(m.queries.ptr, device_queries, count * sizeof(__half),
                                      cudaMemcpyDeviceToDevice, m.stream));
  } else {
    const unsigned blocks = static_cast<unsigned>(ceil_div(static_cast<long long>(count), 256));
    float_to_half_kernel<<<blocks, 256, 0, m.stream>>>(static_cast<const float*>(device_queries), m.queries.ptr,
                                                       static_cast<long long>(count));
    TVREID_CUDA_CHECK(cudaGetLastError());
  }
  const int buffer = m.enqueue_match(plan, q, k, rows_used);
  m.download(buffer, q, k);
  TVREID_CUDA_CHECK(cudaStreamSynchronize(m.stream));
  Impl::copy_out(m.host_scores, m.host_index, q, k, out);
}

void* CudaMatcher::stream() const { return impl_->stream; }

CudaDeviceSummary CudaMatcher::describe() const {
  CudaDeviceSummary s;
  s.device_index = impl_->device;
  cudaDeviceProp prop{};
  TVREID_CUDA_CHECK(cudaGetDeviceProperties(&prop, impl_->device));
  s.name = prop.name;
  s.cc_major = prop.major;
  s.cc_minor = prop.minor;
  s.total_mem_bytes = static_cast<int64_t>(prop.totalGlobalMem);
  TVREID_CUDA_CHECK(cudaRuntimeGetVersion(&s.runtime_version));
  TVREID_CUDA_CHECK(cudaDriverGetVersion(&s.driver_version));
  TVREID_CUBLAS_CHECK(cublasGetVersion(impl_->cublas, &s.cublas_version));
  return s;
}

int CudaMatcher::max_k() { return kMaxK; }

void round_through_fp16(float* data, size_t count) {
  for (size_t i = 0; i < count; ++i) data[i] = __half2float(__float2half_rn(data[i]));
}

}  // namespace tvreid_bench
