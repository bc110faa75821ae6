// Structured logging: one JSON object per line on stderr, written with a single write(2)
// so lines from many threads never interleave. Thread safe.
//
//   LOG_INFO("server started").Str("host", host).Int("port", port);
//
// The line is emitted when the temporary is destroyed. Never pass passwords, tokens or
// keys: there is no field that is "safe" for a secret.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace serveml::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

void SetLevel(Level level);
Level GetLevel();
// Parses "debug" / "info" / "warn" / "error"; unknown names give kInfo.
Level ParseLevel(std::string_view name);

class Line {
 public:
  Line(Level level, std::string_view msg);
  ~Line();
  Line(const Line&) = delete;
  Line& operator=(const Line&) = delete;

  Line& Str(std::string_view key, std::string_view value);
  Line& Int(std::string_view key, int64_t value);
  Line& Num(std::string_view key, double value);
  Line& Bool(std::string_view key, bool value);

 private:
  bool enabled_;
  std::string buf_;
};

}  // namespace serveml::log

#define LOG_DEBUG(msg) ::serveml::log::Line(::serveml::log::Level::kDebug, msg)
#define LOG_INFO(msg) ::serveml::log::Line(::serveml::log::Level::kInfo, msg)
#define LOG_WARN(msg) ::serveml::log::Line(::serveml::log::Level::kWarn, msg)
#define LOG_ERROR(msg) ::serveml::log::Line(::serveml::log::Level::kError, msg)
