#include "gallery_gen.h"

#include <algorithm>
#include <cmath>
#include <thread>
#include <vector>

namespace tvreid_bench {
namespace {

// splitmix64: tiny, fast, good enough for benchmark data (not for cryptography).
inline uint64_t splitmix64(uint64_t* state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

void fill_rows(float* out, int64_t begin, int64_t end, int dim, uint64_t seed) {
  for (int64_t r = begin; r < end; ++r) {
    uint64_t state = seed * 0xD1B54A32D192ED03ull + static_cast<uint64_t>(r) * 0x9E3779B97F4A7C15ull;
    float* row = out + r * dim;  // [dim]
    double norm2 = 0.0;
    for (int j = 0; j < dim; ++j) {
      // Uniform in [-1, 1): 24 random mantissa bits.
      const float v = static_cast<float>(splitmix64(&state) >> 40) * (2.0f / 16777216.0f) - 1.0f;
      row[j] = v;
      norm2 += static_cast<double>(v) * v;
    }
    const float inv = norm2 > 0.0 ? static_cast<float>(1.0 / std::sqrt(norm2)) : 0.0f;
    for (int j = 0; j < dim; ++j) row[j] *= inv;
  }
}

}  // namespace

void fill_unit_rows(float* out, int64_t rows, int dim, uint64_t seed, int threads) {
  const int64_t workers = std::max<int64_t>(1, std::min<int64_t>(threads, rows / 1024 + 1));
  std::vector<std::thread> pool;
  const int64_t per = (rows + workers - 1) / workers;
  for (int64_t w = 1; w < workers; ++w) {
    const int64_t b = std::min(rows, w * per), e = std::min(rows, (w + 1) * per);
    pool.emplace_back(fill_rows, out, b, e, dim, seed);
  }
  fill_rows(out, 0, std::min(rows, per), dim, seed);
  for (auto& t : pool) t.join();
}

}  // namespace tvreid_bench
