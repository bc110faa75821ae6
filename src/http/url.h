// URL helpers shared by the server, the router and the multipart parser. Pure functions,
// thread safe.
#pragma once

#include <string>
#include <string_view>

namespace serveml::http {

// Appends the percent-decoded form of `in` to `*out`. With `plus_as_space` a '+' becomes a
// space (query strings, application/x-www-form-urlencoded). A '%' not followed by two hex
// digits is kept literally. Returns false if the decoded text contains a NUL byte (the
// output is still written).
bool PercentDecode(std::string_view in, bool plus_as_space, std::string* out);

// Splits a request target into its path (before '?', fragment dropped) and raw query.
// An absolute-form target ("http://host/p?q") is reduced to its path and query.
void SplitTarget(std::string_view target, std::string_view* path, std::string_view* query);

}  // namespace serveml::http
