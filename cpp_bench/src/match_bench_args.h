// Command-line flags of match_bench.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace tvreid_bench {

/// Parsed match_bench flags (defaults as documented in cpp_bench/README.md).
struct MatchBenchArgs {
  std::vector<int64_t> gallery_sizes{100000, 1000000};
  std::vector<int> queries{1, 32, 256};
  int k = 10;
  int dim = 512;
  int reps = 20;
  int warmup = 3;
  int threads = 0;          // 0 = std::thread::hardware_concurrency()
  int64_t chunk_rows = 0;   // 0 = auto
  std::string device = "cpu";
  std::string json_path;    // empty = print to stdout
  uint64_t seed = 0;
  bool inject_self_check_error = false;  // test hook: the self-check must then fail
  bool help = false;
};

/// Bad command line; the message says what is wrong and what to pass instead.
class ArgError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Parses argv (accepts "--flag value" and "--flag=value"). Throws ArgError on unknown flags or bad values.
MatchBenchArgs parse_match_bench_args(int argc, char** argv);

/// Usage text for --help.
std::string match_bench_usage();

}  // namespace tvreid_bench
