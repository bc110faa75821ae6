// Pure formatting of server responses for the terminal (unit-tested without a server).
#pragma once

#include <string>
#include <string_view>

#include "core/status.h"

namespace serveml::cli {

// The text after "error: " for a failed API call, from the error envelope
// {"error":{"code","message","details"},"request_id"}:
//   "NOT_FOUND: Deployment not found (req-abc)"
// followed by "\n  details: {...}" when details is a non-empty object or array.
// `header_request_id` (X-Request-ID) is used when the body has none. Bodies that are not
// the envelope fall back to "HTTP <status>: <message, detail or a body excerpt>".
std::string FormatApiError(long http_status, std::string_view body,
                           std::string_view header_request_id);

// The upper-case error code from an error envelope, or "" when there is none.
std::string ApiErrorCode(std::string_view body);

// A fixed-width table (ID, NAME, STATUS, FRAMEWORK, CREATED) of a deployment list response
// ({"items":[...],"total":N,...} or a bare array), one line per deployment, ending with a
// "<n> of <total> deployment(s)" line; "No deployments." when empty. The framework is
// taken from model_metadata.framework (or a top-level "framework"). Long names are cut.
Result<std::string> FormatDeploymentTable(std::string_view body);

// Re-serializes a JSON body (indent 2) with every "access_token", "refresh_token",
// "token", "api_key" and "password" value replaced by "<redacted>", recursively.
// Non-JSON input is returned unchanged.
std::string RedactSecrets(std::string_view body);

// Pretty-prints (indent 2) a JSON body; non-JSON input is returned unchanged.
std::string PrettyJson(std::string_view body);

}  // namespace serveml::cli
