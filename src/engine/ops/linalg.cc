// Det (opset 11; float and double): determinants of the trailing [M, M] matrices of an
// input [*, M, M], output shape [*]. LU factorisation with partial pivoting in double; an
// exactly singular matrix gives 0, an empty (0 x 0) matrix 1.
#include <cmath>
#include <utility>
#include <vector>

#include "engine/kernel.h"
#include "engine/ops/dispatch.h"
#include "engine/ops/ops.h"

namespace serveml::engine {
namespace {

// Determinant of the m x m row-major matrix in `a` (overwritten).
double LuDeterminant(double* a, int64_t m) {
  double det = 1;
  for (int64_t k = 0; k < m; ++k) {
    int64_t pivot = k;
    double best = std::fabs(a[k * m + k]);
    for (int64_t r = k + 1; r < m; ++r) {
      const double v = std::fabs(a[r * m + k]);
      if (v > best) {
        best = v;
        pivot = r;
      }
    }
    if (best == 0) return 0.0;
    if (pivot != k) {
      for (int64_t j = 0; j < m; ++j) std::swap(a[k * m + j], a[pivot * m + j]);
      det = -det;
    }
    const double p = a[k * m + k];
    det *= p;
    for (int64_t r = k + 1; r < m; ++r) {
      const double f = a[r * m + k] / p;
      if (f == 0) continue;
      for (int64_t j = k + 1; j < m; ++j) a[r * m + j] -= f * a[k * m + j];
    }
  }
  return det;
}

class DetKernel final : public Kernel {
 public:
  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (!x) return InvalidInput("Det needs an input");
    const size_t rank = x->rank();
    if (rank < 2 || x->dim(rank - 1) != x->dim(rank - 2)) {
      return InvalidInput("Det input must have shape [*, M, M], got " + ShapeToString(x->shape()));
    }
    const int64_t m = x->dim(rank - 1);
    std::vector<int64_t> shape(x->shape().begin(), x->shape().end() - 2);
    // LU elimination: about m^3 / 3 multiply-adds per matrix.
    RETURN_IF_ERROR(CheckWork("Det", Volume(shape) * static_cast<double>(m) *
                                         static_cast<double>(m) * static_cast<double>(m) / 3.0));
    return Dispatch<SERVEML_FLOAT_TYPES>(x->dtype(), "Det", [&](auto tag) -> Status {
      using T = decltype(tag);
      ASSIGN_OR_RETURN(Tensor y, NewTensor(x->dtype(), shape));
      const int64_t batch = y.numel();
      const T* px = x->data<T>();
      T* py = y.data<T>();
      std::vector<double> a(static_cast<size_t>(m * m));
      for (int64_t b = 0; b < batch; ++b) {
        for (int64_t i = 0; i < m * m; ++i) a[i] = static_cast<double>(px[b * m * m + i]);
        py[b] = static_cast<T>(LuDeterminant(a.data(), m));
      }
      *ctx.outputs[0] = std::move(y);
      return Status::Ok();
    });
  }
};

}  // namespace

Result<KernelPtr> MakeDet(const KernelInit&) { return KernelPtr(new DetKernel()); }

}  // namespace serveml::engine
