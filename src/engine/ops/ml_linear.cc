// ONNX-ML linear models: LinearClassifier and LinearRegressor, following onnxruntime's
// semantics (scores = X * coefficients^T + intercepts, then the post transform).
#include <climits>

#include "engine/kernel.h"
#include "engine/ops/dispatch.h"
#include "engine/ops/gemm.h"
#include "engine/ops/linear_simd.h"
#include "engine/ops/ml_common.h"
#include "engine/ops/ops.h"

namespace serveml::engine {

Result<PostTransform> ParsePostTransform(const std::string& s) {
  if (s == "NONE") return PostTransform::kNone;
  if (s == "LOGISTIC") return PostTransform::kLogistic;
  if (s == "SOFTMAX") return PostTransform::kSoftmax;
  if (s == "SOFTMAX_ZERO") return PostTransform::kSoftmaxZero;
  if (s == "PROBIT") return PostTransform::kProbit;
  return InvalidInput("unknown post_transform '" + s + "'");
}

void ApplyPostTransform(PostTransform t, float* s, int64_t rows, int64_t cols) {
  const int64_t total = rows * cols;
  if (cols == 1) {
    if (t == PostTransform::kProbit) {
      for (int64_t i = 0; i < total; ++i) s[i] = MlProbit(s[i]);
    }
    return;
  }
  switch (t) {
    case PostTransform::kNone:
      break;
    case PostTransform::kLogistic:
      LogisticInPlace(s, total);
      break;
    case PostTransform::kSoftmax:
      for (int64_t r = 0; r < rows; ++r) MlSoftmax(s + r * cols, cols);
      break;
    case PostTransform::kSoftmaxZero:
      for (int64_t r = 0; r < rows; ++r) MlSoftmaxZero(s + r * cols, cols);
      break;
    case PostTransform::kProbit:
      for (int64_t i = 0; i < total; ++i) s[i] = MlProbit(s[i]);
      break;
  }
}

Status InputAsFloat(const Tensor& x, std::vector<float>* buf, const float** data) {
  if (x.dtype() == DType::kFloat32) {
    *data = x.data<float>();
    return Status::Ok();
  }
  return Dispatch<double, int32_t, int64_t>(x.dtype(), "this operator", [&](auto tag) {
    using T = decltype(tag);
    const T* p = x.data<T>();
    buf->resize(static_cast<size_t>(x.numel()));
    for (int64_t i = 0; i < x.numel(); ++i) (*buf)[i] = static_cast<float>(p[i]);
    *data = buf->data();
    return Status::Ok();
  });
}

namespace {

// scores[N, targets] = X[N, F] * W[targets, F]^T (+ intercepts when given).
void LinearScores(const float* x, int64_t n, int64_t f, const std::vector<float>& w,
                  const std::vector<float>* intercepts, int64_t targets, float* scores) {
  LinearRowScores(x, n, f, w.data(), intercepts ? intercepts->data() : nullptr, targets, scores);
}

Status RowsAndFeatures(const Tensor& x, int64_t* n, int64_t* f) {
  if (x.rank() == 0 || x.rank() > 2) {
    return InvalidInput("input must be 1-D or 2-D, got shape " + ShapeToString(x.shape()));
  }
  *n = x.rank() == 1 ? 1 : x.dim(0);
  *f = x.rank() == 1 ? x.dim(0) : x.dim(1);
  if (*n > INT_MAX || *f > INT_MAX) return InvalidInput("input is too large");
  return Status::Ok();
}

class LinearClassifierKernel final : public Kernel {
 public:
  LinearClassifierKernel(std::vector<float> coef, std::vector<float> intercepts,
                         std::vector<int64_t> int_labels, std::vector<std::string> str_labels,
                         PostTransform post)
      : coef_(std::move(coef)),
        intercepts_(std::move(intercepts)),
        int_labels_(std::move(int_labels)),
        str_labels_(std::move(str_labels)),
        post_(post),
        using_strings_(!str_labels_.empty()),
        classes_(static_cast<int64_t>(intercepts_.size())) {
    const size_t nlabels = using_strings_ ? str_labels_.size() : int_labels_.size();
    add_second_class_ = classes_ == 1 && nlabels == 2;
  }

  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (!x) return InvalidInput("LinearClassifier needs an input");
    int64_t n = 0, f = 0;
    RETURN_IF_ERROR(RowsAndFeatures(*x, &n, &f));
    if (f * classes_ != static_cast<int64_t>(coef_.size())) {
      return InvalidInput("LinearClassifier expects " +
                          std::to_string(coef_.size() / static_cast<size_t>(classes_)) +
                          " features, got " + std::to_string(f));
    }
    std::vector<float> buf;
    const float* xd = nullptr;
    RETURN_IF_ERROR(InputAsFloat(*x, &buf, &xd));

