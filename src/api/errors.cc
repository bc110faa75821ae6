#include "api/errors.h"

#include "core/json_writer.h"

namespace serveml::api {

int HttpStatusFor(Code code) {
  switch (code) {
    case Code::kOk:
      return 200;
    case Code::kInvalidInput:
      return 400;
    case Code::kValidation:
      return 422;
    case Code::kUnauthorized:
      return 401;
    case Code::kForbidden:
      return 403;
    case Code::kNotFound:
      return 404;
    case Code::kConflict:
      return 400;
    case Code::kPayloadTooLarge:
      return 413;
    case Code::kRateLimited:
      return 429;
    case Code::kUnsupported:
      return 400;
    case Code::kDeploymentFailed:
      return 400;
    case Code::kPrediction:
      return 500;
    case Code::kInternal:
      return 500;
    case Code::kUnavailable:
      return 503;
    case Code::kQuotaExceeded:
      return 403;
    case Code::kTimeout:
      return 504;
  }
  return 500;
}

std::string_view ApiCodeFor(Code code) {
  switch (code) {
    case Code::kConflict:
    case Code::kUnsupported:
      return "INVALID_INPUT";
    case Code::kUnavailable:
      return "SERVICE_ERROR";
    default:
      return CodeName(code);
  }
}

std::string ErrorBody(std::string_view code, std::string_view message, std::string_view request_id,
                      std::string_view details_json) {
  std::string out;
  out.reserve(128 + message.size());
  JsonWriter w(out);
  w.BeginObject();
  w.Key("error").BeginObject();
  w.Key("code").String(code);
  w.Key("message").String(message);
  w.Key("details").Raw(details_json.empty() ? "{}" : details_json);
  w.EndObject();
  w.Key("request_id").String(request_id);
  w.EndObject();
  return out;
}

http::Response ErrorResponse(const Status& status, std::string_view request_id,
                             std::string_view details_json) {
  http::Response r;
  r.status = HttpStatusFor(status.code());
  r.body = ErrorBody(ApiCodeFor(status.code()), status.message(), request_id, details_json);
  if (status.code() == Code::kUnauthorized) r.headers.emplace_back("WWW-Authenticate", "Bearer");
  return r;
}

}  // namespace serveml::api
