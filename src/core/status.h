// Status and Result<T>: errors as values across module boundaries.
//
// A Status is either OK or carries a Code and a human-readable message. Codes map
// one-to-one onto the REST API error codes (see api/errors.h), so a failure deep in
// an importer surfaces to the user with the right HTTP status and no translation layer
// guessing at intent.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace serveml {

enum class Code {
  kOk = 0,
  kInvalidInput,      // caller sent something malformed (400 INVALID_INPUT)
  kValidation,        // well-formed but semantically invalid (422 VALIDATION_ERROR)
  kUnauthorized,      // missing or bad credentials (401)
  kForbidden,         // authenticated but not allowed (403)
  kNotFound,          // no such thing, or not visible to the caller (404)
  kConflict,          // uniqueness violation, e.g. email already registered (400/409)
  kPayloadTooLarge,   // body over a configured limit (413)
  kRateLimited,       // too many requests (429)
  kUnsupported,       // valid file or graph using something we do not implement
  kDeploymentFailed,  // model failed to import/validate (400 DEPLOYMENT_FAILED)
  kPrediction,        // the model failed while running (500 PREDICTION_ERROR)
  kInternal,          // a bug or an environment failure (500 SERVICE_ERROR)
  kUnavailable,       // temporarily unable, e.g. shutting down or disk full (503)
  kQuotaExceeded,     // the caller stores as much as it may (403 QUOTA_EXCEEDED)
  kTimeout,           // a deadline passed, e.g. a prediction's timeout_seconds (504 TIMEOUT)
};

// Stable upper-case name of a code, e.g. "INVALID_INPUT".
std::string_view CodeName(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // "INVALID_INPUT: message" for logs and tests.
  std::string ToString() const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

inline Status InvalidInput(std::string m) { return {Code::kInvalidInput, std::move(m)}; }
inline Status ValidationError(std::string m) { return {Code::kValidation, std::move(m)}; }
inline Status Unauthorized(std::string m) { return {Code::kUnauthorized, std::move(m)}; }
inline Status Forbidden(std::string m) { return {Code::kForbidden, std::move(m)}; }
inline Status NotFound(std::string m) { return {Code::kNotFound, std::move(m)}; }
inline Status Conflict(std::string m) { return {Code::kConflict, std::move(m)}; }
inline Status Unsupported(std::string m) { return {Code::kUnsupported, std::move(m)}; }
inline Status Internal(std::string m) { return {Code::kInternal, std::move(m)}; }
inline Status Unavailable(std::string m) { return {Code::kUnavailable, std::move(m)}; }
inline Status QuotaExceeded(std::string m) { return {Code::kQuotaExceeded, std::move(m)}; }
inline Status Timeout(std::string m) { return {Code::kTimeout, std::move(m)}; }

// Result<T> holds either a value or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}        // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    assert(!std::get<Status>(v_).ok() && "Result constructed from an OK status");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace serveml

#define SERVEML_CONCAT_INNER(a, b) a##b
#define SERVEML_CONCAT(a, b) SERVEML_CONCAT_INNER(a, b)

// Returns the Status from the enclosing function if `expr` is not OK.
#define RETURN_IF_ERROR(expr)       \
  do {                              \
    ::serveml::Status _st = (expr); \
    if (!_st.ok()) return _st;      \
  } while (0)

// `ASSIGN_OR_RETURN(auto x, MakeX());` declares x from a Result or returns its Status.
#define ASSIGN_OR_RETURN(lhs, rexpr) \
  ASSIGN_OR_RETURN_IMPL(SERVEML_CONCAT(_res_, __LINE__), lhs, rexpr)
#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, rexpr) \
  auto tmp = (rexpr);                          \
  if (!tmp.ok()) return tmp.status();          \
  lhs = std::move(tmp).value()
