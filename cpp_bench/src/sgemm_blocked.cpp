// Built-in cache-blocked SGEMM for scores = queries x gallery^T (used when no CBLAS is available).
// Both operands are row-major with `dim` contiguous, so every score is a contiguous dot product. The kernel computes a
// kQTile x kGTile tile of dot products at once, with kLanes independent partial sums per dot so the compiler can
// vectorise without reassociating floating-point adds. Gallery rows are visited in kGBlock-row blocks that stay in L2
// while all query tiles stream over them.
#include <algorithm>

#include "sgemm.h"

namespace tvreid_bench {
namespace {

constexpr int kLanes = 8;          // independent partial sums per dot product (one AVX register)
constexpr int kQTile = 4;          // queries per micro-tile
constexpr int kGTile = 2;          // gallery rows per micro-tile (kQTile queries)
constexpr int kGTileSingle = 4;    // gallery rows per micro-tile for a lone query (GEMV-like, memory bound)
constexpr int64_t kGBlock = 64;    // gallery rows per cache block (64 x 512 x 4 B = 128 KiB)

template <int QT, int GT>
inline void dot_tile(const float* q, const float* g, int64_t dim, float* out, int64_t ld_out) {
  float acc[QT][GT][kLanes] = {};
  int64_t d = 0;
  for (; d + kLanes <= dim; d += kLanes) {
    for (int i = 0; i < QT; ++i) {
      const float* qi = q + i * dim + d;  // [kLanes]
      for (int j = 0; j < GT; ++j) {
        const float* gj = g + j * dim + d;  // [kLanes]
        for (int l = 0; l < kLanes; ++l) acc[i][j][l] += qi[l] * gj[l];
      }
    }
  }
  for (int i = 0; i < QT; ++i) {
    for (int j = 0; j < GT; ++j) {
      float sum = 0.0f;
      for (int l = 0; l < kLanes; ++l) sum += acc[i][j][l];
      for (int64_t t = d; t < dim; ++t) sum += q[i * dim + t] * g[j * dim + t];  // tail when dim % kLanes != 0
      out[i * ld_out + j] = sum;
    }
  }
}

template <int QT, int GT>
inline void query_tile_over_block(const float* q, const float* g, int64_t rows, int64_t dim, float* out,
                                  int64_t ld_out) {
  int64_t j = 0;
  for (; j + GT <= rows; j += GT) dot_tile<QT, GT>(q, g + j * dim, dim, out + j, ld_out);
  for (; j < rows; ++j) dot_tile<QT, 1>(q, g + j * dim, dim, out + j, ld_out);
}

}  // namespace

void sgemm_scores(const float* queries, int64_t q, const float* gallery, int64_t n, int64_t dim, float* scores,
                  int64_t ld_scores) {
  for (int64_t g0 = 0; g0 < n; g0 += kGBlock) {
    const int64_t rows = std::min(kGBlock, n - g0);
    const float* gblock = gallery + g0 * dim;  // [rows, dim]
    int64_t i = 0;
    for (; i + kQTile <= q; i += kQTile) {
      float* out = scores + i * ld_scores + g0;  // [kQTile, rows] with stride ld_scores
      query_tile_over_block<kQTile, kGTile>(queries + i * dim, gblock, rows, dim, out, ld_scores);
    }
    for (; i < q; ++i) {
      float* out = scores + i * ld_scores + g0;  // [rows]
      query_tile_over_block<1, kGTileSingle>(queries + i * dim, gblock, rows, dim, out, ld_scores);
    }
  }
}

const char* sgemm_backend_name() { return "cpp-cpu-naive-blocked"; }

std::string sgemm_library_version() { return "builtin-blocked-sgemm"; }

bool sgemm_pin_single_thread() { return true; }  // the built-in kernel never spawns threads

}  // namespace tvreid_bench
