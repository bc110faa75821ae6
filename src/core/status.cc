#include "core/status.h"

namespace serveml {

std::string_view CodeName(Code code) {
  switch (code) {
    case Code::kOk:
      return "OK";
    case Code::kInvalidInput:
      return "INVALID_INPUT";
    case Code::kValidation:
      return "VALIDATION_ERROR";
    case Code::kUnauthorized:
      return "UNAUTHORIZED";
    case Code::kForbidden:
      return "FORBIDDEN";
    case Code::kNotFound:
      return "NOT_FOUND";
    case Code::kConflict:
      return "CONFLICT";
    case Code::kPayloadTooLarge:
      return "PAYLOAD_TOO_LARGE";
    case Code::kRateLimited:
      return "RATE_LIMITED";
    case Code::kUnsupported:
      return "UNSUPPORTED";
    case Code::kDeploymentFailed:
      return "DEPLOYMENT_FAILED";
    case Code::kPrediction:
      return "PREDICTION_ERROR";
    case Code::kInternal:
      return "SERVICE_ERROR";
    case Code::kUnavailable:
      return "SERVICE_UNAVAILABLE";
    case Code::kQuotaExceeded:
      return "QUOTA_EXCEEDED";
    case Code::kTimeout:
      return "TIMEOUT";
  }
  return "SERVICE_ERROR";
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string s(CodeName(code_));
  s += ": ";
  s += message_;
  return s;
}

}  // namespace serveml
