// Einsum (opset 12). The equation is parsed once at load; ellipsis dims are resolved per run
// from the input ranks (aligned right and broadcast as numpy does). Each operand is first
// viewed through strides (a repeated index becomes a diagonal, a size-1 ellipsis dim a
// broadcast) and indices no other operand or the output uses are summed out. Operands are
// then contracted left to right, two at a time, as a batched GEMM: indices shared and still
// needed are batch dims, indices shared and not needed are the reduction (K), the rest are M
// (left) and N (right). An operand already laid out as [batch, M, K] / [batch, K, M] (right:
// [batch, K, N] / [batch, N, K]) is used in place, otherwise copied into that layout. A last
// strided pass sums any remaining index and orders the result as the output asks.
// float/double go through gemm.h; integer types use a plain loop.
#include <algorithm>
#include <array>
#include <climits>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "engine/kernel.h"
#include "engine/ops/dispatch.h"
#include "engine/ops/gemm.h"
#include "engine/ops/ops.h"

namespace serveml::engine {
namespace {

// Letters map to ids in ASCII order ('A'-'Z' then 'a'-'z'), so sorting ids sorts letters as
// numpy does for the implicit output. Ellipsis dims get ids kNumLetters + j.
constexpr int kNumLetters = 52;
constexpr int kEllipsis = -1;

int LetterId(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return 26 + (c - 'a');
  return -2;
}

struct EinsumSpec {
  std::vector<std::vector<int>> inputs;  // letter ids, kEllipsis for "..."
  std::vector<int> output;               // letter ids, kEllipsis for "..."
};

Result<std::vector<int>> ParseTerm(std::string_view term, std::string_view eq) {
  std::vector<int> ids;
  bool ellipsis = false;
  for (size_t i = 0; i < term.size(); ++i) {
    const char c = term[i];
    if (c == '.') {
      if (term.substr(i, 3) != "..." || ellipsis) {
        return InvalidInput("Einsum equation '" + std::string(eq) +
                            "' has a malformed or repeated ellipsis in term '" + std::string(term) +
                            "'");
      }
      ellipsis = true;
      ids.push_back(kEllipsis);
      i += 2;
      continue;
    }
    const int id = LetterId(c);
    if (id < 0) {
      return InvalidInput("Einsum equation '" + std::string(eq) + "' has invalid character '" +
                          std::string(1, c) + "'");
    }
    ids.push_back(id);
  }
  return ids;
}

Result<EinsumSpec> ParseEquation(std::string_view raw) {
  std::string eq;
  for (char c : raw) {
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') eq.push_back(c);
  }
  EinsumSpec spec;
  const size_t arrow = eq.find("->");
  const std::string lhs = eq.substr(0, arrow);
  size_t start = 0;
  while (true) {
    const size_t comma = lhs.find(',', start);
    const std::string_view term =
        std::string_view(lhs).substr(start, comma == std::string::npos ? comma : comma - start);
    ASSIGN_OR_RETURN(std::vector<int> ids, ParseTerm(term, raw));
    spec.inputs.push_back(std::move(ids));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  std::array<int, kNumLetters> count{};
  bool any_ellipsis = false;
  for (const auto& term : spec.inputs) {
    for (int id : term) {
      if (id == kEllipsis) {
        any_ellipsis = true;
      } else {
        ++count[id];
      }
    }
  }
  if (arrow != std::string::npos) {
    const std::string_view rhs = std::string_view(eq).substr(arrow + 2);
    if (rhs.find("->") != std::string_view::npos) {
      return InvalidInput("Einsum equation '" + std::string(raw) + "' has more than one '->'");
    }
    ASSIGN_OR_RETURN(spec.output, ParseTerm(rhs, raw));
    std::array<bool, kNumLetters> seen{};
    for (int id : spec.output) {
      if (id == kEllipsis) continue;
      if (seen[id]) {
        return InvalidInput("Einsum equation '" + std::string(raw) +
                            "' repeats an index in its output");
      }
      seen[id] = true;
      if (count[id] == 0) {
        return InvalidInput("Einsum equation '" + std::string(raw) +
                            "' has an output index that no input uses");
      }
    }
  } else {
    // Implicit output: the broadcast ellipsis dims, then the indices used exactly once, in
    // alphabetical order.
    if (any_ellipsis) spec.output.push_back(kEllipsis);
    for (int id = 0; id < kNumLetters; ++id) {
      if (count[id] == 1) spec.output.push_back(id);
    }
  }
  return spec;
}

// A strided view of an operand over unique index ids.
template <typename T>
struct Operand {
  Tensor hold;  // keeps `data` alive
  const T* data = nullptr;
  std::vector<int> ids;
  std::vector<int64_t> dims;     // may be 1 where the index's size is larger (broadcast)
  std::vector<int64_t> strides;  // in elements
};

// dst (row-major over odims) = sum over the rdims positions of src at the given strides.
template <typename T>
void StridedSum(const T* src, const std::vector<int64_t>& odims, const std::vector<int64_t>& ostr,
                const std::vector<int64_t>& rdims, const std::vector<int64_t>& rstr, T* dst) {
  int64_t on = 1, rn = 1;
  for (int64_t d : odims) on *= d;
  for (int64_t d : rdims) rn *= d;
  if (on == 0) return;
  const size_t ok = odims.size(), rk = rdims.size();
  std::vector<int64_t> oidx(ok, 0), ridx(rk, 0);
  int64_t off = 0;
  for (int64_t o = 0; o < on; ++o) {
    T acc = T(0);
    if (rk == 0) {
      acc = src[off];
    } else if (rn > 0) {
      // Innermost reduced dim as a plain loop, the others by odometer.
      const int64_t len = rdims[rk - 1], st = rstr[rk - 1];
      int64_t roff = off;
      for (int64_t r = 0; r < rn; r += len) {
        for (int64_t j = 0; j < len; ++j) acc = static_cast<T>(acc + src[roff + j * st]);
        for (size_t d = rk - 1; d-- > 0;) {
          ++ridx[d];
          roff += rstr[d];
          if (ridx[d] < rdims[d]) break;
          roff -= rstr[d] * rdims[d];
          ridx[d] = 0;
        }
      }
    }
    dst[o] = acc;
    for (size_t d = ok; d-- > 0;) {
      ++oidx[d];
      off += ostr[d];
      if (oidx[d] < odims[d]) break;
      off -= ostr[d] * odims[d];
      oidx[d] = 0;
    }
  }
}

int Find(const std::vector<int>& v, int id) {
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] == id) return static_cast<int>(i);
  }
  return -1;
}

