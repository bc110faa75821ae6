// Numpy-style multidirectional broadcasting (ONNX "Broadcasting in ONNX") and a loop helper
// that walks two broadcast operands with collapsed dimensions. Pure functions; thread safe.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/shape.h"
#include "core/status.h"

namespace serveml::engine {

// out = broadcast(a, b). InvalidInput when a dimension pair is neither equal nor has a 1.
Status BroadcastShape(std::span<const int64_t> a, std::span<const int64_t> b, Shape* out);
Status BroadcastShape(std::span<const int64_t> a, std::span<const int64_t> b,
                      std::vector<int64_t>* out);

// Checks `from` can be broadcast to `to` in one direction (Gemm's C, unidirectional).
bool CanBroadcastTo(std::span<const int64_t> from, std::span<const int64_t> to);

// An iteration plan over `out` for two operands: collapsed dims (>= 1 entry) and, per
// operand, element strides (0 where broadcast). The innermost strides are 0 or 1.
struct BroadcastPlan {
  Shape dims;
  Shape sa;
  Shape sb;
};
BroadcastPlan MakeBroadcastPlan(std::span<const int64_t> a, std::span<const int64_t> b,
                                std::span<const int64_t> out);

// Calls inner(offset_a, offset_b, offset_out, len, step_a, step_b) for each innermost run,
// where step_* is 0 or 1. Nothing is called when out has no elements.
template <typename F>
void ForEachBroadcastRun(const BroadcastPlan& p, F&& inner) {
  const size_t k = p.dims.size();
  const int64_t len = p.dims[k - 1];
  const int64_t step_a = p.sa[k - 1], step_b = p.sb[k - 1];
  int64_t outer = 1;
  for (size_t i = 0; i + 1 < k; ++i) outer *= p.dims[i];
  if (len == 0 || outer == 0) return;
  if (k == 1) {
    inner(int64_t{0}, int64_t{0}, int64_t{0}, len, step_a, step_b);
    return;
  }
  int64_t stack_idx[16] = {0};
  std::vector<int64_t> heap_idx;
  int64_t* idx = stack_idx;
  if (k > 16) {
    heap_idx.assign(k, 0);
    idx = heap_idx.data();
  }
  int64_t oa = 0, ob = 0, oo = 0;
  for (int64_t n = 0; n < outer; ++n) {
    inner(oa, ob, oo, len, step_a, step_b);
    oo += len;
    // advance the odometer over dims[0..k-2]
    for (size_t d = k - 1; d-- > 0;) {
      ++idx[d];
      oa += p.sa[d];
      ob += p.sb[d];
      if (idx[d] < p.dims[d]) break;
      oa -= p.sa[d] * p.dims[d];
      ob -= p.sb[d] * p.dims[d];
      idx[d] = 0;
    }
  }
}

}  // namespace serveml::engine
