#include "cli/args.h"

#include <gtest/gtest.h>

namespace serveml::cli {
namespace {

FlagSpec Spec() {
  FlagSpec spec;
  spec.value_flags = {"url", "data", "name"};
  spec.bool_flags = {"json", "wait"};
  return spec;
}

TEST(ParseArgsTest, PositionalsValuesAndSwitches) {
  auto r = ParseArgs({"model.onnx", "--name", "iris", "--wait", "--url=http://h:1"}, Spec());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->positionals, std::vector<std::string>{"model.onnx"});
  EXPECT_EQ(r->Get("name"), "iris");
  EXPECT_EQ(r->Get("url"), "http://h:1");
  EXPECT_TRUE(r->Has("wait"));
  EXPECT_FALSE(r->Has("json"));
  EXPECT_EQ(r->Get("data"), std::nullopt);
  EXPECT_FALSE(r->help);
}

TEST(ParseArgsTest, ValueIsTakenVerbatimEvenIfItLooksLikeAFlag) {
  auto r = ParseArgs({"id", "--data", "-"}, Spec());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->Get("data"), "-");
  r = ParseArgs({"id", "--data", "[-1, 2]"}, Spec());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->Get("data"), "[-1, 2]");
  r = ParseArgs({"--data", "--json"}, Spec());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->Get("data"), "--json");
  EXPECT_FALSE(r->Has("json"));
}

TEST(ParseArgsTest, InlineEmptyValueAndLastOccurrenceWins) {
  auto r = ParseArgs({"--name=", "--url", "a", "--url", "b"}, Spec());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->Get("name"), "");
  EXPECT_EQ(r->Get("url"), "b");
}

TEST(ParseArgsTest, DoubleDashEndsFlagsAndLoneDashIsPositional) {
  auto r = ParseArgs({"-", "--", "--wait", "-x"}, Spec());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->positionals, (std::vector<std::string>{"-", "--wait", "-x"}));
  EXPECT_FALSE(r->Has("wait"));
}

TEST(ParseArgsTest, Help) {
  auto r = ParseArgs({"-h"}, Spec());
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->help);
  r = ParseArgs({"x", "--help"}, Spec());
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->help);
}

TEST(ParseArgsTest, Errors) {
  auto r = ParseArgs({"--nope"}, Spec());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidInput);
  EXPECT_NE(r.status().message().find("--nope"), std::string::npos);

  r = ParseArgs({"--name"}, Spec());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("needs a value"), std::string::npos);

  r = ParseArgs({"--wait=yes"}, Spec());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("takes no value"), std::string::npos);

  EXPECT_FALSE(ParseArgs({"-x"}, Spec()).ok());
  EXPECT_TRUE(ParseArgs({"--"}, Spec()).ok());  // "--" alone is fine
}

TEST(ParseIntFlagTest, AcceptsInRangeIntegers) {
  EXPECT_EQ(*ParseIntFlag("limit", "1", 1, 100), 1);
  EXPECT_EQ(*ParseIntFlag("limit", "100", 1, 100), 100);
  EXPECT_EQ(*ParseIntFlag("offset", "-5", -10, 10), -5);
}

TEST(ParseIntFlagTest, RejectsGarbageAndOutOfRange) {
  for (const char* bad : {"", "0", "101", "1.5", "12abc", "+3", " 4", "99999999999999999999"}) {
    auto r = ParseIntFlag("limit", bad, 1, 100);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find("--limit must be an integer between 1 and 100"),
              std::string::npos);
  }
}

TEST(ParseSecondsFlagTest, Works) {
  EXPECT_DOUBLE_EQ(*ParseSecondsFlag("wait-timeout", "120"), 120.0);
  EXPECT_DOUBLE_EQ(*ParseSecondsFlag("wait-timeout", "0.5"), 0.5);
  EXPECT_DOUBLE_EQ(*ParseSecondsFlag("wait-timeout", "0"), 0.0);
  for (const char* bad : {"", "-1", "abc", "1s", "inf", "nan"}) {
    EXPECT_FALSE(ParseSecondsFlag("wait-timeout", bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace serveml::cli