bool Contains(const std::vector<int>& v, int id) { return Find(v, id) >= 0; }

// True if `op` is stored densely, row-major, in exactly the order `ids` at full sizes.
template <typename T>
bool DenseIn(const Operand<T>& op, const std::vector<int>& ids, const std::vector<int64_t>& size) {
  if (op.ids != ids) return false;
  int64_t stride = 1;
  for (size_t i = ids.size(); i-- > 0;) {
    if (op.dims[i] != size[ids[i]]) return false;
    if (op.dims[i] != 1 && op.strides[i] != stride) return false;
    stride *= op.dims[i];
  }
  return true;
}

// A dense copy of `op` ordered as `ids` (full sizes, broadcasting size-1 dims), summing
// every index of `op` that `ids` does not list.
template <typename T>
Result<Operand<T>> Materialize(const Operand<T>& op, const std::vector<int>& ids,
                               const std::vector<int64_t>& size) {
  std::vector<int64_t> odims, ostr, rdims, rstr;
  for (int id : ids) {
    odims.push_back(size[id]);
    const int at = Find(op.ids, id);
    ostr.push_back(at < 0 || op.dims[at] == 1 ? 0 : op.strides[at]);
  }
  for (size_t i = 0; i < op.ids.size(); ++i) {
    if (!Contains(ids, op.ids[i])) {
      rdims.push_back(op.dims[i]);
      rstr.push_back(op.strides[i]);
    }
  }
  ASSIGN_OR_RETURN(Tensor t, NewTensor(EngineDType<T>::value, odims));
  StridedSum(op.data, odims, ostr, rdims, rstr, t.data<T>());
  Operand<T> out;
  out.data = t.data<T>();
  out.hold = std::move(t);
  out.ids = ids;
  out.dims = odims;
  out.strides.assign(ids.size(), 0);
  int64_t stride = 1;
  for (size_t i = ids.size(); i-- > 0;) {
    out.strides[i] = stride;
    stride *= odims[i];
  }
  return out;
}

// C[M,N] = op(A) * op(B), row-major, for one batch entry.
template <typename T>
void MatProduct(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda,
                const T* b, int64_t ldb, T* c, int64_t ldc) {
  GemmAny<T>(ta, tb, m, n, k, T(1), a, lda, b, ldb, T(0), c, ldc);
}

std::vector<int> JoinIds(std::initializer_list<const std::vector<int>*> parts) {
  std::vector<int> out;
  for (const auto* p : parts) out.insert(out.end(), p->begin(), p->end());
  return out;
}

