#include "cli/output.h"

#include <gtest/gtest.h>

namespace serveml::cli {
namespace {

TEST(FormatApiErrorTest, Envelope) {
  EXPECT_EQ(
      FormatApiError(
          404,
          R"({"error":{"code":"NOT_FOUND","message":"Deployment not found","details":{}},"request_id":"req-1"})",
          "req-header"),
      "NOT_FOUND: Deployment not found (req-1)");
}

TEST(FormatApiErrorTest, HeaderRequestIdAndDetails) {
  EXPECT_EQ(
      FormatApiError(
          422,
          R"({"error":{"code":"VALIDATION_ERROR","message":"bad","details":{"field":"memory"}}})",
          "req-h"),
      "VALIDATION_ERROR: bad (req-h)\n  details: {\"field\":\"memory\"}");
  EXPECT_EQ(FormatApiError(401, R"({"error":{"code":"UNAUTHORIZED","message":"no"}})", ""),
            "UNAUTHORIZED: no");
}

TEST(FormatApiErrorTest, Fallbacks) {
  EXPECT_EQ(FormatApiError(502, "<html>Bad Gateway</html>", ""),
            "HTTP 502: <html>Bad Gateway</html>");
  EXPECT_EQ(FormatApiError(500, "", "req-9"), "HTTP 500: (empty response) (req-9)");
  EXPECT_EQ(FormatApiError(404, R"({"detail":"Not Found"})", ""), "HTTP 404: Not Found");
  EXPECT_EQ(FormatApiError(400, R"({"error":{"message":"m"}})", ""), "HTTP 400: m");
  const std::string long_body(1000, 'x');
  EXPECT_LE(FormatApiError(500, long_body, "").size(), 220u);
}

TEST(ApiErrorCodeTest, Works) {
  EXPECT_EQ(ApiErrorCode(R"({"error":{"code":"RATE_LIMITED","message":"slow"}})"), "RATE_LIMITED");
  EXPECT_EQ(ApiErrorCode("nope"), "");
  EXPECT_EQ(ApiErrorCode(R"({"error":"x"})"), "");
}

TEST(FormatDeploymentTableTest, Table) {
  auto t = FormatDeploymentTable(R"({"items":[
      {"id":"d1","name":"iris","status":"active","model_metadata":{"framework":"sklearn"},
       "created_at":"2024-05-01T10:00:00Z"},
      {"id":"deployment-2","name":"m","status":"failed","framework":"onnx","created_at":"2024-05-02T11:00:00Z"}
    ],"total":7,"limit":2,"offset":0})");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(*t,
            "ID            NAME  STATUS  FRAMEWORK  CREATED\n"
            "d1            iris  active  sklearn    2024-05-01T10:00:00Z\n"
            "deployment-2  m     failed  onnx       2024-05-02T11:00:00Z\n"
            "2 of 7 deployments\n");
}

TEST(FormatDeploymentTableTest, EmptyBareArrayAndLongNames) {
  EXPECT_EQ(*FormatDeploymentTable(R"({"items":[],"total":0})"), "No deployments.\n");
  auto t = FormatDeploymentTable(R"([{"id":"a","name":")" + std::string(50, 'n') +
                                 R"(","status":"active"}])");
  ASSERT_TRUE(t.ok());
  EXPECT_NE(t->find(std::string(29, 'n') + "..."), std::string::npos) << *t;
  EXPECT_NE(t->find("1 of 1 deployment\n"), std::string::npos);
  EXPECT_FALSE(FormatDeploymentTable(R"({"x":1})").ok());
  EXPECT_FALSE(FormatDeploymentTable("oops").ok());
}

TEST(RedactSecretsTest, RedactsNestedSecrets) {
  const std::string out = RedactSecrets(
      R"({"access_token":"eyJ.secret","token_type":"bearer","user":{"id":1,"api_key":"sk-x"}})");
  EXPECT_EQ(out.find("eyJ.secret"), std::string::npos);
  EXPECT_EQ(out.find("sk-x"), std::string::npos);
  EXPECT_NE(out.find("bearer"), std::string::npos);
  EXPECT_NE(out.find("<redacted>"), std::string::npos);
  EXPECT_EQ(RedactSecrets("plain"), "plain");
}

TEST(PrettyJsonTest, Works) {
  EXPECT_EQ(PrettyJson(R"({"a":[1]})"), "{\n  \"a\": [\n    1\n  ]\n}");
  EXPECT_EQ(PrettyJson("x"), "x");
}

}  // namespace
}  // namespace serveml::cli
