#include "match_bench_args.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <thread>

namespace tvreid_bench {
namespace {

int64_t parse_int(const std::string& flag, const std::string& text, int64_t lo, int64_t hi) {
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno == ERANGE || v < lo || v > hi) {
    throw ArgError(flag + " expects an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got '" +
                   text + "'");
  }
  return v;
}

std::vector<int64_t> parse_int_list(const std::string& flag, const std::string& text, int64_t lo, int64_t hi) {
  std::vector<int64_t> out;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = text.find(',', start);
    const std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    out.push_back(parse_int(flag, item, lo, hi));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

}  // namespace

std::string match_bench_usage() {
  return "usage: match_bench [--gallery-sizes 100000,1000000] [--queries 1,32,256] [--k 10] [--dim 512]\n"
         "                   [--reps 20] [--warmup 3] [--threads N] [--chunk-rows 0] [--device cpu|cuda]\n"
         "                   [--seed 0] [--json out.json]\n"
         "Benchmarks text-query matching (scores = Q x N GEMM + per-query top-k) on random L2-normalised\n"
         "embeddings and writes JSON in the `tvreid bench` schema (stdout when --json is not given).\n"
         "A self-check against a naive loop runs first; a mismatch exits with status 3.\n";
}

MatchBenchArgs parse_match_bench_args(int argc, char** argv) {
  MatchBenchArgs a;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    std::string value;
    bool has_inline = false;
    if (const size_t eq = flag.find('='); flag.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
      has_inline = true;
    }
    if (flag == "--help" || flag == "-h") {
      a.help = true;
      continue;
    }
    if (flag == "--inject-self-check-error") {
      a.inject_self_check_error = true;
      continue;
    }
    if (!has_inline) {
      if (i + 1 >= argc) throw ArgError(flag + " needs a value; see --help");
      value = argv[++i];
    }
    constexpr int64_t kMaxInt = 2147483647;
    if (flag == "--gallery-sizes") {
      a.gallery_sizes = parse_int_list(flag, value, 1, int64_t{1} << 40);
    } else if (flag == "--queries") {
      a.queries.clear();
      for (int64_t q : parse_int_list(flag, value, 1, 65535)) a.queries.push_back(static_cast<int>(q));
    } else if (flag == "--k") {
      a.k = static_cast<int>(parse_int(flag, value, 1, 1024));
    } else if (flag == "--dim") {
      a.dim = static_cast<int>(parse_int(flag, value, 1, 65536));
    } else if (flag == "--reps") {
      a.reps = static_cast<int>(parse_int(flag, value, 1, 1000000));
    } else if (flag == "--warmup") {
      a.warmup = static_cast<int>(parse_int(flag, value, 0, 1000000));
    } else if (flag == "--threads") {
      a.threads = static_cast<int>(parse_int(flag, value, 1, 4096));
    } else if (flag == "--chunk-rows") {
      a.chunk_rows = parse_int(flag, value, 0, kMaxInt);
    } else if (flag == "--seed") {
      a.seed = static_cast<uint64_t>(parse_int(flag, value, 0, INT64_MAX));
    } else if (flag == "--device") {
      if (value != "cpu" && value != "cuda") throw ArgError("--device expects 'cpu' or 'cuda', got '" + value + "'");
      a.device = value;
    } else if (flag == "--json") {
      if (value.empty()) throw ArgError("--json needs a file path");
      a.json_path = value;
    } else {
      throw ArgError("unknown flag '" + flag + "'; see --help for the supported flags");
    }
  }
  if (a.threads == 0) a.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int64_t smallest = *std::min_element(a.gallery_sizes.begin(), a.gallery_sizes.end());
  if (a.k > smallest) {
    throw ArgError("--k " + std::to_string(a.k) + " exceeds the smallest gallery size " + std::to_string(smallest) +
                   "; pass a smaller --k or larger --gallery-sizes");
  }
  return a;
}

}  // namespace tvreid_bench
