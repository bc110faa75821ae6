#include "core/clock.h"

#include <chrono>
#include <cstdio>
#include <ctime>

namespace serveml {

int64_t NowUnixMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t NowUnixSeconds() { return NowUnixMicros() / 1000000; }

int64_t MonotonicNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string FormatIso8601(int64_t unix_micros) {
  int64_t us = unix_micros % 1000000;
  if (us < 0) us += 1000000;  // floor for times before the epoch
  time_t secs = static_cast<time_t>((unix_micros - us) / 1000000);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<long long>(us));
  return buf;
}

}  // namespace serveml
