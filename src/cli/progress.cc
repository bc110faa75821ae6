#include "cli/progress.h"

#include <algorithm>
#include <cmath>

namespace serveml::cli {

std::string FormatBytes(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  double value = static_cast<double>(bytes) / 1024.0;
  size_t unit = 0;
  while (value >= 1024.0 && unit + 1 < std::size(kUnits)) {
    value /= 1024.0;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f %s", value, kUnits[unit]);
  return buf;
}

std::string FormatRate(double bytes_per_second) {
  if (!std::isfinite(bytes_per_second) || bytes_per_second < 0) return "-- B/s";
  return FormatBytes(static_cast<uint64_t>(bytes_per_second)) + "/s";
}

std::string FormatProgressLine(uint64_t sent, uint64_t total, double elapsed_seconds,
                               int bar_width) {
  const double rate = elapsed_seconds > 0 ? static_cast<double>(sent) / elapsed_seconds : -1;
  std::string line;
  if (total > 0) {
    const uint64_t clamped = std::min(sent, total);
    const double fraction = static_cast<double>(clamped) / static_cast<double>(total);
    const int width = std::max(bar_width, 1);
    const int filled = static_cast<int>(fraction * width);
    line += '[';
    line.append(static_cast<size_t>(filled), '#');
    line.append(static_cast<size_t>(width - filled), '-');
    line += ']';
    char pct[16];
    std::snprintf(pct, sizeof(pct), " %3d%%  ", static_cast<int>(fraction * 100.0));
    line += pct;
    line += FormatBytes(clamped) + " / " + FormatBytes(total);
  } else {
    line += FormatBytes(sent);
  }
  line += "  " + FormatRate(rate);
  return line;
}

ProgressRenderer::ProgressRenderer(FILE* out, std::chrono::milliseconds min_interval)
    : out_(out), min_interval_(min_interval), start_(std::chrono::steady_clock::now()) {}

void ProgressRenderer::Update(uint64_t sent, uint64_t total) {
  if (finished_ || done_) return;
  if (sent == 0 && total == 0) return;  // nothing known yet: do not draw an empty line
  const auto now = std::chrono::steady_clock::now();
  const bool complete = total > 0 && sent >= total;
  if (drawn_ && !complete && now - last_draw_ < min_interval_) return;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const std::string line = FormatProgressLine(sent, total, elapsed);
  std::fprintf(out_, "\rUploading %s\x1b[K", line.c_str());
  std::fflush(out_);
  drawn_ = true;
  done_ = complete;
  last_draw_ = now;
}

void ProgressRenderer::Finish() {
  if (finished_) return;
  finished_ = true;
  if (drawn_) {
    std::fputc('\n', out_);
    std::fflush(out_);
  }
}

}  // namespace serveml::cli
