// trt_bench: latency of a bundle's TensorRT engines (TensorRT 10/11 C++ API: setInputShape, setTensorAddress,
// enqueueV3), including a full text query = token upload + text engine + fp16 match over a GPU gallery + top-k
// download.
// Engines are executable artifacts: load only plans you built yourself. Not compiled in CI (needs NvInfer.h and a GPU).
#include <NvInfer.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench_json.h"
#include "bench_stats.h"
#include "cuda/cuda_matcher.h"
#include "gallery_gen.h"
#include "system_info.h"

namespace tvreid_bench {
namespace {

#define TRT_BENCH_CUDA_CHECK(expr)                                                                        \
  do {                                                                                                    \
    const cudaError_t status_ = (expr);                                                                   \
    if (status_ != cudaSuccess) {                                                                         \
      throw std::runtime_error(std::string("CUDA error ") + cudaGetErrorName(status_) + " in " #expr " (" + \
                               cudaGetErrorString(status_) + ")");                                        \
    }                                                                                                     \
  } while (0)

struct Args {
  std::string text_engine, tokens_path, video_engine, json_path, precision = "fp16";
  int64_t gallery_size = 1000000;
  int k = 10, reps = 100, warmup = 10, video_batch = 0;
};

class Logger : public nvinfer1::ILogger {
 public:
  void log(Severity severity, const char* msg) noexcept override {
    if (severity <= Severity::kWARNING) std::fprintf(stderr, "[TensorRT] %s\n", msg);
    if (severity <= Severity::kERROR) last_error = msg;
  }
  std::string last_error;
};

struct DeviceMemory {
  void* ptr = nullptr;
  ~DeviceMemory() { if (ptr != nullptr) cudaFree(ptr); }
};

size_t element_size(nvinfer1::DataType t) {
  switch (t) {
    case nvinfer1::DataType::kFLOAT: case nvinfer1::DataType::kINT32: return 4;
    case nvinfer1::DataType::kHALF: case nvinfer1::DataType::kBF16: return 2;
    case nvinfer1::DataType::kINT64: return 8;
    case nvinfer1::DataType::kINT8: case nvinfer1::DataType::kUINT8: case nvinfer1::DataType::kBOOL: return 1;
    default: throw std::runtime_error("unsupported tensor data type in engine; trt_bench handles fp32/fp16/int");
  }
}

int64_t volume(const nvinfer1::Dims& d) {
  int64_t v = 1;
  for (int i = 0; i < d.nbDims; ++i) v *= d.d[i];
  return v;
}

std::string dims_text(const nvinfer1::Dims& d) {
  std::string s;
  for (int i = 0; i < d.nbDims; ++i) s += (i ? "x" : "") + std::to_string(d.d[i]);
  return s;
}

/// One deserialized engine with its execution context and device buffers for every I/O tensor.
struct EngineRunner {
  std::unique_ptr<nvinfer1::ICudaEngine> engine;
  std::unique_ptr<nvinfer1::IExecutionContext> context;
  std::vector<std::string> inputs, outputs;
  std::vector<std::unique_ptr<DeviceMemory>> buffers;