    const int64_t out_cols = add_second_class_ ? 2 : classes_;
    ASSIGN_OR_RETURN(Tensor scores, NewTensor(DType::kFloat32, {n, out_cols}));
    float* s = scores.data<float>();
    LinearScores(xd, n, f, coef_, &intercepts_, classes_, s);

    ASSIGN_OR_RETURN(Tensor labels,
                     NewTensor(using_strings_ ? DType::kString : DType::kInt64, {n}));
    if (classes_ == 1) {
      for (int64_t i = 0; i < n; ++i) {
        const bool pos = s[i] > 0;
        if (using_strings_) {
          const bool named = str_labels_.size() == 2;
          labels.strings()[i] =
              pos ? (named ? str_labels_[1] : "1") : (named ? str_labels_[0] : "0");
        } else {
          const bool named = int_labels_.size() == 2;
          labels.data<int64_t>()[i] =
              pos ? (named ? int_labels_[1] : 1) : (named ? int_labels_[0] : 0);
        }
      }
      if (post_ == PostTransform::kProbit) {
        ApplyPostTransform(post_, s, n, 1);  // (expansion rejected at load)
      } else if (add_second_class_) {
        // Scores are packed at the front; expand each to [1 - s, s] from the back.
        for (int64_t i = n; i-- > 0;) {
          const float v = s[i];
          s[2 * i] = 1.0f - v;
          s[2 * i + 1] = v;
        }
      }
    } else {
      for (int64_t i = 0; i < n; ++i) {
        const float* row = s + i * classes_;
        int64_t best = 0;
        for (int64_t j = 1; j < classes_; ++j) {
          if (row[j] > row[best]) best = j;
        }
        if (using_strings_)
          labels.strings()[i] = str_labels_[best];
        else
          labels.data<int64_t>()[i] = int_labels_[best];
      }
      ApplyPostTransform(post_, s, n, classes_);
    }
    *ctx.outputs[0] = std::move(labels);
    if (ctx.num_outputs() > 1) *ctx.outputs[1] = std::move(scores);
    return Status::Ok();
  }

 private:
  std::vector<float> coef_;
  std::vector<float> intercepts_;
  std::vector<int64_t> int_labels_;
  std::vector<std::string> str_labels_;
  PostTransform post_;
  bool using_strings_;
  int64_t classes_;
  bool add_second_class_ = false;
};

class LinearRegressorKernel final : public Kernel {
 public:
  LinearRegressorKernel(std::vector<float> coef, std::vector<float> intercepts, int64_t targets,
                        PostTransform post)
      : coef_(std::move(coef)),
        intercepts_(std::move(intercepts)),
        targets_(targets),
        post_(post),
        use_intercepts_(static_cast<int64_t>(intercepts_.size()) == targets) {}

  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (!x) return InvalidInput("LinearRegressor needs an input");
    int64_t n = 0, f = 0;
    RETURN_IF_ERROR(RowsAndFeatures(*x, &n, &f));
    if (f * targets_ != static_cast<int64_t>(coef_.size())) {
      return InvalidInput("LinearRegressor expects " +
                          std::to_string(coef_.size() / static_cast<size_t>(targets_)) +
                          " features, got " + std::to_string(f));
    }
    std::vector<float> buf;
    const float* xd = nullptr;
    RETURN_IF_ERROR(InputAsFloat(*x, &buf, &xd));
    ASSIGN_OR_RETURN(Tensor y, NewTensor(DType::kFloat32, {n, targets_}));
    float* s = y.data<float>();
    LinearScores(xd, n, f, coef_, use_intercepts_ ? &intercepts_ : nullptr, targets_, s);
    ApplyPostTransform(post_, s, n, targets_);
    *ctx.outputs[0] = std::move(y);
    return Status::Ok();
  }

