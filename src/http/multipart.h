// Incremental multipart/form-data parser (RFC 7578 / RFC 2046 section 5.1).
//
// Bytes are pushed in with Feed() in chunks of any size (a boundary may be split across
// chunks anywhere). File parts (a Content-Disposition with a non-empty filename) are
// written to temp files under `upload_dir` as the bytes arrive and are never held whole in
// memory; plain fields are kept in memory up to MultipartLimits::max_field_bytes each.
// Temp files are registered in uploads() as soon as they are created, so dropping the
// UploadedFiles (e.g. after an error) removes them.
//
// Errors are sticky: after a failed Feed() every later call returns the same Status.
// Malformed input gives Code::kInvalidInput, a field over its limit kPayloadTooLarge, a
// temp file that cannot be created or written kInternal. Not thread safe (one per body).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "http/http.h"

namespace serveml::http {

struct MultipartLimits {
  uint64_t max_field_bytes = 1ull << 20;    // per plain (non-file) field
  size_t max_part_header_bytes = 16 << 10;  // the header block of one part
  size_t max_parts = 1000;
};

// True if `content_type` is multipart/form-data (case-insensitive, parameters ignored).
bool IsMultipartFormData(std::string_view content_type);

// The boundary parameter of a multipart/form-data Content-Type header, quoted or not
// (`multipart/form-data; boundary="a b"`). InvalidInput if the type is not
// multipart/form-data or the boundary is missing, empty or longer than 70 characters.
Result<std::string> ParseBoundary(std::string_view content_type);

class MultipartParser {
 public:
  // `boundary` without the leading "--". `uploads` receives the temp files; a fresh
  // UploadedFiles is created when it is null.
  MultipartParser(std::string boundary, std::string upload_dir, MultipartLimits limits = {},
                  std::shared_ptr<UploadedFiles> uploads = nullptr);
  // Closes an open temp file (the file itself stays owned by uploads()).
  ~MultipartParser();
  MultipartParser(const MultipartParser&) = delete;
  MultipartParser& operator=(const MultipartParser&) = delete;

  // Consumes `n` bytes of the body.
  Status Feed(const char* data, size_t n);
  Status Feed(std::string_view data) { return Feed(data.data(), data.size()); }
  // Declares the end of the body: InvalidInput unless the closing boundary was seen.
  Status Finish();

  // Parts completed so far, in body order.
  const std::vector<FormPart>& parts() const { return parts_; }
  std::vector<FormPart> TakeParts() { return std::move(parts_); }
  // Owner of the temp files of file parts.
  const std::shared_ptr<UploadedFiles>& uploads() const { return uploads_; }
  // True once the closing boundary has been parsed.
  bool done() const { return state_ == State::kDone; }

 private:
  enum class State { kPreamble, kAfterBoundary, kHeaders, kBody, kDone };

  Status Fail(Status s);
  Status ParsePartHeaders(std::string_view block);
  Status EmitBody(const char* data, size_t n);
  Status EndPart();

  std::string delimiter_;  // "\r\n--" + boundary
  std::string upload_dir_;
  MultipartLimits limits_;
  std::shared_ptr<UploadedFiles> uploads_;
  State state_ = State::kPreamble;
  std::string buf_;  // unconsumed bytes (bounded: a header block or a delimiter's length)
  std::vector<FormPart> parts_;
  FormPart current_;
  bool current_is_file_ = false;
  int fd_ = -1;
  Status error_;
};

}  // namespace serveml::http