  EngineRunner(nvinfer1::IRuntime& runtime, Logger& logger, const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read engine '" + path + "'; pass the .plan path from the bundle");
    const std::vector<char> blob((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    engine.reset(runtime.deserializeCudaEngine(blob.data(), blob.size()));
    if (!engine) {
      throw std::runtime_error("TensorRT could not deserialize '" + path + "' (" + logger.last_error +
                               "); plans are tied to the TensorRT version and GPU: rebuild it on this machine");
    }
    context.reset(engine->createExecutionContext());
    if (!context) throw std::runtime_error("createExecutionContext failed for '" + path + "': " + logger.last_error);
    for (int i = 0; i < engine->getNbIOTensors(); ++i) {
      const char* name = engine->getIOTensorName(i);
      (engine->getTensorIOMode(name) == nvinfer1::TensorIOMode::kINPUT ? inputs : outputs).emplace_back(name);
    }
  }

  /// After every input shape is set: allocates each I/O tensor and binds its address.
  void bind_all() {
    if (!context->allInputDimensionsSpecified()) throw std::runtime_error("not every engine input shape was set");
    buffers.clear();
    for (const auto* names : {&inputs, &outputs}) {
      for (const auto& name : *names) {
        const nvinfer1::Dims shape = context->getTensorShape(name.c_str());
        auto mem = std::make_unique<DeviceMemory>();
        const size_t bytes = std::max<size_t>(1, volume(shape) * element_size(engine->getTensorDataType(name.c_str())));
        TRT_BENCH_CUDA_CHECK(cudaMalloc(&mem->ptr, bytes));
        TRT_BENCH_CUDA_CHECK(cudaMemset(mem->ptr, 0, bytes));  // defined contents (zeros) for synthetic inputs
        if (!context->setTensorAddress(name.c_str(), mem->ptr)) throw std::runtime_error("setTensorAddress " + name);
        buffers.push_back(std::move(mem));
      }
    }
    // cudaMemset runs on the legacy default stream, which does not order with the matcher's non-blocking stream
    // that enqueueV3 uses: wait for the zeros to land before any engine work is enqueued.
    TRT_BENCH_CUDA_CHECK(cudaDeviceSynchronize());
  }

  void* address(const std::string& name) const { return const_cast<void*>(context->getTensorAddress(name.c_str())); }

  void enqueue(cudaStream_t stream) {
    if (!context->enqueueV3(stream)) throw std::runtime_error("enqueueV3 failed");
  }
};

/// "major.minor.patch" from TensorRT 10+'s getInferLibVersion() (major * 10000 + minor * 100 + patch).
std::string trt_version_string(int32_t v) {
  return std::to_string(v / 10000) + "." + std::to_string((v / 100) % 100) + "." + std::to_string(v % 100);
}

/// "major.minor" from a CUDA runtime/driver version (major * 1000 + minor * 10) or cuBLAS (major * 10000 + minor * 100).
std::string version_string(int v, int major_div, int minor_div) {
  return std::to_string(v / major_div) + "." + std::to_string((v / minor_div) % 100);
}

std::vector<std::vector<int64_t>> read_tokens(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    throw std::runtime_error("cannot read token ids '" + path + "'; write one query per line, ids separated by spaces");
  }
  std::vector<std::vector<int64_t>> rows;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ss(line);
    std::vector<int64_t> ids;
    for (int64_t id; ss >> id;) ids.push_back(id);
    if (!ids.empty()) rows.push_back(std::move(ids));
  }
  if (rows.empty()) throw std::runtime_error("'" + path + "' holds no token ids");
  for (const auto& r : rows) {
    if (r.size() != rows[0].size()) throw std::runtime_error("every line of '" + path + "' needs the same length");
  }
  return rows;
}

LatencyStats time_reps(int warmup, int reps, const std::function<void()>& fn) {
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<double> samples;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    samples.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return summarize_ms(samples);
}

int run(const Args& args) {
  Logger logger;
  std::unique_ptr<nvinfer1::IRuntime> runtime(nvinfer1::createInferRuntime(logger));
  if (!runtime) throw std::runtime_error("createInferRuntime failed: " + logger.last_error);
  EngineRunner text(*runtime, logger, args.text_engine);
  const auto tokens = read_tokens(args.tokens_path);
  const int batch = static_cast<int>(tokens.size()), length = static_cast<int>(tokens[0].size());

  // Inputs: token ids [B, L] (int32/int64) and optionally an EOT index [B] (position of the largest id, CLIP style).
  std::vector<std::pair<std::string, std::vector<char>>> host_inputs;
  for (const auto& name : text.inputs) {
    const nvinfer1::DataType type = text.engine->getTensorDataType(name.c_str());
    const int rank = text.engine->getTensorShape(name.c_str()).nbDims;
    if (type != nvinfer1::DataType::kINT32 && type != nvinfer1::DataType::kINT64) {
      throw std::runtime_error("text engine input '" + name + "' is not integer; trt_bench feeds token ids only");
    }
    std::vector<int64_t> values;
    nvinfer1::Dims shape{};
    shape.nbDims = rank;
    if (rank == 2) {
      shape.d[0] = batch;
      shape.d[1] = length;
      for (const auto& row : tokens) values.insert(values.end(), row.begin(), row.end());
    } else if (rank == 1) {
      shape.d[0] = batch;
      for (const auto& row : tokens) values.push_back(std::max_element(row.begin(), row.end()) - row.begin());
    } else {
      throw std::runtime_error("text engine input '" + name + "' has rank " + std::to_string(rank) +
                               "; trt_bench feeds token ids [B, L] and an optional EOT index [B]");
    }
    if (!text.context->setInputShape(name.c_str(), shape)) {
      throw std::runtime_error("shape " + dims_text(shape) + " is outside the engine profile for '" + name + "'");
    }
    std::vector<char> bytes(values.size() * element_size(type));
    for (size_t i = 0; i < values.size(); ++i) {
      if (type == nvinfer1::DataType::kINT32) {
        reinterpret_cast<int32_t*>(bytes.data())[i] = static_cast<int32_t>(values[i]);
      } else {
        reinterpret_cast<int64_t*>(bytes.data())[i] = values[i];
      }
    }
    host_inputs.emplace_back(name, std::move(bytes));
  }
  text.bind_all();
  const std::string emb_name = text.outputs.at(0);
  const nvinfer1::Dims emb_shape = text.context->getTensorShape(emb_name.c_str());  // [B, D]
  const nvinfer1::DataType emb_type = text.engine->getTensorDataType(emb_name.c_str());
  if (emb_shape.nbDims != 2 || (emb_type != nvinfer1::DataType::kFLOAT && emb_type != nvinfer1::DataType::kHALF)) {
    throw std::runtime_error("text engine output '" + emb_name + "' must be fp32/fp16 [B, D], got " +
                             dims_text(emb_shape));
  }
  const int dim = static_cast<int>(emb_shape.d[1]);

  std::vector<float> gallery(static_cast<size_t>(args.gallery_size) * dim);  // [N, D]
  fill_unit_rows(gallery.data(), args.gallery_size, dim, /*seed=*/0, 8);
  CudaMatcher matcher(gallery.data(), args.gallery_size, dim, CudaMatcherCfg{});
  std::vector<float>().swap(gallery);
  const auto stream = static_cast<cudaStream_t>(matcher.stream());

  auto upload_and_encode = [&] {
    for (const auto& [name, bytes] : host_inputs) {
      TRT_BENCH_CUDA_CHECK(
          cudaMemcpyAsync(text.address(name), bytes.data(), bytes.size(), cudaMemcpyHostToDevice, stream));
    }
    text.enqueue(stream);
  };
  TopKResult result;
  // text_encode ends with the embeddings on the host, as `tvreid bench` text_encode rows do.
  std::vector<char> host_embeddings(static_cast<size_t>(batch) * dim * element_size(emb_type));  // [B, D]
  const LatencyStats encode = time_reps(args.warmup, args.reps, [&] {
    upload_and_encode();
    TRT_BENCH_CUDA_CHECK(cudaMemcpyAsync(host_embeddings.data(), text.address(emb_name), host_embeddings.size(),
                                         cudaMemcpyDeviceToHost, stream));
    TRT_BENCH_CUDA_CHECK(cudaStreamSynchronize(stream));
  });
  const LatencyStats query = time_reps(args.warmup, args.reps, [&] {
    upload_and_encode();
    matcher.search_device(text.address(emb_name), emb_type == nvinfer1::DataType::kHALF, batch, args.k,
                          args.gallery_size, &result);
  });

  const CudaDeviceSummary dev = matcher.describe();
  BenchReport report;
  report.tool = "trt_bench";
  report.version = TVREID_BENCH_VERSION;
  report.date = utc_now_iso8601();
  report.device = {{"kind", std::string("cuda")}, {"name", dev.name},
                   {"device_index", static_cast<int64_t>(dev.device_index)},
                   {"compute_capability", std::to_string(dev.cc_major) + "." + std::to_string(dev.cc_minor)},
                   {"memory_gib", static_cast<double>(dev.total_mem_bytes) / (1024.0 * 1024.0 * 1024.0)}};
  report.versions = {{"trt_bench", std::string(TVREID_BENCH_VERSION)},
                     {"tensorrt_lib", trt_version_string(getInferLibVersion())},
                     {"cuda_runtime", version_string(dev.runtime_version, 1000, 10)},
                     {"cuda_driver", version_string(dev.driver_version, 1000, 10)},
                     {"cublas", version_string(dev.cublas_version, 10000, 100)}};
  JsonFields encode_row = report_row("text_encode", "cpp-trt", args.precision, "cuda", encode, "host",
                                     "host steady_clock: token ids on the host -> text engine -> embeddings on "
                                     "the host");
  encode_row.emplace_back("batch", static_cast<int64_t>(batch));
  encode_row.emplace_back("tokens", static_cast<int64_t>(length));
  encode_row.emplace_back("dim", static_cast<int64_t>(dim));
  encode_row.emplace_back("items_per_s", batch / (encode.p50_ms * 1e-3));
  report.rows.push_back(std::move(encode_row));

  JsonFields query_row = report_row("text_query", "cpp-trt", args.precision, "cuda", query, "host",
                                    "host steady_clock: token ids on the host -> text engine -> fp16 GEMM + top-k "
                                    "on the GPU -> top-k on the host (no tokenisation)");
  query_row.emplace_back("batch", static_cast<int64_t>(batch));
  query_row.emplace_back("matcher", std::string("cpp-cuda-cublas-fp16"));
  query_row.emplace_back("gallery_size", args.gallery_size);
  query_row.emplace_back("k", static_cast<int64_t>(args.k));
  query_row.emplace_back("tokens", static_cast<int64_t>(length));
  query_row.emplace_back("dim", static_cast<int64_t>(dim));
  report.rows.push_back(std::move(query_row));

  if (!args.video_engine.empty()) {  // random frames at the profile's opt shape, GPU-resident I/O
    EngineRunner video(*runtime, logger, args.video_engine);
    std::string shape_text;
    for (const auto& name : video.inputs) {
      nvinfer1::Dims shape = video.engine->getProfileShape(name.c_str(), 0, nvinfer1::OptProfileSelector::kOPT);
      if (args.video_batch > 0 && shape.nbDims > 0) shape.d[0] = args.video_batch;
      if (!video.context->setInputShape(name.c_str(), shape)) {
        throw std::runtime_error("video input '" + name + "' rejects shape " + dims_text(shape));
      }
      shape_text += (shape_text.empty() ? "" : ",") + name + ":" + dims_text(shape);
    }
    video.bind_all();  // zero-filled frames: latency does not depend on pixel values
    const LatencyStats vs = time_reps(args.warmup, args.reps, [&] {
      video.enqueue(stream);
      TRT_BENCH_CUDA_CHECK(cudaStreamSynchronize(stream));
    });
    JsonFields row = report_row("video_embed", "cpp-trt", args.precision, "cuda", vs, "host",
                                "host steady_clock around enqueueV3 + stream sync; zero-filled inputs and outputs "
                                "stay on the GPU (no H2D/D2H)");
    const nvinfer1::Dims first = video.context->getTensorShape(video.inputs.at(0).c_str());
    if (first.nbDims > 0) row.emplace_back("batch", static_cast<int64_t>(first.d[0]));
    row.emplace_back("input_shapes", shape_text);
    report.rows.push_back(std::move(row));
  }

  const std::string text_out = render_report(report);
  if (args.json_path.empty()) std::cout << text_out;
  else write_text_atomic(args.json_path, text_out);
  return 0;
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) throw std::invalid_argument(flag + " needs a value");
    const std::string v = argv[++i];
    if (flag == "--text-engine") a.text_engine = v;
    else if (flag == "--tokens") a.tokens_path = v;
    else if (flag == "--video-engine") a.video_engine = v;
    else if (flag == "--video-batch") a.video_batch = std::stoi(v);
    else if (flag == "--gallery-size") a.gallery_size = std::stoll(v);
    else if (flag == "--k") a.k = std::stoi(v);
    else if (flag == "--reps") a.reps = std::stoi(v);
    else if (flag == "--warmup") a.warmup = std::stoi(v);
    else if (flag == "--precision") a.precision = v;
    else if (flag == "--json") a.json_path = v;
    else throw std::invalid_argument("unknown flag '" + flag + "'");
  }
  if (a.text_engine.empty() || a.tokens_path.empty()) {
    throw std::invalid_argument("--text-engine and --tokens are required");
  }
  if (a.k < 1 || a.k > CudaMatcher::max_k() || a.gallery_size < a.k || a.reps < 1 || a.warmup < 0) {
    throw std::invalid_argument("need 1 <= k <= min(1024, --gallery-size), --reps >= 1, --warmup >= 0");
  }
  return a;
}

}  // namespace
}  // namespace tvreid_bench

int main(int argc, char** argv) {
  tvreid_bench::Args args;
  try {
    args = tvreid_bench::parse(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "trt_bench: error: %s\nusage: trt_bench --text-engine text.plan --tokens ids.txt "
                 "[--video-engine video.plan --video-batch B] [--gallery-size N] [--k K] [--reps R] [--warmup W] "
                 "[--precision fp16|fp32] [--json out.json]\n", e.what());
    return 2;
  }
  try {
    return tvreid_bench::run(args);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "trt_bench: error: %s\n", e.what());
    return 1;
  }
}
