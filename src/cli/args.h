// Command-line parsing for the client commands: a tiny, strict flag parser.
//
// Flags are declared up front (FlagSpec); anything else starting with "--" is a usage
// error, so a typo never silently turns into a positional argument.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace serveml::cli {

// Which flags a command accepts. Names are given without the leading "--".
struct FlagSpec {
  std::set<std::string> value_flags;  // `--name VALUE` or `--name=VALUE`
  std::set<std::string> bool_flags;   // `--name` (no value)
};

// The result of parsing one command's arguments.
struct ParsedArgs {
  std::vector<std::string> positionals;
  std::map<std::string, std::string> values;  // value flags; the last occurrence wins
  std::set<std::string> switches;             // bool flags that were given
  bool help = false;                          // `-h` or `--help` was given

  bool Has(const std::string& flag) const {
    return values.count(flag) > 0 || switches.count(flag) > 0;
  }
  // The value of a value flag, or nullopt when it was not given.
  std::optional<std::string> Get(const std::string& flag) const;
};

// Parses `args` (which must NOT include the command name) against `spec`.
// Rules: `--flag VALUE` takes the next argument verbatim (so `--data -` and
// `--data '[-1]'` work); `--flag=VALUE` also works; `--` ends flag parsing; `-h`/`--help`
// set `help`; a lone "-" is a positional. Unknown flags, a value flag without a value, or
// `--switch=value` give an InvalidInput status whose message is fit for the user.
Result<ParsedArgs> ParseArgs(const std::vector<std::string>& args, const FlagSpec& spec);

// Parses a decimal integer in [min, max] for flag `flag` ("--memory must be an integer
// between 128 and 10240" on failure). No trailing garbage, no sign for unsigned ranges.
Result<int64_t> ParseIntFlag(std::string_view flag, std::string_view text, int64_t min,
                             int64_t max);

// Parses a non-negative number of seconds (e.g. "120", "0.5") for flag `flag`.
Result<double> ParseSecondsFlag(std::string_view flag, std::string_view text);

}  // namespace serveml::cli
