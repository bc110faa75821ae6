#include "http/multipart.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "http/url.h"

namespace serveml::http {

namespace {

bool IsSpace(char c) { return c == ' ' || c == '\t'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

size_t Find(std::string_view hay, std::string_view needle) {
  if (hay.size() < needle.size()) return std::string_view::npos;
  const void* p = ::memmem(hay.data(), hay.size(), needle.data(), needle.size());
  return p == nullptr ? std::string_view::npos
                      : static_cast<size_t>(static_cast<const char*>(p) - hay.data());
}

// Parses `; key=value; key="quoted \" value"` parameters (RFC 7231 section 3.1.1.1) and
// calls on_param(lower-case key, unquoted value). Returns false on an unterminated quote.
template <typename F>
bool ParseParams(std::string_view s, F&& on_param) {
  size_t i = 0;
  std::string key, value;
  while (i < s.size()) {
    while (i < s.size() && (IsSpace(s[i]) || s[i] == ';')) ++i;
    if (i >= s.size()) break;
    size_t key_start = i;
    while (i < s.size() && s[i] != '=' && s[i] != ';') ++i;
    key.clear();
    for (char c : Trim(s.substr(key_start, i - key_start))) {
      key.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c);
    }
    value.clear();
    if (i < s.size() && s[i] == '=') {
      ++i;
      while (i < s.size() && IsSpace(s[i])) ++i;
      if (i < s.size() && s[i] == '"') {
        ++i;
        bool closed = false;
        while (i < s.size()) {
          char c = s[i++];
          if (c == '"') {
            closed = true;
            break;
          }
          // Only \" and \\ are escapes: browsers send Windows paths with bare backslashes.
          if (c == '\\' && i < s.size() && (s[i] == '"' || s[i] == '\\')) c = s[i++];
          value.push_back(c);
        }
        if (!closed) return false;
        while (i < s.size() && s[i] != ';') ++i;  // ignore junk after the quote
      } else {
        size_t v_start = i;
        while (i < s.size() && s[i] != ';') ++i;
        value.assign(Trim(s.substr(v_start, i - v_start)));
      }
    }
    if (!key.empty()) on_param(key, value);
  }
  return true;
}

// Decodes an RFC 5987 ext-value: charset'language'percent-encoded. Empty on bad input.
std::string DecodeExtValue(std::string_view v) {
  size_t q1 = v.find('\'');
  if (q1 == std::string_view::npos) return {};
  size_t q2 = v.find('\'', q1 + 1);
  if (q2 == std::string_view::npos) return {};
  std::string out;
  if (!PercentDecode(v.substr(q2 + 1), false, &out)) return {};
  return out;
}

// Drops any directory part a client put into the filename ("C:\x\model.pkl").
std::string BaseName(std::string name) {
  size_t slash = name.find_last_of("/\\");
  if (slash != std::string::npos) name.erase(0, slash + 1);
  return name;
}

}  // namespace

bool IsMultipartFormData(std::string_view content_type) {
  size_t semi = content_type.find(';');
  return EqualsIgnoreCase(Trim(content_type.substr(0, semi)), "multipart/form-data");
}

Result<std::string> ParseBoundary(std::string_view content_type) {
  if (!IsMultipartFormData(content_type)) {
    return InvalidInput("expected Content-Type multipart/form-data");
  }
  size_t semi = content_type.find(';');
  std::string boundary;
  bool found = false;
  bool ok =
      semi == std::string_view::npos ||
      ParseParams(content_type.substr(semi + 1), [&](const std::string& k, const std::string& v) {
        if (k == "boundary" && !found) {
          boundary = v;
          found = true;
        }
      });
  if (!ok) return InvalidInput("malformed multipart/form-data Content-Type parameters");
  if (!found || boundary.empty()) {
    return InvalidInput("multipart/form-data Content-Type has no boundary parameter");
  }
  if (boundary.size() > 70) {
    return InvalidInput("multipart boundary is longer than 70 characters");
  }
  if (boundary.find_first_of("\r\n") != std::string::npos) {
    return InvalidInput("multipart boundary contains a line break");
  }
  return boundary;
}

MultipartParser::MultipartParser(std::string boundary, std::string upload_dir,
                                 MultipartLimits limits, std::shared_ptr<UploadedFiles> uploads)
    : delimiter_("\r\n--" + boundary),
      upload_dir_(std::move(upload_dir)),
      limits_(limits),
      uploads_(uploads ? std::move(uploads) : std::make_shared<UploadedFiles>()),
      // A virtual CRLF before the body lets "--boundary" on the very first line match the
      // same delimiter as every later one.
      buf_("\r\n") {}

MultipartParser::~MultipartParser() {
  if (fd_ >= 0) ::close(fd_);
}

Status MultipartParser::Fail(Status s) {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  error_ = std::move(s);
  buf_.clear();
  return error_;
}

Status MultipartParser::Feed(const char* data, size_t n) {
  if (!error_.ok()) return error_;
  if (state_ == State::kDone) return Status::Ok();  // epilogue: ignored
  buf_.append(data, n);
  const size_t dlen = delimiter_.size();
  size_t pos = 0;
  bool more = true;
  while (more) {
    std::string_view rest(buf_.data() + pos, buf_.size() - pos);
    switch (state_) {
      case State::kPreamble: {
        size_t at = Find(rest, delimiter_);
        if (at == std::string_view::npos) {
          if (rest.size() >= dlen) pos += rest.size() - (dlen - 1);
          more = false;
          break;
        }
        pos += at + dlen;
        state_ = State::kAfterBoundary;
        break;
      }
      case State::kAfterBoundary: {
        if (rest.size() < 2) {
          more = false;
          break;
        }
        if (rest[0] == '-' && rest[1] == '-') {
          state_ = State::kDone;
          pos = buf_.size();
          more = false;
          break;
        }
        size_t crlf = rest.find("\r\n");
        if (crlf == std::string_view::npos) {
          if (rest.size() > 256) return Fail(InvalidInput("malformed multipart boundary line"));
          more = false;
          break;
        }
        for (size_t i = 0; i < crlf; ++i) {
          if (!IsSpace(rest[i])) {
            return Fail(InvalidInput(
                "malformed multipart body: boundary not followed by a line break or \"--\""));
          }
        }
        pos += crlf + 2;
        state_ = State::kHeaders;
        break;
      }
      case State::kHeaders: {
        if (rest.size() < 2) {
          more = false;
          break;
        }
        std::string_view block;
        if (rest[0] == '\r' && rest[1] == '\n') {
          pos += 2;
        } else {
          size_t end = Find(rest, "\r\n\r\n");
          if (end == std::string_view::npos) {
            if (rest.size() > limits_.max_part_header_bytes) {
              return Fail(InvalidInput("multipart part headers are too large"));
            }
            more = false;
            break;
          }
          if (end > limits_.max_part_header_bytes) {
            return Fail(InvalidInput("multipart part headers are too large"));
          }
          block = rest.substr(0, end);
          pos += end + 4;
        }
        if (parts_.size() >= limits_.max_parts) {
          return Fail(InvalidInput("multipart body has too many parts (limit " +
                                   std::to_string(limits_.max_parts) + ")"));
        }
        Status st = ParsePartHeaders(block);
        if (!st.ok()) return Fail(std::move(st));
        state_ = State::kBody;
        break;
      }
      case State::kBody: {
        size_t at = Find(rest, delimiter_);
        if (at == std::string_view::npos) {
          // Keep back what could be the start of a delimiter split across chunks.
          size_t emit = rest.size() >= dlen ? rest.size() - (dlen - 1) : 0;
          Status st = EmitBody(rest.data(), emit);
          if (!st.ok()) return Fail(std::move(st));
          pos += emit;
          more = false;
          break;
        }
        Status st = EmitBody(rest.data(), at);
        if (st.ok()) st = EndPart();
        if (!st.ok()) return Fail(std::move(st));
        pos += at + dlen;
        state_ = State::kAfterBoundary;
        break;
      }
      case State::kDone:
        pos = buf_.size();
        more = false;
        break;
    }
  }
  buf_.erase(0, pos);
  return Status::Ok();
}

Status MultipartParser::Finish() {
  if (!error_.ok()) return error_;
  if (state_ != State::kDone) {
    return Fail(
        InvalidInput(state_ == State::kPreamble
                         ? "multipart body contains no boundary line (check the boundary parameter)"
                         : "multipart body ended before the closing boundary"));
  }
  return Status::Ok();
}

Status MultipartParser::ParsePartHeaders(std::string_view block) {
  current_ = FormPart();
  current_is_file_ = false;
  bool have_disposition = false;
  bool have_name = false;
  bool have_filename = false;
  std::string filename, filename_ext;
  while (!block.empty()) {
    size_t eol = block.find("\r\n");
    std::string_view line = block.substr(0, eol);
    block = eol == std::string_view::npos ? std::string_view() : block.substr(eol + 2);
    if (line.empty()) continue;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
      return InvalidInput("malformed multipart part header line (no ':')");
    }
    std::string_view name = Trim(line.substr(0, colon));
    std::string_view value = Trim(line.substr(colon + 1));
    if (EqualsIgnoreCase(name, "content-disposition")) {
      have_disposition = true;
      size_t semi = value.find(';');
      if (!EqualsIgnoreCase(Trim(value.substr(0, semi)), "form-data")) {
        return InvalidInput("multipart part Content-Disposition is not form-data");
      }
      if (semi == std::string_view::npos) continue;
      bool ok =
          ParseParams(value.substr(semi + 1), [&](const std::string& k, const std::string& v) {
            if (k == "name") {
              current_.name = v;
              have_name = true;
            } else if (k == "filename") {
              filename = v;
              have_filename = true;
            } else if (k == "filename*") {
              filename_ext = DecodeExtValue(v);
            }
          });
      if (!ok) return InvalidInput("malformed multipart Content-Disposition (unterminated quote)");
    } else if (EqualsIgnoreCase(name, "content-type")) {
      current_.content_type = std::string(value);
    }
  }
  if (!have_disposition) return InvalidInput("multipart part has no Content-Disposition header");
  if (!have_name) return InvalidInput("multipart part has no field name");
  if (!filename_ext.empty()) {
    filename = std::move(filename_ext);
    have_filename = true;
  }
  if (have_filename) filename = BaseName(std::move(filename));
  if (!have_filename || filename.empty()) return Status::Ok();  // plain field

