// The API's error shape and the mapping from Status codes to HTTP statuses:
//   {"error": {"code": "NOT_FOUND", "message": "...", "details": {...}}, "request_id": "req-..."}
#pragma once

#include <string>
#include <string_view>

#include "core/status.h"
#include "http/http.h"

namespace serveml::api {

// HTTP status for a Status code (e.g. kNotFound -> 404).
int HttpStatusFor(Code code);
// API error code for a Status code ("NOT_FOUND", ...). Codes outside the API's list map
// to the closest one (kConflict -> "INVALID_INPUT", kUnsupported -> "INVALID_INPUT").
std::string_view ApiCodeFor(Code code);
// The error body. `details_json` must be a JSON object ("{}" if none).
std::string ErrorBody(std::string_view code, std::string_view message, std::string_view request_id,
                      std::string_view details_json = "{}");
// A complete error response for `status` (not OK).
http::Response ErrorResponse(const Status& status, std::string_view request_id,
                             std::string_view details_json = "{}");

}  // namespace serveml::api
