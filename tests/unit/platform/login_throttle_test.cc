#include "platform/login_throttle.h"

#include <gtest/gtest.h>

namespace serveml::platform {
namespace {

TEST(LoginThrottle, FreeFailuresThenDoublingDelays) {
  LoginThrottleOptions o;
  o.free_failures = 3;
  o.max_delay_seconds = 8;
  LoginThrottle t(o);
  int64_t now = 1000;
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(t.RetryAfter("a@x", "1.1.1.1", now), 0) << i;
    t.RecordFailure("a@x", "1.1.1.1", now);
  }
  // 3 failures: the 4th attempt waits 1 s, then 2, 4, 8, 8 (capped).
  EXPECT_EQ(t.RetryAfter("a@x", "1.1.1.1", now), 1);
  int64_t expected[] = {2, 4, 8, 8};
  for (int64_t e : expected) {
    now += 100;
    ASSERT_EQ(t.RetryAfter("a@x", "1.1.1.1", now), 0);
    t.RecordFailure("a@x", "1.1.1.1", now);
    EXPECT_EQ(t.RetryAfter("a@x", "1.1.1.1", now), e);
  }
}

TEST(LoginThrottle, AStrangerNeverLocksTheOwnerOut) {
  LoginThrottleOptions o;
  o.free_failures = 2;
  LoginThrottle t(o);
  for (int i = 0; i < 20; ++i) t.RecordFailure("victim@x", "6.6.6.6", 1000);
  EXPECT_GT(t.RetryAfter("victim@x", "6.6.6.6", 1000), 0);
  EXPECT_EQ(t.RetryAfter("victim@x", "1.2.3.4", 1000), 0);  // the owner's own address
  EXPECT_EQ(t.RetryAfter("other@x", "1.2.3.4", 1000), 0);
}

TEST(LoginThrottle, SuccessClearsThePair) {
  LoginThrottleOptions o;
  o.free_failures = 1;
  LoginThrottle t(o);
  t.RecordFailure("a@x", "1.1.1.1", 10);
  t.RecordFailure("a@x", "1.1.1.1", 10);
  EXPECT_GT(t.RetryAfter("a@x", "1.1.1.1", 10), 0);
  t.RecordSuccess("a@x", "1.1.1.1");
  EXPECT_EQ(t.RetryAfter("a@x", "1.1.1.1", 10), 0);
}

TEST(LoginThrottle, PerAddressBudgetOverAllAccounts) {
  LoginThrottleOptions o;
  o.free_failures = 1000;
  o.failures_per_address = 10;
  o.address_window_seconds = 60;
  LoginThrottle t(o);
  for (int i = 0; i < 10; ++i) t.RecordFailure("u" + std::to_string(i), "9.9.9.9", 100);
  EXPECT_EQ(t.RetryAfter("fresh@x", "9.9.9.9", 100), 60);
  EXPECT_EQ(t.RetryAfter("fresh@x", "9.9.9.9", 130), 30);
  EXPECT_EQ(t.RetryAfter("fresh@x", "9.9.9.9", 160), 0);  // the window passed
  EXPECT_EQ(t.RetryAfter("fresh@x", "8.8.8.8", 100), 0);
}

TEST(LoginThrottle, MemoryStaysBounded) {
  LoginThrottleOptions o;
  o.max_entries = 1000;
  LoginThrottle t(o);
  for (int i = 0; i < 100000; ++i)
    t.RecordFailure("u" + std::to_string(i), "a" + std::to_string(i), i);
  // The newest entries are kept.
  t.RecordFailure("last", "z", 100000);
  for (int i = 0; i < 10; ++i) t.RecordFailure("last", "z", 100000);
  EXPECT_GT(t.RetryAfter("last", "z", 100000), 0);
}

TEST(WindowCounter, CountsPerKeyAndWindow) {
  WindowCounter w(2, 3600);
  EXPECT_EQ(w.TryAdd("a", 0), 0);
  EXPECT_EQ(w.TryAdd("a", 10), 0);
  EXPECT_EQ(w.TryAdd("a", 20), 3580);
  EXPECT_EQ(w.TryAdd("b", 20), 0);
  EXPECT_EQ(w.TryAdd("a", 3600), 0);  // next window
  WindowCounter off(0, 3600);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(off.TryAdd("a", 0), 0);
}

}  // namespace
}  // namespace serveml::platform
