#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

#include "http/http.h"
#include "http/url.h"

namespace serveml::http {
namespace {

TEST(RequestTest, QueryParamDecoding) {
  Request r;
  r.query = "limit=5&search=iris+model&name=a%20b%2Bc&empty=&flag&dup=1&dup=2&k%65y=v";
  std::string v;
  ASSERT_TRUE(r.QueryParam("limit", &v));
  EXPECT_EQ(v, "5");
  ASSERT_TRUE(r.QueryParam("search", &v));
  EXPECT_EQ(v, "iris model");
  ASSERT_TRUE(r.QueryParam("name", &v));
  EXPECT_EQ(v, "a b+c");
  ASSERT_TRUE(r.QueryParam("empty", &v));
  EXPECT_EQ(v, "");
  v = "x";
  ASSERT_TRUE(r.QueryParam("flag", &v));
  EXPECT_EQ(v, "");
  ASSERT_TRUE(r.QueryParam("dup", &v));
  EXPECT_EQ(v, "1");                     // first wins
  ASSERT_TRUE(r.QueryParam("key", &v));  // encoded key
  EXPECT_EQ(v, "v");
  v = "untouched";
  EXPECT_FALSE(r.QueryParam("missing", &v));
  EXPECT_EQ(v, "untouched");
  EXPECT_FALSE(r.QueryParam("lim", &v));
}

TEST(RequestTest, QueryParamEdgeCases) {
  Request r;
  std::string v;
  EXPECT_FALSE(r.QueryParam("a", &v));
  r.query = "&&a=1&";
  ASSERT_TRUE(r.QueryParam("a", &v));
  EXPECT_EQ(v, "1");
  r.query = "a=%zz%4";  // invalid escapes are kept literally
  ASSERT_TRUE(r.QueryParam("a", &v));
  EXPECT_EQ(v, "%zz%4");
  r.query = "a=%E2%82%AC";
  ASSERT_TRUE(r.QueryParam("a", &v));
  EXPECT_EQ(v, "\xE2\x82\xAC");
}

TEST(RequestTest, HeaderParamPart) {
  Request r;
  r.headers = {{"content-type", "application/json"}, {"x-a", "1"}, {"x-a", "2"}};
  EXPECT_EQ(r.Header("content-type"), "application/json");
  EXPECT_EQ(r.Header("x-a"), "1");
  EXPECT_EQ(r.Header("missing"), "");
  r.path_params = {{"id", "abc"}};
  EXPECT_EQ(r.Param("id"), "abc");
  FormPart p;
  p.name = "model_file";
  r.form.push_back(p);
  ASSERT_NE(r.Part("model_file"), nullptr);
  EXPECT_EQ(r.Part("other"), nullptr);
}

TEST(UrlTest, PercentDecode) {
  std::string out;
  EXPECT_TRUE(PercentDecode("/a%20b/c+d", false, &out));
  EXPECT_EQ(out, "/a b/c+d");
  out.clear();
  EXPECT_TRUE(PercentDecode("c+d", true, &out));
  EXPECT_EQ(out, "c d");
  out.clear();
  EXPECT_FALSE(PercentDecode("a%00b", false, &out));
  out.clear();
  EXPECT_TRUE(PercentDecode("%", false, &out));
  EXPECT_EQ(out, "%");
  out.clear();
  EXPECT_TRUE(PercentDecode("%4a%4A", false, &out));
  EXPECT_EQ(out, "JJ");
}

TEST(UrlTest, SplitTarget) {
  std::string_view path, query;
  SplitTarget("/api/v1/x?limit=5&b=2", &path, &query);
  EXPECT_EQ(path, "/api/v1/x");
  EXPECT_EQ(query, "limit=5&b=2");
  SplitTarget("/p", &path, &query);
  EXPECT_EQ(path, "/p");
  EXPECT_EQ(query, "");
  SplitTarget("/p?q#frag", &path, &query);
  EXPECT_EQ(path, "/p");
  EXPECT_EQ(query, "q");
  SplitTarget("http://example.com:8000/health?x=1", &path, &query);
  EXPECT_EQ(path, "/health");
  EXPECT_EQ(query, "x=1");
  SplitTarget("http://example.com", &path, &query);
  EXPECT_EQ(path, "/");
  EXPECT_EQ(query, "");
}

TEST(UploadedFilesTest, DeletesFilesUnlessReleased) {
  char a[] = "/tmp/serveml-uf-test-XXXXXX";
  char b[] = "/tmp/serveml-uf-test-XXXXXX";
  int fa = mkstemp(a);
  int fb = mkstemp(b);
  ASSERT_GE(fa, 0);
  ASSERT_GE(fb, 0);
  close(fa);
  close(fb);
  {
    UploadedFiles f;
    f.Add(a);
    EXPECT_EQ(f.paths().size(), 1u);
  }
  EXPECT_NE(access(a, F_OK), 0);
  {
    UploadedFiles f;
    f.Add(b);
    f.Release();
  }
  EXPECT_EQ(access(b, F_OK), 0);
  unlink(b);
}

}  // namespace
}  // namespace serveml::http
