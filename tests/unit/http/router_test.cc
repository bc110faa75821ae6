#include "http/router.h"

#include <gtest/gtest.h>

namespace serveml::http {
namespace {

// Each route's handler answers with its own tag so tests can tell which one matched.
Handler Tag(std::string tag) {
  return [tag](Request&, Responder respond) { respond(Response::Json(200, tag)); };
}

std::string RunHandler(const Handler* h) {
  std::string got;
  Request dummy;
  (*h)(dummy, [&](Response r) { got = r.body; });
  return got;
}

Request Req(std::string method, std::string path) {
  Request r;
  r.method = std::move(method);
  r.path = std::move(path);
  return r;
}

class RouterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    router_.Add("GET", "/", Tag("root"));
    router_.Add("GET", "/health", Tag("health"));
    router_.Add("GET", "/api/v1/deployments", Tag("list"));
    router_.Add("POST", "/api/v1/deployments", Tag("create"));
    router_.Add("GET", "/api/v1/deployments/{id}", Tag("get"));
    router_.Add("DELETE", "/api/v1/deployments/{id}", Tag("delete"));
    router_.Add("GET", "/api/v1/deployments/{id}/versions", Tag("versions"));
    router_.Add("POST", "/api/v1/deployments/{id}/rollback", Tag("rollback"));
    router_.Add("GET", "/v2/models/{name}/versions/{version}", Tag("v2-version"));
    // Registered after the capture on purpose: literal still wins.
    router_.Add("GET", "/api/v1/deployments/stats", Tag("stats"));
  }
  Router router_;
};

TEST_F(RouterTest, LiteralRoutes) {
  const Handler* h = nullptr;
  Request r = Req("GET", "/health");
  ASSERT_EQ(router_.Match(&r, &h), Router::MatchResult::kFound);
  EXPECT_EQ(RunHandler(h), "health");
  EXPECT_TRUE(r.path_params.empty());

  r = Req("GET", "/");
  ASSERT_EQ(router_.Match(&r, &h), Router::MatchResult::kFound);
  EXPECT_EQ(RunHandler(h), "root");
}

TEST_F(RouterTest, CapturesSegments) {
  const Handler* h = nullptr;
  Request r = Req("GET", "/api/v1/deployments/abc-123");
  ASSERT_EQ(router_.Match(&r, &h), Router::MatchResult::kFound);
  EXPECT_EQ(RunHandler(h), "get");
  EXPECT_EQ(r.Param("id"), "abc-123");
  EXPECT_EQ(r.Param("missing"), "");

  r = Req("GET", "/v2/models/iris/versions/3");
  ASSERT_EQ(router_.Match(&r, &h), Router::MatchResult::kFound);
  EXPECT_EQ(RunHandler(h), "v2-version");
  EXPECT_EQ(r.Param("name"), "iris");
  EXPECT_EQ(r.Param("version"), "3");

  r = Req("GET", "/api/v1/deployments/x/versions");
  ASSERT_EQ(router_.Match(&r, &h), Router::MatchResult::kFound);
  EXPECT_EQ(RunHandler(h), "versions");
  EXPECT_EQ(r.Param("id"), "x");
}

TEST_F(RouterTest, LiteralBeatsCaptureRegardlessOfOrder) {
  const Handler* h = nullptr;
  Request r = Req("GET", "/api/v1/deployments/stats");
  ASSERT_EQ(router_.Match(&r, &h), Router::MatchResult::kFound);
  EXPECT_EQ(RunHandler(h), "stats");
  EXPECT_TRUE(r.path_params.empty());

  Router r2;
  r2.Add("GET", "/a/{x}/c", Tag("capture-first"));
  r2.Add("GET", "/a/b/{y}", Tag("literal-first"));
  Request q = Req("GET", "/a/b/c");
  ASSERT_EQ(r2.Match(&q, &h), Router::MatchResult::kFound);
  EXPECT_EQ(RunHandler(h), "literal-first");  // first differing segment decides
  EXPECT_EQ(q.Param("y"), "c");
}

TEST_F(RouterTest, MethodNotAllowedListsAllowedMethods) {
  const Handler* h = nullptr;
  std::string allow;
  Request r = Req("PUT", "/api/v1/deployments/abc");
  ASSERT_EQ(router_.Match(&r, &h, &allow), Router::MatchResult::kMethodNotAllowed);
  EXPECT_EQ(allow, "GET, HEAD, DELETE");

  r = Req("DELETE", "/api/v1/deployments");
  ASSERT_EQ(router_.Match(&r, &h, &allow), Router::MatchResult::kMethodNotAllowed);
  EXPECT_EQ(allow, "GET, HEAD, POST");

  r = Req("GET", "/api/v1/deployments/abc/rollback");
  ASSERT_EQ(router_.Match(&r, &h), Router::MatchResult::kMethodNotAllowed);
}

