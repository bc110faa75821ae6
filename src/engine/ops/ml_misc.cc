// ONNX-ML helpers used by converted scikit-learn models: Normalizer, ZipMap (returned as
// the dense float [N, C] matrix, see TensorInfo::is_zipmap) and ArrayFeatureExtractor.
#include <algorithm>
#include <cmath>
#include <limits>

#include "engine/kernel.h"
#include "engine/ops/dispatch.h"
#include "engine/ops/ml_common.h"
#include "engine/ops/ops.h"

namespace serveml::engine {
namespace {

enum class Norm { kMax, kL1, kL2 };

class NormalizerKernel final : public Kernel {
 public:
  explicit NormalizerKernel(Norm norm) : norm_(norm) {}
  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (!x) return InvalidInput("Normalizer needs an input");
    if (x->rank() == 0 || x->rank() > 2) {
      return InvalidInput("Normalizer input must be 1-D or 2-D, got " + ShapeToString(x->shape()));
    }
    const int64_t rows = x->rank() == 1 ? 1 : x->dim(0);
    const int64_t cols = x->rank() == 1 ? x->dim(0) : x->dim(1);
    ASSIGN_OR_RETURN(Tensor y, NewTensor(DType::kFloat32, x->shape()));
    float* out = y.data<float>();
    Status st = Dispatch<float, double, int32_t, int64_t>(x->dtype(), "Normalizer", [&](auto tag) {
      using T = decltype(tag);
      const T* in = x->data<T>();
      for (int64_t r = 0; r < rows; ++r) {
        const T* xi = in + r * cols;
        float* yo = out + r * cols;
        if (norm_ == Norm::kMax) {
          float mx = std::numeric_limits<float>::lowest();
          for (int64_t i = 0; i < cols; ++i) mx = std::max(mx, static_cast<float>(xi[i]));
          for (int64_t i = 0; i < cols; ++i) {
            yo[i] = mx != 0.f ? static_cast<float>(xi[i]) / mx : static_cast<float>(xi[i]);
          }
        } else if (norm_ == Norm::kL1) {
          float sum = 0.f;
          for (int64_t i = 0; i < cols; ++i) sum += static_cast<float>(std::abs(xi[i]));
          for (int64_t i = 0; i < cols; ++i) {
            yo[i] = sum != 0.f ? static_cast<float>(xi[i]) / sum : static_cast<float>(xi[i]);
          }
        } else {
          float sum = 0.f;
          for (int64_t i = 0; i < cols; ++i) {
            const float sq = static_cast<float>(xi[i] * xi[i]);
            yo[i] = sq;
            sum += sq;
          }
          for (int64_t i = 0; i < cols; ++i) {
            if (sum != 0.f) {
              const float v = std::sqrt(yo[i] / sum);
              yo[i] = xi[i] < 0 ? -v : v;
            } else {
              yo[i] = static_cast<float>(xi[i]);
            }
          }
        }
      }
      return Status::Ok();
    });
    RETURN_IF_ERROR(st);
    *ctx.outputs[0] = std::move(y);
    return Status::Ok();
  }

 private:
  Norm norm_;
};

class ZipMapKernel final : public Kernel {
 public:
  explicit ZipMapKernel(int64_t classes) : classes_(classes) {}
  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (!x) return InvalidInput("ZipMap needs an input");
    if (x->dtype() != DType::kFloat32) return InvalidInput("ZipMap input must be float32");
    if (x->rank() == 1 && x->dim(0) == classes_) {
      *ctx.outputs[0] = x->Reshaped({1, classes_});
      return Status::Ok();
    }
    if (x->rank() != 2 || x->dim(1) != classes_) {
      return InvalidInput("ZipMap input of shape " + ShapeToString(x->shape()) + " does not have " +
                          std::to_string(classes_) + " columns (one per class label)");
    }
    *ctx.outputs[0] = *x;
    return Status::Ok();
  }

 private:
  int64_t classes_;
};

class ArrayFeatureExtractorKernel final : public Kernel {
 public:
  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    const Tensor* idx = ctx.input(1);
    if (!x || !idx) return InvalidInput("ArrayFeatureExtractor needs two inputs");
    if (idx->dtype() != DType::kInt64) {
      return InvalidInput("ArrayFeatureExtractor indices must be int64");
    }
    if (x->rank() == 0) return InvalidInput("ArrayFeatureExtractor input must not be a scalar");
    const int64_t stride = x->dim(x->rank() - 1);
    const int64_t k = idx->numel();
    if (k == 0) return InvalidInput("ArrayFeatureExtractor got no indices");
    const int64_t* ip = idx->data<int64_t>();
    for (int64_t j = 0; j < k; ++j) {
      if (ip[j] < 0 || ip[j] >= stride) {
        return InvalidInput("ArrayFeatureExtractor index " + std::to_string(ip[j]) +
                            " is out of range [0, " + std::to_string(stride) + ")");
      }
    }
    std::vector<int64_t> shape;
    if (x->rank() == 1) {
      shape = {1, k};
    } else {
      shape = x->shape();
      shape.back() = k;
    }
    const int64_t outer = stride == 0 ? 0 : x->numel() / stride;
    ASSIGN_OR_RETURN(Tensor z, NewTensor(x->dtype(), shape));
    if (x->dtype() == DType::kString) {
      for (int64_t o = 0; o < outer; ++o) {
        for (int64_t j = 0; j < k; ++j) z.strings()[o * k + j] = x->strings()[o * stride + ip[j]];
      }
    } else {
      Status st =
          Dispatch<SERVEML_NUMERIC_TYPES, bool>(x->dtype(), "ArrayFeatureExtractor", [&](auto tag) {
            using T = decltype(tag);
            const T* px = x->data<T>();
            T* pz = z.data<T>();
            for (int64_t o = 0; o < outer; ++o) {
              for (int64_t j = 0; j < k; ++j) pz[o * k + j] = px[o * stride + ip[j]];
            }
            return Status::Ok();
          });
      RETURN_IF_ERROR(st);
    }
    *ctx.outputs[0] = std::move(z);
    return Status::Ok();
  }
};

}  // namespace

Result<KernelPtr> MakeNormalizer(const KernelInit& init) {
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(std::string norm, attrs.String("norm", "MAX"));
  if (norm == "MAX") return KernelPtr(new NormalizerKernel(Norm::kMax));
  if (norm == "L1") return KernelPtr(new NormalizerKernel(Norm::kL1));
  if (norm == "L2") return KernelPtr(new NormalizerKernel(Norm::kL2));
  return InvalidInput("Normalizer norm must be MAX, L1 or L2, got '" + norm + "'");
}

Result<KernelPtr> MakeZipMap(const KernelInit& init) {
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(std::vector<int64_t> ints, attrs.Ints("classlabels_int64s"));
  ASSIGN_OR_RETURN(std::vector<std::string> strs, attrs.Strings("classlabels_strings"));
  if (ints.empty() == strs.empty()) {
    return InvalidInput("ZipMap needs exactly one of classlabels_int64s and classlabels_strings");
  }
  return KernelPtr(
      new ZipMapKernel(static_cast<int64_t>(ints.empty() ? strs.size() : ints.size())));
}

Result<KernelPtr> MakeArrayFeatureExtractor(const KernelInit& init) {
  if (init.node.input.size() != 2) {
    return InvalidInput("ArrayFeatureExtractor needs exactly two inputs");
  }
  return KernelPtr(new ArrayFeatureExtractorKernel());
}

}  // namespace serveml::engine
