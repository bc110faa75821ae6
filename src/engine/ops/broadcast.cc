#include "engine/ops/broadcast.h"

#include <algorithm>

#include "core/tensor.h"

namespace serveml::engine {

Status BroadcastShape(std::span<const int64_t> a, std::span<const int64_t> b, Shape* out) {
  const size_t r = std::max(a.size(), b.size());
  out->assign(r, 1);
  for (size_t i = 0; i < r; ++i) {
    int64_t da = i < r - a.size() ? 1 : a[i - (r - a.size())];
    int64_t db = i < r - b.size() ? 1 : b[i - (r - b.size())];
    if (da == db || db == 1) {
      (*out)[i] = da;
    } else if (da == 1) {
      (*out)[i] = db;
    } else {
      return InvalidInput("shapes " + ShapeToString({a.begin(), a.end()}) + " and " +
                          ShapeToString({b.begin(), b.end()}) + " cannot be broadcast");
    }
  }
  return Status::Ok();
}

Status BroadcastShape(std::span<const int64_t> a, std::span<const int64_t> b,
                      std::vector<int64_t>* out) {
  Shape s;
  RETURN_IF_ERROR(BroadcastShape(a, b, &s));
  out->assign(s.begin(), s.end());
  return Status::Ok();
}

bool CanBroadcastTo(std::span<const int64_t> from, std::span<const int64_t> to) {
  if (from.size() > to.size()) return false;
  const size_t off = to.size() - from.size();
  for (size_t i = 0; i < from.size(); ++i) {
    if (from[i] != 1 && from[i] != to[off + i]) return false;
  }
  return true;
}

namespace {
// Element strides of x aligned to an output of rank r; 0 for broadcast dims.
Shape AlignedStrides(std::span<const int64_t> x, size_t r) {
  Shape s(r, 0);
  int64_t stride = 1;
  for (size_t j = x.size(); j-- > 0;) {
    size_t i = j + (r - x.size());
    s[i] = x[j] == 1 ? 0 : stride;
    stride *= x[j];
  }
  return s;
}
}  // namespace

BroadcastPlan MakeBroadcastPlan(std::span<const int64_t> a, std::span<const int64_t> b,
                                std::span<const int64_t> out) {
  const size_t r = out.size();
  const Shape sa = AlignedStrides(a, r), sb = AlignedStrides(b, r);
  BroadcastPlan p;
  for (size_t i = 0; i < r; ++i) {
    if (out[i] == 1) continue;  // contributes nothing to the walk
    if (!p.dims.empty()) {
      const size_t k = p.dims.size() - 1;
      // Merge with the previous kept dim when both operands are contiguous across them.
      if (p.sa[k] == sa[i] * out[i] && p.sb[k] == sb[i] * out[i]) {
        p.dims[k] *= out[i];
        p.sa[k] = sa[i];
        p.sb[k] = sb[i];
        continue;
      }
    }
    p.dims.push_back(out[i]);
    p.sa.push_back(sa[i]);
    p.sb.push_back(sb[i]);
  }
  if (p.dims.empty()) {
    p.dims.push_back(1);
    p.sa.push_back(0);
    p.sb.push_back(0);
  }
  return p;
}

}  // namespace serveml::engine
