#include "http/multipart.h"

#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <sstream>

namespace serveml::http {
namespace {

// A fresh empty directory for temp files, removed (with its content) at the end.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/serveml-mp-test-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() {
    for (const std::string& f : Files()) unlink((path_ + "/" + f).c_str());
    rmdir(path_.c_str());
  }
  const std::string& path() const { return path_; }
  std::vector<std::string> Files() const {
    std::vector<std::string> out;
    DIR* d = opendir(path_.c_str());
    if (d == nullptr) return out;
    while (dirent* e = readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") out.push_back(n);
    }
    closedir(d);
    return out;
  }

 private:
  std::string path_;
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const std::string kBoundary = "----WebKitFormBoundary7MA4YWxkTrZu0gW";

std::string FieldPart(const std::string& name, const std::string& value) {
  return "--" + kBoundary + "\r\nContent-Disposition: form-data; name=\"" + name + "\"\r\n\r\n" +
         value + "\r\n";
}
std::string FilePart(const std::string& name, const std::string& filename,
                     const std::string& content) {
  return "--" + kBoundary + "\r\nContent-Disposition: form-data; name=\"" + name +
         "\"; filename=\"" + filename + "\"\r\nContent-Type: application/octet-stream\r\n\r\n" +
         content + "\r\n";
}
std::string Close() { return "--" + kBoundary + "--\r\n"; }

// Content full of near-misses of the delimiter.
std::string TrickyContent() {
  std::string s = "--" + kBoundary + " at the start, not after CRLF\r\n";
  s += "\r\n--" + kBoundary.substr(0, kBoundary.size() - 1) + "X almost a delimiter\r\n";
  s += "\r\n-\r\n--\r\n--" + kBoundary.substr(0, 5) + "\r\n\r\n\r\n";
  static constexpr char kBinary[] = "\0\x01\xff binary \r";
  s += std::string(kBinary, sizeof(kBinary) - 1);
  s += "ends with CR LF dash dash\r\n--";
  return s;
}

std::string SampleBody(const std::string& file_content) {
  return "preamble to be ignored\r\n" + FieldPart("name", "iris") + FieldPart("memory", "512") +
         FilePart("model_file", "model.pkl", file_content) + FieldPart("empty", "") + Close() +
         "epilogue to be ignored";
}

void CheckSample(const MultipartParser& p, const std::string& file_content) {
  const auto& parts = p.parts();
  ASSERT_EQ(parts.size(), 4u);
  EXPECT_EQ(parts[0].name, "name");
  EXPECT_EQ(parts[0].value, "iris");
  EXPECT_EQ(parts[0].size, 4u);
  EXPECT_TRUE(parts[0].filename.empty());
  EXPECT_TRUE(parts[0].file_path.empty());
  EXPECT_EQ(parts[1].value, "512");
  EXPECT_EQ(parts[2].name, "model_file");
  EXPECT_EQ(parts[2].filename, "model.pkl");
  EXPECT_EQ(parts[2].content_type, "application/octet-stream");
  EXPECT_TRUE(parts[2].value.empty());
  EXPECT_EQ(parts[2].size, file_content.size());
  ASSERT_FALSE(parts[2].file_path.empty());
  EXPECT_EQ(ReadFile(parts[2].file_path), file_content);
  EXPECT_EQ(parts[3].name, "empty");
  EXPECT_EQ(parts[3].value, "");
}

TEST(MultipartTest, WholeBodyAtOnce) {
  TempDir dir;
  std::string content = TrickyContent();
  MultipartParser p(kBoundary, dir.path());
  ASSERT_TRUE(p.Feed(SampleBody(content)).ok());
  ASSERT_TRUE(p.Finish().ok());
  CheckSample(p, content);
  EXPECT_EQ(p.uploads()->paths().size(), 1u);
  EXPECT_EQ(dir.Files().size(), 1u);
}

TEST(MultipartTest, OneByteAtATime) {
  TempDir dir;
  std::string content = TrickyContent();
  std::string body = SampleBody(content);
  MultipartParser p(kBoundary, dir.path());
  for (char c : body) ASSERT_TRUE(p.Feed(&c, 1).ok());
  ASSERT_TRUE(p.Finish().ok());
  CheckSample(p, content);
}

TEST(MultipartTest, RandomChunkSizes) {
  std::mt19937 rng(12345);
  std::string content = TrickyContent();
  for (int i = 0; i < 20; ++i) content += "x" + TrickyContent().substr(i % 7);
  std::string body = SampleBody(content);
  for (int iter = 0; iter < 300; ++iter) {
    TempDir dir;
    MultipartParser p(kBoundary, dir.path());
    size_t pos = 0;
    std::uniform_int_distribution<size_t> dist(1, iter % 2 ? 7 : 200);
    while (pos < body.size()) {
      size_t n = std::min(dist(rng), body.size() - pos);
      Status st = p.Feed(body.data() + pos, n);
      ASSERT_TRUE(st.ok()) << "iter " << iter << " pos " << pos << ": " << st.ToString() << "\n"
                           << body.substr(pos > 100 ? pos - 100 : 0, 200);
      pos += n;
    }
    ASSERT_TRUE(p.Finish().ok());
    CheckSample(p, content);
  }
}

TEST(MultipartTest, LargeFileGoesToDisk) {
  TempDir dir;
  std::string content(8 << 20, '\0');
  std::mt19937 rng(7);
  for (char& c : content) c = static_cast<char>(rng());
  std::string head = "--" + kBoundary +
                     "\r\nContent-Disposition: form-data; name=\"model_file\"; "
                     "filename=\"big.onnx\"\r\n\r\n";
  std::string tail = "\r\n" + Close();
  MultipartLimits limits;
  limits.max_field_bytes = 1024;  // a file part is not a field: no limit applies
  MultipartParser p(kBoundary, dir.path(), limits);
  ASSERT_TRUE(p.Feed(head).ok());
  for (size_t pos = 0; pos < content.size(); pos += 65536) {
    ASSERT_TRUE(p.Feed(content.data() + pos, std::min<size_t>(65536, content.size() - pos)).ok());
  }
  ASSERT_TRUE(p.Feed(tail).ok());
  ASSERT_TRUE(p.Finish().ok());
  ASSERT_EQ(p.parts().size(), 1u);
  EXPECT_TRUE(p.parts()[0].value.empty());
  EXPECT_EQ(p.parts()[0].size, content.size());
  struct stat st;
  ASSERT_EQ(stat(p.parts()[0].file_path.c_str(), &st), 0);
  EXPECT_EQ(static_cast<size_t>(st.st_size), content.size());
  EXPECT_TRUE(ReadFile(p.parts()[0].file_path) == content);
}

TEST(MultipartTest, TempFilesRemovedWithUploads) {
  TempDir dir;
  std::string path;
  {
    MultipartParser p(kBoundary, dir.path());
    ASSERT_TRUE(p.Feed(FilePart("f", "a.bin", "abc") + Close()).ok());
    ASSERT_TRUE(p.Finish().ok());
    path = p.parts()[0].file_path;
    EXPECT_EQ(access(path.c_str(), F_OK), 0);
  }
  EXPECT_NE(access(path.c_str(), F_OK), 0);
  EXPECT_TRUE(dir.Files().empty());
}

TEST(MultipartTest, HeaderParameterForms) {
  TempDir dir;
  std::string b = "xyz";
  std::string body =
      "--xyz\r\ncontent-disposition: form-data; name=plain\r\n\r\nv1\r\n"
      "--xyz\r\nContent-Disposition: form-data;name=\"q;uoted\\\"name\"\r\n\r\nv2\r\n"
      "--xyz\r\nContent-Disposition: form-data; name=\"f\"; filename=\"fallback.txt\"; "
      "filename*=UTF-8''%E2%82%AC%20rates.txt\r\n\r\nfile\r\n"
      "--xyz\r\nContent-Disposition: form-data; name=\"win\"; "
      "filename=\"C:\\Users\\me\\model.pkl\"\r\nContent-Type: text/plain\r\n\r\nw\r\n"
      "--xyz\r\nContent-Disposition: form-data; name=\"nofile\"; filename=\"\"\r\n\r\n\r\n"
      "--xyz  \t\r\nContent-Disposition: form-data; name=\"padded\"\r\n\r\np\r\n"
      "--xyz--";
  MultipartParser p(b, dir.path());
  ASSERT_TRUE(p.Feed(body).ok());
  ASSERT_TRUE(p.Finish().ok());
  const auto& parts = p.parts();
  ASSERT_EQ(parts.size(), 6u);
  EXPECT_EQ(parts[0].name, "plain");
  EXPECT_EQ(parts[0].value, "v1");
  EXPECT_EQ(parts[1].name, "q;uoted\"name");
  EXPECT_EQ(parts[1].value, "v2");
  EXPECT_EQ(parts[2].filename, "\xE2\x82\xAC rates.txt");
  EXPECT_EQ(ReadFile(parts[2].file_path), "file");
  EXPECT_EQ(parts[3].filename, "model.pkl");
  EXPECT_EQ(parts[3].content_type, "text/plain");
  EXPECT_TRUE(parts[4].filename.empty());  // empty filename: a plain (empty) field
  EXPECT_TRUE(parts[4].file_path.empty());
  EXPECT_EQ(parts[5].value, "p");
}

TEST(MultipartTest, NoPreambleFirstLineIsBoundary) {
  TempDir dir;
  MultipartParser p("b", dir.path());
  ASSERT_TRUE(p.Feed("--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--b--").ok());
  ASSERT_TRUE(p.Finish().ok());
  ASSERT_EQ(p.parts().size(), 1u);
  EXPECT_EQ(p.parts()[0].value, "1");
  EXPECT_TRUE(p.done());
}

Status ParseAll(const std::string& boundary, const std::string& body, MultipartLimits limits = {}) {
  TempDir dir;
  MultipartParser p(boundary, dir.path(), limits);
  Status st = p.Feed(body);
  if (!st.ok()) return st;
  return p.Finish();
}

TEST(MultipartTest, MalformedInputs) {
  const std::string ok_part = "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n";
  struct Case {
    const char* what;
    std::string body;
  } cases[] = {
      {"missing final boundary", ok_part},
      {"truncated in part", "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n12"},
      {"no boundary at all", "just some text"},
      {"empty body", ""},
      {"LF line endings", "--b\nContent-Disposition: form-data; name=\"a\"\n\n1\n--b--\n"},
      {"no content-disposition", "--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--"},
      {"no name", "--b\r\nContent-Disposition: form-data; filename=\"a\"\r\n\r\nx\r\n--b--"},
      {"not form-data", "--b\r\nContent-Disposition: attachment; name=\"a\"\r\n\r\nx\r\n--b--"},
      {"header without colon", "--b\r\nContent-Disposition form-data\r\n\r\nx\r\n--b--"},
      {"unterminated quote", "--b\r\nContent-Disposition: form-data; name=\"a\r\n\r\nx\r\n--b--"},
      {"garbage after boundary", ok_part + "--bX\r\n\r\n--b--"},
  };
  for (const Case& c : cases) {
    Status st = ParseAll("b", c.body);
    EXPECT_FALSE(st.ok()) << c.what;
    EXPECT_EQ(st.code(), Code::kInvalidInput) << c.what << ": " << st.ToString();
    EXPECT_FALSE(st.message().empty());
  }
}

TEST(MultipartTest, Limits) {
  MultipartLimits limits;
  limits.max_field_bytes = 10;
  Status st = ParseAll("b",
                       "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n"
                       "0123456789A\r\n--b--",
                       limits);
  EXPECT_EQ(st.code(), Code::kPayloadTooLarge) << st.ToString();
  EXPECT_TRUE(ParseAll("b",
                       "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n"
                       "0123456789\r\n--b--",
                       limits)
                  .ok());

  limits = MultipartLimits();
  limits.max_part_header_bytes = 100;
  st = ParseAll("b",
                "--b\r\nContent-Disposition: form-data; name=\"" + std::string(200, 'a') +
                    "\"\r\n\r\nx\r\n--b--",
                limits);
  EXPECT_EQ(st.code(), Code::kInvalidInput);

  limits = MultipartLimits();
  limits.max_parts = 2;
  std::string body;
  for (int i = 0; i < 3; ++i)
    body += "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n";
  st = ParseAll("b", body + "--b--", limits);
  EXPECT_EQ(st.code(), Code::kInvalidInput);
}

TEST(MultipartTest, ErrorsAreStickyAndFilesCleanedUp) {
  TempDir dir;
  {
    MultipartParser p("b", dir.path());
    ASSERT_TRUE(p.Feed("--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x\"\r\n\r\n"
                       "partial")
                    .ok());
    EXPECT_EQ(dir.Files().size(), 1u);
    Status st = p.Feed("\r\n--bXX\r\n");
    EXPECT_FALSE(st.ok());
    EXPECT_FALSE(p.Feed("more").ok());
    EXPECT_FALSE(p.Finish().ok());
  }
  EXPECT_TRUE(dir.Files().empty());
}

TEST(MultipartTest, UnwritableUploadDir) {
  MultipartParser p("b", "/nonexistent-dir-for-serveml-tests");
  Status st = p.Feed("--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x\"\r\n\r\n");
  EXPECT_EQ(st.code(), Code::kInternal);
}

TEST(ParseBoundaryTest, Forms) {
  auto b = ParseBoundary("multipart/form-data; boundary=abc123");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*b, "abc123");
  b = ParseBoundary("Multipart/Form-Data;boundary=\"quoted boundary:=\"");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*b, "quoted boundary:=");
  b = ParseBoundary("multipart/form-data; charset=utf-8; BOUNDARY=----x ");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*b, "----x");
  EXPECT_TRUE(IsMultipartFormData("multipart/form-data"));
  EXPECT_FALSE(IsMultipartFormData("multipart/mixed; boundary=x"));
  EXPECT_FALSE(IsMultipartFormData("application/json"));
}

TEST(ParseBoundaryTest, Errors) {
  EXPECT_EQ(ParseBoundary("application/json").status().code(), Code::kInvalidInput);
  EXPECT_FALSE(ParseBoundary("multipart/form-data").ok());
  EXPECT_FALSE(ParseBoundary("multipart/form-data; boundary=").ok());
  EXPECT_FALSE(ParseBoundary("multipart/form-data; boundary=\"\"").ok());
  EXPECT_FALSE(ParseBoundary("multipart/form-data; boundary=\"abc").ok());
  EXPECT_FALSE(ParseBoundary("multipart/form-data; boundary=" + std::string(71, 'a')).ok());
  EXPECT_TRUE(ParseBoundary("multipart/form-data; boundary=" + std::string(70, 'a')).ok());
}

}  // namespace
}  // namespace serveml::http
