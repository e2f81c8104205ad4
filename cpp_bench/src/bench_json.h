// JSON report shared by match_bench and trt_bench; same schema as `tvreid bench` (see cpp_bench/README.md).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace tvreid_bench {

/// One JSON scalar: string, integer, floating point (non-finite -> null) or boolean.
using JsonScalar = std::variant<std::string, int64_t, double, bool>;

/// Ordered key/value pairs rendered as one flat JSON object (insertion order is kept).
using JsonFields = std::vector<std::pair<std::string, JsonScalar>>;

/// Whole benchmark report: {"tool", "version", "device", "versions", "date", <extra...>, "rows"}.
struct BenchReport {
  std::string tool;             // "match_bench" | "trt_bench"
  std::string version;          // tvreid version the tool was built from
  JsonFields device;            // must start with "kind" ("cpu" | "cuda") and "name"
  JsonFields versions;          // library/compiler versions
  std::string date;             // ISO-8601 UTC
  JsonFields extra;             // extra top-level scalars, e.g. {"self_check": "passed"}
  std::vector<JsonFields> rows; // one object per measured configuration
};

/// Escapes `text` as a JSON string literal, quotes included.
std::string json_quote(const std::string& text);

/// Renders `report` as pretty-printed JSON text (trailing newline included).
std::string render_report(const BenchReport& report);

/// Writes `text` to `path` atomically: a temp file in the same folder, then rename over `path`.
/// Throws std::runtime_error naming the path when the folder is missing or not writable.
void write_text_atomic(const std::string& path, const std::string& text);

}  // namespace tvreid_bench
