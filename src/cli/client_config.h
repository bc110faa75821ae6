// Where the client commands find the server and the credentials.
//
// Precedence for each of url and token: command-line flag, then environment
// (SERVEML_URL / SERVEML_TOKEN), then the config file `$HOME/.serveml/config.json`
// ({"url": ..., "token": ...}, written by `serveml login`), then the default URL.
// A token from the config file is only used for the URL it was saved with, so pointing
// `--url` at another server never sends it a token issued by a different one.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace serveml::cli {

inline constexpr std::string_view kDefaultUrl = "http://127.0.0.1:8000";

// The contents of the config file that the CLI understands.
struct ClientConfig {
  std::string url;    // empty when absent
  std::string token;  // empty when absent
};

// `$HOME/.serveml/config.json`, or an empty string when `home` is null or empty.
std::string ConfigPath(const char* home);

// Reads the config file. A missing file is an empty config (OK); unreadable or malformed
// JSON is an error naming the path. Unknown keys are ignored.
Result<ClientConfig> ReadConfigFile(const std::string& path);

// Writes url and token into the config file, keeping any other keys already there.
// Creates the parent directory with mode 0700 (and tightens it to 0700 if it exists);
// the file is written to a temporary file with mode 0600 and renamed into place, so it is
// never readable by others, not even briefly. An empty `token` removes the key.
Status WriteConfigFile(const std::string& path, const ClientConfig& config);

// Trims whitespace and trailing '/', and adds "http://" when no scheme is given.
std::string NormalizeBaseUrl(std::string_view url);

// The URL with any user-info ("user:pass@") replaced by "***@", for messages.
std::string RedactUrl(std::string_view url);

// The effective connection after applying the precedence rules above. Flags and env
// values are nullopt when not given; an empty env value counts as not given.
struct Connection {
  std::string url;    // normalized
  std::string token;  // may be empty (unauthenticated)
};
Connection ResolveConnection(const std::optional<std::string>& flag_url,
                             const std::optional<std::string>& flag_token,
                             const std::optional<std::string>& env_url,
                             const std::optional<std::string>& env_token, const ClientConfig& file);

}  // namespace serveml::cli
