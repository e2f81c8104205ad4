// Host facts for the report: CPU name, compiler, UTC date.
#pragma once

#include <string>

namespace tvreid_bench {

/// CPU model name from /proc/cpuinfo, or "unknown-cpu".
std::string cpu_model_name();

/// Compiler name and version, e.g. "gcc 12.2.0".
std::string compiler_version();

/// Current UTC time as ISO-8601, e.g. "2025-01-31T12:00:00Z".
std::string utc_now_iso8601();

}  // namespace tvreid_bench
