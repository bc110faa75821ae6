// Allocation budgets shared by the file readers of the importers (pickle, XGBoost JSON/UBJSON,
// LightGBM text). Every allocation a reader makes because of what a file says is charged to
// one AllocBudget sized from the file:
//
//   budget = min(alloc_factor * file size + alloc_slack, max_alloc_bytes)
//
// so a small file can never make a reader hold more than a fixed multiple of its own size
// (plus a little slack for small files), and no file can make it hold more than the absolute
// cap. The process-wide defaults of the factor and the cap can be overridden with the
// environment variables SERVEML_IMPORT_ALLOC_FACTOR (a positive integer) and
// SERVEML_IMPORT_MAX_BYTES (bytes, a positive integer; "4G", "512M", "64K" suffixes accepted),
// read once at first use; malformed values are ignored.
//
// Thread safety: the default getters are thread safe; an AllocBudget belongs to one read.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"

namespace serveml::importers {

inline constexpr size_t kMiB = size_t{1} << 20;
inline constexpr size_t kGiB = size_t{1} << 30;

// `fallback`, or SERVEML_IMPORT_ALLOC_FACTOR when it is set to a positive integer.
size_t DefaultAllocFactor(size_t fallback);
// `fallback`, or SERVEML_IMPORT_MAX_BYTES when it is set to a positive byte count.
size_t DefaultMaxAllocBytes(size_t fallback);

// min(factor * input + slack, cap), saturating instead of overflowing.
size_t BudgetFor(size_t input_bytes, size_t factor, size_t slack, size_t cap);

// Bounds for the XGBoost and LightGBM readers (the pickle reader has its own ReaderLimits).
// Real boosting files need about 8 bytes per input byte at most (a UBJSON int8 array read as
// doubles); the default factor leaves room for that and the trees built from them.
struct BoostingLimits {
  size_t alloc_factor = DefaultAllocFactor(16);
  size_t alloc_slack = 64 * kMiB;
  size_t max_alloc_bytes = DefaultMaxAllocBytes(4 * kGiB);
};

// Running total of the bytes one read has allocated, checked against its budget.
class AllocBudget {
 public:
  // `what` names the file kind in the error message ("the pickle", "the XGBoost model", ...).
  AllocBudget(std::string what, size_t input_bytes, size_t factor, size_t slack, size_t cap);
  AllocBudget(std::string what, size_t input_bytes, const BoostingLimits& limits)
      : AllocBudget(std::move(what), input_bytes, limits.alloc_factor, limits.alloc_slack,
                    limits.max_alloc_bytes) {}

  // Adds `bytes` to the total. InvalidInput naming the "allocation budget" once the total
  // passes the budget (the caller must not allocate then).
  Status Charge(size_t bytes);
  // Makes room for `extra` more elements in `v`, charging the capacity it adds (exactly
  // what is needed for an empty vector, doubling otherwise) before allocating it.
  template <typename T>
  Status Reserve(std::vector<T>& v, size_t extra) {
    if (extra > budget_ / sizeof(T)) return Charge(SIZE_MAX);  // more than any budget
    const size_t need = v.size() + extra;
    if (need <= v.capacity()) return Status::Ok();
    const size_t cap = std::max(need, v.capacity() * 2);
    RETURN_IF_ERROR(Charge((cap - v.capacity()) * sizeof(T)));
    v.reserve(cap);
    return Status::Ok();
  }
  size_t used() const { return used_; }
  size_t budget() const { return budget_; }

 private:
  std::string what_;
  size_t factor_, slack_, cap_;
  size_t budget_;
  size_t input_;
  size_t used_ = 0;
};

// The message AllocBudget::Charge returns, e.g. "the pickle exceeds its allocation budget:
// loading it would need more than 81 MiB (the budget is 8 x its 2150025 bytes + 64 MiB, at
// most 4096 MiB), far more than its size justifies; refusing it".
std::string AllocBudgetMessage(const std::string& what, size_t input_bytes, size_t factor,
                               size_t slack, size_t cap, size_t budget);

}  // namespace serveml::importers