TEST_F(RouterTest, NotFound) {
  const Handler* h = nullptr;
  for (const char* p : {"/nope", "/api/v1", "/api/v1/deployments/a/b/c", "/healthz",
                        "/api/v1/deployments//versions"}) {
    Request r = Req("GET", p);
    EXPECT_EQ(router_.Match(&r, &h), Router::MatchResult::kNotFound) << p;
  }
}

TEST_F(RouterTest, TrailingSlashTolerant) {
  const Handler* h = nullptr;
  Request r = Req("GET", "/api/v1/deployments/");
  ASSERT_EQ(router_.Match(&r, &h), Router::MatchResult::kFound);
  EXPECT_EQ(RunHandler(h), "list");
  r = Req("GET", "/api/v1/deployments/abc/");
  ASSERT_EQ(router_.Match(&r, &h), Router::MatchResult::kFound);
  EXPECT_EQ(r.Param("id"), "abc");

  Router r2;
  r2.Add("GET", "/with/slash/", Tag("slash"));
  Request q = Req("GET", "/with/slash");
  ASSERT_EQ(r2.Match(&q, &h), Router::MatchResult::kFound);
  EXPECT_EQ(RunHandler(h), "slash");
}

TEST_F(RouterTest, HeadFallsBackToGet) {
  const Handler* h = nullptr;
  Request r = Req("HEAD", "/api/v1/deployments/abc");
  ASSERT_EQ(router_.Match(&r, &h), Router::MatchResult::kFound);
  EXPECT_EQ(RunHandler(h), "get");

  Router r2;
  r2.Add("GET", "/x", Tag("get"));
  r2.Add("HEAD", "/x", Tag("head"));
  Request q = Req("HEAD", "/x");
  ASSERT_EQ(r2.Match(&q, &h), Router::MatchResult::kFound);
  EXPECT_EQ(RunHandler(h), "head");  // an explicit HEAD route wins
}

TEST_F(RouterTest, RoutesInInsertionOrder) {
  ASSERT_EQ(router_.routes().size(), 10u);
  EXPECT_EQ(router_.routes()[0].pattern, "/");
  EXPECT_EQ(router_.routes()[4].method, "GET");
  EXPECT_EQ(router_.routes()[4].pattern, "/api/v1/deployments/{id}");
}

TEST_F(RouterTest, PolicyTravelsWithTheMatchedRoute) {
  Router r;
  r.Add("GET", "/plain", Tag("plain"));  // 3-argument Add: the default policy
  r.Add("POST", "/api/v1/predict/{id}", Tag("predict"), RoutePolicy{BodyKind::kPredict, true});
  r.Add("POST", "/api/v1/deploy", Tag("deploy"), RoutePolicy{BodyKind::kUpload, true});
  r.Add("GET", "/api/v1/me", Tag("me"), RoutePolicy{BodyKind::kNone, true});

  const Router::Route* route = nullptr;
  Request a = Req("GET", "/plain");
  ASSERT_EQ(r.MatchRoute(&a, &route), Router::MatchResult::kFound);
  EXPECT_EQ(route->policy.body, BodyKind::kJson);
  EXPECT_FALSE(route->policy.authenticated);

  Request b = Req("POST", "/api/v1/predict/m1");
  ASSERT_EQ(r.MatchRoute(&b, &route), Router::MatchResult::kFound);
  EXPECT_EQ(route->policy.body, BodyKind::kPredict);
  EXPECT_TRUE(route->policy.authenticated);
  EXPECT_EQ(RunHandler(&route->handler), "predict");
  EXPECT_EQ(b.Param("id"), "m1");

  Request c = Req("POST", "/api/v1/deploy");
  ASSERT_EQ(r.MatchRoute(&c, &route), Router::MatchResult::kFound);
  EXPECT_EQ(route->policy.body, BodyKind::kUpload);

  Request d = Req("HEAD", "/api/v1/me");  // HEAD gets the GET route's policy
  ASSERT_EQ(r.MatchRoute(&d, &route), Router::MatchResult::kFound);
  EXPECT_EQ(route->policy.body, BodyKind::kNone);
  EXPECT_TRUE(route->policy.authenticated);

  std::string allow;
  Request e = Req("DELETE", "/api/v1/deploy");
  route = nullptr;
  EXPECT_EQ(r.MatchRoute(&e, &route, &allow), Router::MatchResult::kMethodNotAllowed);
  EXPECT_EQ(route, nullptr);
  EXPECT_EQ(allow, "POST");
  EXPECT_EQ(r.routes()[1].policy.body, BodyKind::kPredict);
}

}  // namespace
}  // namespace serveml::http
