#include "cli/args.h"

#include <charconv>
#include <cmath>
#include <string>

namespace serveml::cli {

std::optional<std::string> ParsedArgs::Get(const std::string& flag) const {
  auto it = values.find(flag);
  if (it == values.end()) return std::nullopt;
  return it->second;
}

Result<ParsedArgs> ParseArgs(const std::vector<std::string>& args, const FlagSpec& spec) {
  ParsedArgs out;
  bool flags_done = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (flags_done || arg == "-" || arg.empty() || arg[0] != '-') {
      out.positionals.push_back(arg);
      continue;
    }
    if (arg == "--") {
      flags_done = true;
      continue;
    }
    if (arg == "-h" || arg == "--help") {
      out.help = true;
      continue;
    }
    if (arg.size() < 3 || arg[1] != '-') {
      return InvalidInput("unknown option '" + arg + "'");
    }
    std::string name = arg.substr(2);
    std::optional<std::string> inline_value;
    if (auto eq = name.find('='); eq != std::string::npos) {
      inline_value = name.substr(eq + 1);
      name.resize(eq);
    }
    if (spec.value_flags.count(name)) {
      if (inline_value) {
        out.values[name] = *inline_value;
      } else if (i + 1 < args.size()) {
        out.values[name] = args[++i];
      } else {
        return InvalidInput("option '--" + name + "' needs a value");
      }
    } else if (spec.bool_flags.count(name)) {
      if (inline_value) return InvalidInput("option '--" + name + "' takes no value");
      out.switches.insert(name);
    } else {
      return InvalidInput("unknown option '--" + name + "'");
    }
  }
  return out;
}

Result<int64_t> ParseIntFlag(std::string_view flag, std::string_view text, int64_t min,
                             int64_t max) {
  auto fail = [&] {
    return InvalidInput("--" + std::string(flag) + " must be an integer between " +
                        std::to_string(min) + " and " + std::to_string(max) + ", got '" +
                        std::string(text) + "'");
  };
  if (text.empty() || text[0] == '+') return fail();
  int64_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size()) return fail();
  if (value < min || value > max) return fail();
  return value;
}

Result<double> ParseSecondsFlag(std::string_view flag, std::string_view text) {
  auto fail = [&] {
    return InvalidInput("--" + std::string(flag) +
                        " must be a non-negative number of seconds, got '" + std::string(text) +
                        "'");
  };
  if (text.empty()) return fail();
  double value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size()) return fail();
  if (!std::isfinite(value) || value < 0) return fail();
  return value;
}

}  // namespace serveml::cli
