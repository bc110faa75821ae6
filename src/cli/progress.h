// Upload progress display for `serveml deploy`: pure formatting (unit-tested) plus a small
// stateful renderer that throttles redraws and writes to a FILE* (stderr, only on a TTY).
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace serveml::cli {

// Human-readable byte count with binary units: "512 B", "1.5 KiB", "12.3 MiB", "2.0 GiB".
std::string FormatBytes(uint64_t bytes);

// A transfer rate: FormatBytes(bytes_per_second) + "/s"; "-- B/s" when not yet known
// (negative or non-finite input).
std::string FormatRate(double bytes_per_second);

// One progress line, without a trailing newline, e.g.
//   "[##########----------]  50%  1.0 MiB / 2.0 MiB  512.0 KiB/s"
// `total` 0 means unknown: the bar is omitted and only bytes and rate are shown.
// `sent` above `total` is clamped to 100 %. `elapsed_seconds` <= 0 gives an unknown rate.
std::string FormatProgressLine(uint64_t sent, uint64_t total, double elapsed_seconds,
                               int bar_width = 24);

// Draws FormatProgressLine on one terminal line ("\r" + line + erase-to-end), at most
// every `min_interval`, always drawing the first update and the one reaching `total`.
class ProgressRenderer {
 public:
  explicit ProgressRenderer(
      FILE* out, std::chrono::milliseconds min_interval = std::chrono::milliseconds(100));
  // Called from the transfer loop with cumulative bytes sent and the total (0 if unknown).
  void Update(uint64_t sent, uint64_t total);
  // Ends the line (prints "\n") if anything was drawn. Idempotent.
  void Finish();

 private:
  FILE* out_;
  std::chrono::milliseconds min_interval_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
  bool drawn_ = false;
  bool done_ = false;
  bool finished_ = false;
};

}  // namespace serveml::cli