  current_.filename = std::move(filename);
  current_is_file_ = true;
  std::string path = upload_dir_ + "/serveml-upload-XXXXXX";
  int fd = ::mkostemp(path.data(), O_CLOEXEC);
  if (fd < 0) {
    return Internal("cannot create a temp file for an upload in '" + upload_dir_ +
                    "': " + std::strerror(errno));
  }
  fd_ = fd;
  uploads_->Add(path);
  current_.file_path = std::move(path);
  return Status::Ok();
}

Status MultipartParser::EmitBody(const char* data, size_t n) {
  if (n == 0) return Status::Ok();
  if (!current_is_file_) {
    if (current_.value.size() + n > limits_.max_field_bytes) {
      return Status(Code::kPayloadTooLarge, "multipart field '" + current_.name +
                                                "' is larger than " +
                                                std::to_string(limits_.max_field_bytes) + " bytes");
    }
    current_.value.append(data, n);
    current_.size += n;
    return Status::Ok();
  }
  size_t done = 0;
  while (done < n) {
    ssize_t w = ::write(fd_, data + done, n - done);
    if (w < 0) {
      if (errno == EINTR) continue;
      return Internal("writing an upload temp file failed: " + std::string(std::strerror(errno)));
    }
    done += static_cast<size_t>(w);
  }
  current_.size += n;
  return Status::Ok();
}

Status MultipartParser::EndPart() {
  if (current_is_file_) {
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0 && errno != EINTR) {
      return Internal("closing an upload temp file failed: " + std::string(std::strerror(errno)));
    }
  }
  parts_.push_back(std::move(current_));
  current_ = FormPart();
  current_is_file_ = false;
  return Status::Ok();
}

}  // namespace serveml::http
