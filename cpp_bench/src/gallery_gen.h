// Deterministic random L2-normalised embeddings for benchmarks and self-checks.
#pragma once

#include <cstdint>

namespace tvreid_bench {

/// Fills `out` [rows, dim] (row-major fp32) with random unit-norm rows. Row r depends only on (seed, r),
/// so a prefix of a larger matrix equals the smaller matrix and the thread count never changes the data.
void fill_unit_rows(float* out, int64_t rows, int dim, uint64_t seed, int threads);

}  // namespace tvreid_bench
