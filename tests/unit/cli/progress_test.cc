#include "cli/progress.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <limits>
#include <thread>

namespace serveml::cli {
namespace {

TEST(FormatBytesTest, Units) {
  EXPECT_EQ(FormatBytes(0), "0 B");
  EXPECT_EQ(FormatBytes(1023), "1023 B");
  EXPECT_EQ(FormatBytes(1024), "1.0 KiB");
  EXPECT_EQ(FormatBytes(1536), "1.5 KiB");
  EXPECT_EQ(FormatBytes(10 * 1024 * 1024 + 300 * 1024), "10.3 MiB");
  EXPECT_EQ(FormatBytes(3ull * 1024 * 1024 * 1024), "3.0 GiB");
  EXPECT_EQ(FormatBytes(5ull << 40), "5.0 TiB");
  EXPECT_EQ(FormatBytes(5ull << 50), "5120.0 TiB");
}

TEST(FormatRateTest, KnownAndUnknown) {
  EXPECT_EQ(FormatRate(2048), "2.0 KiB/s");
  EXPECT_EQ(FormatRate(-1), "-- B/s");
  EXPECT_EQ(FormatRate(std::numeric_limits<double>::infinity()), "-- B/s");
}

TEST(FormatProgressLineTest, HalfWay) {
  EXPECT_EQ(FormatProgressLine(1024 * 1024, 2 * 1024 * 1024, 2.0, 10),
            "[#####-----]  50%  1.0 MiB / 2.0 MiB  512.0 KiB/s");
}

TEST(FormatProgressLineTest, StartAndEnd) {
  EXPECT_EQ(FormatProgressLine(0, 100, 0, 4), "[----]   0%  0 B / 100 B  -- B/s");
  EXPECT_EQ(FormatProgressLine(100, 100, 1, 4), "[####] 100%  100 B / 100 B  100 B/s");
  // More than the total (e.g. multipart overhead) is clamped.
  EXPECT_EQ(FormatProgressLine(150, 100, 1, 4), "[####] 100%  100 B / 100 B  150 B/s");
}

TEST(FormatProgressLineTest, UnknownTotal) {
  EXPECT_EQ(FormatProgressLine(2048, 0, 1, 10), "2.0 KiB  2.0 KiB/s");
}

class Capture {
 public:
  Capture() : f_(std::tmpfile()) {}
  ~Capture() { std::fclose(f_); }
  FILE* file() { return f_; }
  std::string Text() {
    std::fflush(f_);
    std::rewind(f_);
    std::string out;
    char buf[512];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), f_)) > 0) out.append(buf, n);
    return out;
  }

 private:
  FILE* f_;
};

int Count(const std::string& s, char c) {
  int n = 0;
  for (char x : s) n += x == c;
  return n;
}

TEST(ProgressRendererTest, ThrottlesButDrawsFirstAndLastThenEndsLine) {
  Capture cap;
  ProgressRenderer r(cap.file(), std::chrono::hours(1));
  r.Update(0, 1000);     // first: drawn
  r.Update(100, 1000);   // throttled
  r.Update(500, 1000);   // throttled
  r.Update(1000, 1000);  // complete: drawn
  r.Update(1000, 1000);  // already complete: ignored
  r.Finish();
  r.Finish();  // idempotent
  const std::string text = cap.Text();
  EXPECT_EQ(Count(text, '\r'), 2) << text;
  EXPECT_EQ(Count(text, '\n'), 1) << text;
  EXPECT_NE(text.find("100%"), std::string::npos);
  EXPECT_EQ(text.back(), '\n');
}

TEST(ProgressRendererTest, NothingDrawnMeansNoNewline) {
  Capture cap;
  ProgressRenderer r(cap.file());
  r.Finish();
  EXPECT_EQ(cap.Text(), "");
}

TEST(ProgressRendererTest, RedrawsAfterInterval) {
  Capture cap;
  ProgressRenderer r(cap.file(), std::chrono::milliseconds(1));
  r.Update(1, 10);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  r.Update(2, 10);
  r.Finish();
  EXPECT_EQ(Count(cap.Text(), '\r'), 2);
}

}  // namespace
}  // namespace serveml::cli