// Contracts a and b over their shared indices that `needed` does not list.
template <typename T>
Result<Operand<T>> Contract(const Operand<T>& a_in, const Operand<T>& b_in,
                            const std::vector<int>& needed, const std::vector<int64_t>& size) {
  // Indices only one side has and nobody needs are summed out first.
  auto sum_private = [&](const Operand<T>& x, const Operand<T>& other) -> Result<Operand<T>> {
    std::vector<int> keep;
    for (int id : x.ids) {
      if (Contains(other.ids, id) || Contains(needed, id)) keep.push_back(id);
    }
    if (keep.size() == x.ids.size()) return x;
    return Materialize(x, keep, size);
  };
  ASSIGN_OR_RETURN(Operand<T> a, sum_private(a_in, b_in));
  ASSIGN_OR_RETURN(Operand<T> b, sum_private(b_in, a));

  std::vector<int> batch, a_free, b_free, red;
  for (int id : a.ids) {
    if (Contains(b.ids, id)) {
      (Contains(needed, id) ? batch : red).push_back(id);
    } else {
      a_free.push_back(id);
    }
  }
  for (int id : b.ids) {
    if (!Contains(a.ids, id)) b_free.push_back(id);
  }
  auto prod = [&](const std::vector<int>& ids) {
    int64_t p = 1;
    for (int id : ids) p *= size[id];
    return p;
  };
  const int64_t nb = prod(batch), m = prod(a_free), n = prod(b_free), k = prod(red);
  if (m > INT_MAX || n > INT_MAX || k > INT_MAX) {
    return InvalidInput("Einsum contraction dimensions exceed the supported size");
  }
  RETURN_IF_ERROR(CheckWork("Einsum", static_cast<double>(nb) * static_cast<double>(m) *
                                          static_cast<double>(n) * static_cast<double>(k)));

  bool ta = false, tb = false;
  const std::vector<int> a_mk = JoinIds({&batch, &a_free, &red});
  const std::vector<int> a_km = JoinIds({&batch, &red, &a_free});
  if (!DenseIn(a, a_mk, size)) {
    if (DenseIn(a, a_km, size)) {
      ta = true;
    } else {
      ASSIGN_OR_RETURN(a, Materialize(a, a_mk, size));
    }
  }
  const std::vector<int> b_kn = JoinIds({&batch, &red, &b_free});
  const std::vector<int> b_nk = JoinIds({&batch, &b_free, &red});
  if (!DenseIn(b, b_kn, size)) {
    if (DenseIn(b, b_nk, size)) {
      tb = true;
    } else {
      ASSIGN_OR_RETURN(b, Materialize(b, b_kn, size));
    }
  }

  Operand<T> out;
  out.ids = JoinIds({&batch, &a_free, &b_free});
  for (int id : out.ids) out.dims.push_back(size[id]);
  ASSIGN_OR_RETURN(Tensor t, NewTensor(EngineDType<T>::value, out.dims));
  T* pc = t.data<T>();
  if (m > 0 && n > 0 && k > 0) {
    const int64_t lda = ta ? m : k, ldb = tb ? k : n;
    for (int64_t i = 0; i < nb; ++i) {
      MatProduct<T>(ta, tb, m, n, k, a.data + i * m * k, lda, b.data + i * k * n, ldb,
                    pc + i * m * n, n);
    }
  }  // k == 0: the sums are empty and the zero-filled buffer is the answer
  out.data = pc;
  out.hold = std::move(t);
  out.strides.assign(out.ids.size(), 0);
  int64_t stride = 1;
  for (size_t i = out.ids.size(); i-- > 0;) {
    out.strides[i] = stride;
    stride *= out.dims[i];
  }
  return out;
}

class EinsumKernel final : public Kernel {
 public:
  EinsumKernel(std::string equation, EinsumSpec spec)
      : equation_(std::move(equation)), spec_(std::move(spec)) {}

