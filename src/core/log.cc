#include "core/log.h"

#include <unistd.h>

#include <atomic>

#include "core/clock.h"
#include "core/json_writer.h"

namespace serveml::log {
namespace {
std::atomic<int> g_level{static_cast<int>(Level::kInfo)};

std::string_view LevelName(Level l) {
  switch (l) {
    case Level::kDebug: return "debug";
    case Level::kInfo: return "info";
    case Level::kWarn: return "warn";
    case Level::kError: return "error";
  }
  return "info";
}
}  // namespace

void SetLevel(Level level) { g_level.store(static_cast<int>(level)); }
Level GetLevel() { return static_cast<Level>(g_level.load()); }
Level ParseLevel(std::string_view name) {
  if (name == "debug") return Level::kDebug;
  if (name == "warn" || name == "warning") return Level::kWarn;
  if (name == "error") return Level::kError;
  return Level::kInfo;
}

Line::Line(Level level, std::string_view msg) : enabled_(static_cast<int>(level) >= g_level.load()) {
  if (!enabled_) return;
  buf_.reserve(256);
  buf_ += "{\"ts\":";
  AppendJsonString(buf_, FormatIso8601(NowUnixMicros()));
  buf_ += ",\"level\":";
  AppendJsonString(buf_, LevelName(level));
  buf_ += ",\"msg\":";
  AppendJsonString(buf_, msg);
}

Line::~Line() {
  if (!enabled_) return;
  buf_ += "}\n";
  size_t off = 0;
  while (off < buf_.size()) {
    ssize_t n = ::write(2, buf_.data() + off, buf_.size() - off);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
}

Line& Line::Str(std::string_view key, std::string_view value) {
  if (!enabled_) return *this;
  buf_ += ',';
  AppendJsonString(buf_, key);
  buf_ += ':';
  AppendJsonString(buf_, value);
  return *this;
}
Line& Line::Int(std::string_view key, int64_t value) {
  if (!enabled_) return *this;
  buf_ += ',';
  AppendJsonString(buf_, key);
  buf_ += ':';
  AppendJsonInt(buf_, value);
  return *this;
}
Line& Line::Num(std::string_view key, double value) {
  if (!enabled_) return *this;
  buf_ += ',';
  AppendJsonString(buf_, key);
  buf_ += ':';
  AppendJsonNumber(buf_, value);
  return *this;
}
Line& Line::Bool(std::string_view key, bool value) {
  if (!enabled_) return *this;
  buf_ += ',';
  AppendJsonString(buf_, key);
  buf_ += value ? ":true" : ":false";
  return *this;
}

}  // namespace serveml::log