 private:
  std::vector<float> coef_;
  std::vector<float> intercepts_;
  int64_t targets_;
  PostTransform post_;
  bool use_intercepts_;
};

}  // namespace

Result<KernelPtr> MakeLinearClassifier(const KernelInit& init) {
  InitBlasThreads();
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(std::vector<float> coef, attrs.Floats("coefficients"));
  ASSIGN_OR_RETURN(std::vector<float> intercepts, attrs.Floats("intercepts"));
  ASSIGN_OR_RETURN(std::vector<int64_t> ints, attrs.Ints("classlabels_ints"));
  ASSIGN_OR_RETURN(std::vector<std::string> strs, attrs.Strings("classlabels_strings"));
  ASSIGN_OR_RETURN(std::string post_s, attrs.String("post_transform", "NONE"));
  ASSIGN_OR_RETURN(PostTransform post, ParsePostTransform(post_s));
  if (coef.empty()) return InvalidInput("LinearClassifier needs coefficients");
  const size_t classes = intercepts.size();
  if (classes == 0 || coef.size() % classes != 0) {
    return InvalidInput("LinearClassifier has " + std::to_string(coef.size()) +
                        " coefficients for " + std::to_string(classes) + " intercepts");
  }
  if (!ints.empty() && !strs.empty()) {
    return InvalidInput("LinearClassifier has both classlabels_ints and classlabels_strings");
  }
  const size_t nlabels = strs.empty() ? ints.size() : strs.size();
  if (classes > 1 && nlabels < classes) {
    return InvalidInput("LinearClassifier has " + std::to_string(classes) + " classes but " +
                        std::to_string(nlabels) + " class labels");
  }
  if (classes == 1 && nlabels == 2 && post == PostTransform::kProbit) {
    return Unsupported("LinearClassifier with one coefficient row and PROBIT is not supported");
  }
  if (init.node.output.empty()) return InvalidInput("LinearClassifier needs outputs");
  return KernelPtr(new LinearClassifierKernel(std::move(coef), std::move(intercepts),
                                              std::move(ints), std::move(strs), post));
}

Result<KernelPtr> MakeLinearRegressor(const KernelInit& init) {
  InitBlasThreads();
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(std::vector<float> coef, attrs.Floats("coefficients"));
  ASSIGN_OR_RETURN(std::vector<float> intercepts, attrs.Floats("intercepts"));
  ASSIGN_OR_RETURN(int64_t targets, attrs.Int("targets", 1));
  ASSIGN_OR_RETURN(std::string post_s, attrs.String("post_transform", "NONE"));
  ASSIGN_OR_RETURN(PostTransform post, ParsePostTransform(post_s));
  if (targets <= 0 || targets > INT_MAX || coef.empty() ||
      coef.size() % static_cast<size_t>(targets) != 0) {
    return InvalidInput("LinearRegressor has " + std::to_string(coef.size()) +
                        " coefficients for " + std::to_string(targets) + " targets");
  }
  return KernelPtr(
      new LinearRegressorKernel(std::move(coef), std::move(intercepts), targets, post));
}

}  // namespace serveml::engine
