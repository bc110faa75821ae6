#include "importers/limits.h"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <limits>
#include <string_view>
#include <utility>

namespace serveml::importers {
namespace {

// A positive integer with an optional K/M/G suffix (powers of 1024 when `suffixes`), or 0.
size_t ParsePositive(const char* text, bool suffixes) {
  if (!text) return 0;
  std::string_view s(text);
  size_t mult = 1;
  if (suffixes && !s.empty()) {
    switch (s.back()) {
      case 'K':
      case 'k':
        mult = size_t{1} << 10;
        break;
      case 'M':
      case 'm':
        mult = size_t{1} << 20;
        break;
      case 'G':
      case 'g':
        mult = size_t{1} << 30;
        break;
      default:
        break;
    }
    if (mult != 1) s.remove_suffix(1);
  }
  size_t v = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || r.ec != std::errc() || r.ptr != s.data() + s.size() || v == 0) return 0;
  if (v > std::numeric_limits<size_t>::max() / mult) return 0;
  return v * mult;
}

size_t Mib(size_t bytes) { return (bytes + kMiB - 1) / kMiB; }

}  // namespace

size_t DefaultAllocFactor(size_t fallback) {
  static const size_t env = ParsePositive(std::getenv("SERVEML_IMPORT_ALLOC_FACTOR"), false);
  return env ? env : fallback;
}

size_t DefaultMaxAllocBytes(size_t fallback) {
  static const size_t env = ParsePositive(std::getenv("SERVEML_IMPORT_MAX_BYTES"), true);
  return env ? env : fallback;
}

size_t BudgetFor(size_t input_bytes, size_t factor, size_t slack, size_t cap) {
  constexpr size_t kMax = std::numeric_limits<size_t>::max();
  size_t scaled = factor != 0 && input_bytes > kMax / factor ? kMax : input_bytes * factor;
  size_t total = scaled > kMax - slack ? kMax : scaled + slack;
  return total < cap ? total : cap;
}

AllocBudget::AllocBudget(std::string what, size_t input_bytes, size_t factor, size_t slack,
                         size_t cap)
    : what_(std::move(what)),
      factor_(factor),
      slack_(slack),
      cap_(cap),
      budget_(BudgetFor(input_bytes, factor, slack, cap)),
      input_(input_bytes) {}

Status AllocBudget::Charge(size_t bytes) {
  if (bytes > budget_ - std::min(used_, budget_) || used_ > budget_) {
    used_ = budget_ + 1;
    return InvalidInput(AllocBudgetMessage(what_, input_, factor_, slack_, cap_, budget_));
  }
  used_ += bytes;
  return Status::Ok();
}

std::string AllocBudgetMessage(const std::string& what, size_t input_bytes, size_t factor,
                               size_t slack, size_t cap, size_t budget) {
  return what + " exceeds its allocation budget: loading it would need more than " +
         std::to_string(Mib(budget)) + " MiB (the budget is " + std::to_string(factor) + " x its " +
         std::to_string(input_bytes) + " bytes + " + std::to_string(Mib(slack)) + " MiB, at most " +
         std::to_string(Mib(cap)) + " MiB), far more than its size justifies; refusing it";
}

}  // namespace serveml::importers
