#include "bench_json.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include <unistd.h>

namespace tvreid_bench {
namespace {

std::string render_scalar(const JsonScalar& value) {
  if (const auto* s = std::get_if<std::string>(&value)) return json_quote(*s);
  if (const auto* i = std::get_if<int64_t>(&value)) return std::to_string(*i);
  if (const auto* b = std::get_if<bool>(&value)) return *b ? "true" : "false";
  const double d = std::get<double>(value);
  if (!std::isfinite(d)) return "null";  // JSON has no NaN/Inf
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.9g", d);
  return buf;
}

void render_fields(const JsonFields& fields, const std::string& indent, std::string* out) {
  if (fields.empty()) {
    *out += "{}";
    return;
  }
  *out += "{\n";
  for (size_t i = 0; i < fields.size(); ++i) {
    *out += indent + "  " + json_quote(fields[i].first) + ": " + render_scalar(fields[i].second);
    *out += (i + 1 < fields.size()) ? ",\n" : "\n";
  }
  *out += indent + "}";
}

}  // namespace

std::string json_quote(const std::string& text) {
  std::string out = "\"";
  for (const unsigned char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

std::string render_report(const BenchReport& report) {
  std::string out = "{\n";
  out += "  \"tool\": " + json_quote(report.tool) + ",\n";
  out += "  \"version\": " + json_quote(report.version) + ",\n";
  out += "  \"device\": ";
  render_fields(report.device, "  ", &out);
  out += ",\n  \"versions\": ";
  render_fields(report.versions, "  ", &out);
  out += ",\n  \"date\": " + json_quote(report.date) + ",\n";
  for (const auto& [key, value] : report.extra) out += "  " + json_quote(key) + ": " + render_scalar(value) + ",\n";
  out += "  \"rows\": [";
  for (size_t i = 0; i < report.rows.size(); ++i) {
    out += (i == 0) ? "\n    " : ",\n    ";
    render_fields(report.rows[i], "    ", &out);
  }
  out += report.rows.empty() ? "]\n}\n" : "\n  ]\n}\n";
  return out;
}

void write_text_atomic(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) {
    throw std::runtime_error("cannot write '" + path + "': " + std::strerror(errno) +
                             "; pass a --json path inside an existing, writable folder");
  }
  const bool wrote = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  const bool flushed = std::fflush(f) == 0 && ::fsync(::fileno(f)) == 0;
  const bool closed = std::fclose(f) == 0;
  if (!wrote || !flushed || !closed || std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    std::remove(tmp.c_str());
    throw std::runtime_error("writing '" + path + "' failed: " + why + "; check free disk space and permissions");
  }
}

}  // namespace tvreid_bench
