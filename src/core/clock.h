// Wall-clock and monotonic time helpers. Thread safe.
#pragma once

#include <cstdint>
#include <string>

namespace serveml {

// Microseconds since the Unix epoch (wall clock).
int64_t NowUnixMicros();
// Seconds since the Unix epoch (wall clock).
int64_t NowUnixSeconds();
// Monotonic nanoseconds, for measuring durations.
int64_t MonotonicNanos();
// "2026-11-26T14:27:22.123456Z" (UTC, microseconds).
std::string FormatIso8601(int64_t unix_micros);

}  // namespace serveml
