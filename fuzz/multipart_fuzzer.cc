// libFuzzer target: the streaming multipart/form-data parser. The first byte of the input
// picks the chunk size the body is fed in (so boundaries split across chunks at every
// position get exercised); the rest is the body, parsed with the boundary "XyZ". File parts
// go to a private temp directory and are removed with the parser's UploadedFiles.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "http/multipart.h"

namespace {

const std::string& UploadDir() {
  static const std::string dir = [] {
    char tmpl[] = "/tmp/serveml-multipart-fuzz-XXXXXX";
    const char* d = mkdtemp(tmpl);
    if (d == nullptr) abort();
    return std::string(d);
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t chunk = 1 + data[0] % 64;
  serveml::http::MultipartLimits limits;
  limits.max_field_bytes = 4096;
  limits.max_parts = 64;
  serveml::http::MultipartParser parser("XyZ", UploadDir(), limits);
  const char* body = reinterpret_cast<const char*>(data + 1);
  const size_t n = size - 1;
  for (size_t off = 0; off < n; off += chunk) {
    const size_t len = off + chunk <= n ? chunk : n - off;
    if (!parser.Feed(body + off, len).ok()) return 0;
  }
  (void)parser.Finish();
  return 0;
}