  Status Run(KernelContext& ctx) const override {
    const size_t n_in = spec_.inputs.size();
    if (ctx.num_inputs() != n_in) {
      return InvalidInput("Einsum equation '" + equation_ + "' has " + std::to_string(n_in) +
                          " input terms but the node has " + std::to_string(ctx.num_inputs()) +
                          " inputs");
    }
    for (size_t i = 0; i < n_in; ++i) {
      if (!ctx.input(i)) return InvalidInput("Einsum input " + std::to_string(i) + " is missing");
      if (ctx.input(i)->dtype() != ctx.input(0)->dtype()) {
        return InvalidInput("Einsum inputs have different element types");
      }
    }
    // Resolve the ellipsis: its dims are right-aligned across the inputs.
    int64_t n_ell = 0;
    std::vector<int64_t> ell_count(n_in, 0);
    for (size_t i = 0; i < n_in; ++i) {
      const auto& term = spec_.inputs[i];
      const int64_t letters =
          static_cast<int64_t>(term.size()) - (Contains(term, kEllipsis) ? 1 : 0);
      const int64_t rank = static_cast<int64_t>(ctx.input(i)->rank());
      if (Contains(term, kEllipsis) ? rank < letters : rank != letters) {
        return InvalidInput("Einsum input " + std::to_string(i) + " has rank " +
                            std::to_string(rank) + " but its term in '" + equation_ + "' has " +
                            std::to_string(letters) + " indices");
      }
      ell_count[i] = rank - letters;
      n_ell = std::max(n_ell, ell_count[i]);
    }
    std::vector<int64_t> size(kNumLetters + n_ell, -1);
    std::vector<std::vector<int>> in_ids(n_in);
    for (size_t i = 0; i < n_in; ++i) {
      const Tensor& x = *ctx.input(i);
      for (int id : spec_.inputs[i]) {
        if (id == kEllipsis) {
          for (int64_t j = 0; j < ell_count[i]; ++j) {
            in_ids[i].push_back(static_cast<int>(kNumLetters + n_ell - ell_count[i] + j));
          }
        } else {
          in_ids[i].push_back(id);
        }
      }
      for (size_t ax = 0; ax < in_ids[i].size(); ++ax) {
        const int id = in_ids[i][ax];
        const int64_t d = x.dim(ax);
        int64_t& s = size[id];
        if (s < 0 || s == d) {
          s = d;
        } else if (id >= kNumLetters && (s == 1 || d == 1)) {
          s = std::max(s, d);  // ellipsis dims broadcast
        } else {
          return InvalidInput("Einsum equation '" + equation_ + "': input " + std::to_string(i) +
                              " axis " + std::to_string(ax) + " has size " + std::to_string(d) +
                              " but the same index has size " + std::to_string(s) + " elsewhere");
        }
      }
    }
    std::vector<int> out_ids;
    for (int id : spec_.output) {
      if (id == kEllipsis) {
        for (int64_t j = 0; j < n_ell; ++j) out_ids.push_back(static_cast<int>(kNumLetters + j));
      } else {
        out_ids.push_back(id);
      }
    }
    Shape out_shape;
    for (int id : out_ids) out_shape.push_back(size[id]);

    return Dispatch<SERVEML_NUMERIC_TYPES>(
        ctx.input(0)->dtype(), "Einsum", [&](auto tag) -> Status {
          using T = decltype(tag);
          std::vector<Operand<T>> ops(n_in);
          for (size_t i = 0; i < n_in; ++i) {
            const Tensor& x = *ctx.input(i);
            Operand<T>& op = ops[i];
            op.hold = x;
            op.data = x.data<T>();
            int64_t stride = 1;
            std::vector<int64_t> strides(x.rank());
            for (size_t ax = x.rank(); ax-- > 0;) {
              strides[ax] = stride;
              stride *= x.dim(ax);
            }
            // A repeated index walks the diagonal: its strides add up.
            for (size_t ax = 0; ax < x.rank(); ++ax) {
              const int at = Find(op.ids, in_ids[i][ax]);
              if (at >= 0) {
                op.strides[at] += strides[ax];
              } else {
                op.ids.push_back(in_ids[i][ax]);
                op.dims.push_back(x.dim(ax));
                op.strides.push_back(strides[ax]);
              }
            }
          }
          // Left to right pairwise contraction; `needed` = output plus later operands.
          Operand<T> acc = std::move(ops[0]);
          for (size_t i = 1; i < n_in; ++i) {
            std::vector<int> needed = out_ids;
            for (size_t j = i + 1; j < n_in; ++j) {
              needed.insert(needed.end(), ops[j].ids.begin(), ops[j].ids.end());
            }
            ASSIGN_OR_RETURN(acc, Contract(acc, ops[i], needed, size));
          }
          if (DenseIn(acc, out_ids, size)) {
            *ctx.outputs[0] = acc.hold.Reshaped(out_shape);
            return Status::Ok();
          }
          ASSIGN_OR_RETURN(Operand<T> y, Materialize(acc, out_ids, size));
          *ctx.outputs[0] = y.hold.Reshaped(out_shape);
          return Status::Ok();
        });
  }

 private:
  std::string equation_;
  EinsumSpec spec_;
};

}  // namespace

Result<KernelPtr> MakeEinsum(const KernelInit& init) {
  NodeAttrs attrs(init.node);
  if (!attrs.Has("equation")) return InvalidInput("Einsum needs the 'equation' attribute");
  ASSIGN_OR_RETURN(std::string equation, attrs.String("equation", ""));
  ASSIGN_OR_RETURN(EinsumSpec spec, ParseEquation(equation));
  if (init.node.input.size() != spec.inputs.size()) {
    return InvalidInput("Einsum equation '" + equation + "' has " +
                        std::to_string(spec.inputs.size()) + " input terms but the node has " +
                        std::to_string(init.node.input.size()) + " inputs");
  }
  return KernelPtr(new EinsumKernel(std::move(equation), std::move(spec)));
}

}  // namespace serveml::engine
