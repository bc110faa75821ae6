// Support vector machines of the ONNX-ML domain: SVMClassifier (libsvm one-vs-one voting,
// optional Platt scaling with libsvm's pairwise coupling) and SVMRegressor, following
// onnxruntime's svmclassifier.cc / svmregressor.cc, including its float arithmetic and its
// binary-classification score layout.
#include <cblas.h>

#include <algorithm>
#include <climits>
#include <cmath>

#include "engine/kernel.h"
#include "engine/ops/ml_common.h"
#include "engine/ops/ops.h"

namespace serveml::engine {
namespace {

enum class SvmKernel { kLinear, kPoly, kRbf, kSigmoid };

Result<SvmKernel> ParseSvmKernel(const std::string& s) {
  if (s == "LINEAR") return SvmKernel::kLinear;
  if (s == "POLY") return SvmKernel::kPoly;
  if (s == "RBF") return SvmKernel::kRbf;
  if (s == "SIGMOID") return SvmKernel::kSigmoid;
  return InvalidInput("unknown kernel_type '" + s + "'");
}

struct KernelFn {
  SvmKernel type = SvmKernel::kLinear;
  float gamma = 0, coef0 = 0, degree = 0;

  // out[m, n] = K(a[m, k], b[n, k]); `scalar_c` is added for the linear kernel (onnxruntime's
  // batched_kernel_dot).
  void Dot(const float* a, const float* b, int64_t m, int64_t n, int64_t k, float scalar_c,
           float* out) const {
    if (m == 0 || n == 0) return;
    if (type == SvmKernel::kRbf) {
      for (int64_t i = 0; i < m; ++i) {
        const float* x = a + i * k;
        for (int64_t j = 0; j < n; ++j) {
          const float* sv = b + j * k;
          float sum = 0.f;
          for (int64_t f = 0; f < k; ++f) {
            const float d = x[f] - sv[f];
            sum += d * d;
          }
          out[i * n + j] = std::exp(-gamma * sum);
        }
      }
      return;
    }
    float alpha = 1.f;
    float c = scalar_c;
    if (type != SvmKernel::kLinear) {
      alpha = gamma;
      c = coef0;
    }
    float beta = 0.f;
    if (c != 0.f) {
      std::fill(out, out + m * n, c);
      beta = 1.f;
    }
    if (k > 0) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(n),
                  static_cast<int>(k), alpha, a, static_cast<int>(k), b, static_cast<int>(k), beta,
                  out, static_cast<int>(n));
    } else if (c == 0.f) {
      std::fill(out, out + m * n, 0.f);
    }
    const int64_t total = m * n;
    if (type == SvmKernel::kPoly) {
      if (degree == 2) {
        for (int64_t i = 0; i < total; ++i) out[i] = out[i] * out[i];
      } else if (degree == 3) {
        for (int64_t i = 0; i < total; ++i) out[i] = out[i] * out[i] * out[i];
      } else {
        for (int64_t i = 0; i < total; ++i) out[i] = std::pow(out[i], degree);
      }
    } else if (type == SvmKernel::kSigmoid) {
      for (int64_t i = 0; i < total; ++i) out[i] = std::tanh(out[i]);
    }
  }
};

Result<KernelFn> ReadKernelFn(const NodeAttrs& attrs) {
  KernelFn k;
  ASSIGN_OR_RETURN(std::string type, attrs.String("kernel_type", "LINEAR"));
  ASSIGN_OR_RETURN(k.type, ParseSvmKernel(type));
  ASSIGN_OR_RETURN(std::vector<float> params, attrs.Floats("kernel_params"));
  if (!params.empty()) {
    if (params.size() < 3) {
      return InvalidInput("kernel_params must hold gamma, coef0 and degree, got " +
                          std::to_string(params.size()) + " values");
    }
    k.gamma = params[0];
    k.coef0 = params[1];
    k.degree = params[2];
  }
  return k;
}

// libsvm's pairwise coupling (multiclass_probability in onnxruntime's ml_common.h), in float.
void MulticlassProbability(int64_t k, const float* r, float* p) {
  const size_t kk = static_cast<size_t>(k);
  std::vector<float> q(kk * kk, 0.f), qp(kk, 0.f);
  const float eps = 0.005f / static_cast<float>(k);
  for (size_t i = 0; i < kk; ++i) {
    p[i] = 1.0f / static_cast<float>(k);
    for (size_t j = 0; j < i; ++j) {
      q[i * kk + i] += r[j * kk + i] * r[j * kk + i];
      q[i * kk + j] = q[j * kk + i];
    }
    for (size_t j = i + 1; j < kk; ++j) {
      q[i * kk + i] += r[j * kk + i] * r[j * kk + i];
      q[i * kk + j] = -r[j * kk + i] * r[i * kk + j];
    }
  }
  for (int loop = 0; loop < 100; ++loop) {
    float pqp = 0;
    for (size_t i = 0; i < kk; ++i) {
      qp[i] = 0;
      for (size_t j = 0; j < kk; ++j) qp[i] += q[i * kk + j] * p[j];
      pqp += p[i] * qp[i];
    }
    float max_error = 0;
    for (size_t i = 0; i < kk; ++i) {
      const float error = std::fabs(qp[i] - pqp);
      if (error > max_error) max_error = error;
    }
    if (max_error < eps) break;
    for (size_t i = 0; i < kk; ++i) {
      const float diff = (-qp[i] + pqp) / q[i * kk + i];
      p[i] += diff;
      pqp = (pqp + diff * (diff * q[i * kk + i] + 2 * qp[i])) / (1 + diff) / (1 + diff);
      for (size_t j = 0; j < kk; ++j) {
        qp[j] = (qp[j] + diff * q[i * kk + j]) / (1 + diff);
        p[j] /= (1 + diff);
      }
    }
  }
}

Status ReadFeatures(const Tensor& x, std::string_view op, int64_t expected, int64_t* n,
                    std::vector<float>* buf, const float** data) {
  int64_t f = 0;
  RETURN_IF_ERROR(MlRowsAndFeatures(x, op, n, &f));
  if (f != expected) {
    return InvalidInput(std::string(op) + " expects " + std::to_string(expected) +
                        " features, got " + std::to_string(f));
  }
  return InputAsFloat(x, buf, data);
}

class SvmClassifierKernel final : public Kernel {
 public:
  struct Params {
    KernelFn kernel;
    std::vector<int64_t> vectors_per_class;
    std::vector<int64_t> starting_vector;
    std::vector<float> support_vectors;
    std::vector<float> coefficients;
    std::vector<float> rho;
    std::vector<float> prob_a;
    std::vector<float> prob_b;
    std::vector<int64_t> int_labels;
    std::vector<std::string> str_labels;
    PostTransform post = PostTransform::kNone;
    int64_t class_count = 0;
    int64_t vector_count = 0;
    int64_t feature_count = 0;
    bool svc = false;  // support vectors (libsvm) vs coefficients only (liblinear)
    bool weights_all_positive = false;
  };

  explicit SvmClassifierKernel(Params p) : p_(std::move(p)) {}

  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (!x) return InvalidInput("SVMClassifier needs an input");
    int64_t n = 0;
    std::vector<float> buf;
    const float* xd = nullptr;
    RETURN_IF_ERROR(ReadFeatures(*x, "SVMClassifier", p_.feature_count, &n, &buf, &xd));

    const int64_t classes = p_.class_count;
    const int64_t classifiers = classes * (classes - 1) / 2;
    const bool proba = !p_.prob_a.empty();
    int64_t cols = classes;
    if (p_.svc && !proba) cols = classes > 2 ? classifiers : 2;
    int add_second = -1;
    int64_t scores_per_row = classes;
    if (p_.svc && !proba) {
      scores_per_row = classifiers;
      if (classes <= 2) add_second = p_.post == PostTransform::kNone ? 2 : 0;
    }

    ASSIGN_OR_RETURN(Tensor z, NewTensor(DType::kFloat32, {n, cols}));
    ASSIGN_OR_RETURN(Tensor y,
                     NewTensor(p_.str_labels.empty() ? DType::kInt64 : DType::kString, {n}));
    float* zd = z.data<float>();
    std::vector<float> kernels, pair_scores, probsp2;
    std::vector<int64_t> votes;
    if (!p_.svc) {
      p_.kernel.Dot(xd, p_.coefficients.data(), n, classes, p_.feature_count, p_.rho[0], zd);
    } else {
      kernels.resize(static_cast<size_t>(n * p_.vector_count));
      p_.kernel.Dot(xd, p_.support_vectors.data(), n, p_.vector_count, p_.feature_count, 0.f,
                    kernels.data());
      votes.assign(static_cast<size_t>(n * classes), 0);
      pair_scores.resize(static_cast<size_t>(classifiers));
      if (proba) probsp2.resize(static_cast<size_t>(classes * classes));
    }

    for (int64_t r = 0; r < n; ++r) {
      float* row = zd + r * cols;
      int64_t max_class = 0;
      float max_weight = 0;
      if (p_.svc) {
        const float* k = kernels.data() + r * p_.vector_count;
        int64_t* v = votes.data() + r * classes;
        // With probabilities the pairwise scores go to a scratch buffer, otherwise straight
        // into the output row.
        float* ps = proba ? pair_scores.data() : row;
        int64_t idx = 0;
        for (int64_t i = 0; i < classes - 1; ++i) {
          const int64_t si = p_.starting_vector[i];
          const int64_t ci = p_.vectors_per_class[i];
          for (int64_t j = i + 1; j < classes; ++j) {
            const int64_t sj = p_.starting_vector[j];
            const int64_t cj = p_.vectors_per_class[j];
            double sum = 0;
            const float* c1 = p_.coefficients.data() + p_.vector_count * (j - 1) + si;
            for (int64_t m = 0; m < ci; ++m) sum += c1[m] * k[si + m];
            const float* c2 = p_.coefficients.data() + p_.vector_count * i + sj;
            for (int64_t m = 0; m < cj; ++m) sum += c2[m] * k[sj + m];
            sum += p_.rho[idx];
            ps[idx++] = static_cast<float>(sum);
            ++v[sum > 0 ? i : j];
          }
        }
        if (proba) {
          std::fill(probsp2.begin(), probsp2.end(), 0.f);
          int64_t index = 0;
          for (int64_t i = 0; i < classes - 1; ++i) {
            int64_t p1 = i * classes + i + 1;
            int64_t p2 = (i + 1) * classes + i;
            for (int64_t j = i + 1; j < classes; ++j, ++index) {
              const float val1 = 1.f - MlLogistic(ps[index] * p_.prob_a[index] + p_.prob_b[index]);
              float val2 = std::max(val1, 1.0e-7f);
              val2 = std::min(val2, 1 - 1.0e-7f);
              probsp2[p1] = val2;
              probsp2[p2] = 1 - val2;
              ++p1;
              p2 += classes;
            }
          }
          MulticlassProbability(classes, probsp2.data(), row);
        }
        max_class = std::max_element(v, v + classes) - v;
      } else {
        const float* best = std::max_element(row, row + classes);
        max_class = best - row;
        max_weight = *best;
      }

      // Label (onnxruntime's ChooseClass).
      int64_t label = max_class;
      if (classifiers == 1 && !proba) {
        if ((p_.weights_all_positive && max_weight >= 0.5f) ||
            (max_weight > 0 && !p_.weights_all_positive)) {
          label = 1;
        }
      }
      if (p_.str_labels.empty()) {
        y.data<int64_t>()[r] = p_.int_labels[label];
      } else {
        y.strings()[r] = p_.str_labels[label];
      }

      // Scores (onnxruntime's batched_update_scores_inplace).
      if (scores_per_row > 1) {
        ApplyPostTransform(p_.post, row, 1, scores_per_row);
      } else if (scores_per_row == 1) {
        const float s = row[0];
        if (p_.post == PostTransform::kProbit) {
          row[0] = MlProbit(s);
        } else if (add_second == 0 || add_second == 1) {
          row[0] = 1.f - s;
          row[1] = s;
        } else if (add_second == 2 || add_second == 3) {
          if (p_.post == PostTransform::kLogistic) {
            row[0] = MlLogistic(-s);
            row[1] = MlLogistic(s);
          } else {
            row[0] = -s;
            row[1] = s;
          }
        }
      }
    }
    *ctx.outputs[0] = std::move(y);
    if (ctx.num_outputs() > 1) *ctx.outputs[1] = std::move(z);
    return Status::Ok();
  }

 private:
  Params p_;
};

class SvmRegressorKernel final : public Kernel {
 public:
  SvmRegressorKernel(KernelFn kernel, std::vector<float> support_vectors,
                     std::vector<float> coefficients, float rho, int64_t vector_count,
                     int64_t feature_count, bool one_class)
      : kernel_(kernel),
        support_vectors_(std::move(support_vectors)),
        coefficients_(std::move(coefficients)),
        rho_(rho),
        vector_count_(vector_count),
        feature_count_(feature_count),
        one_class_(one_class) {}

  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (!x) return InvalidInput("SVMRegressor needs an input");
    int64_t n = 0;
    std::vector<float> buf;
    const float* xd = nullptr;
    RETURN_IF_ERROR(ReadFeatures(*x, "SVMRegressor", feature_count_, &n, &buf, &xd));
    ASSIGN_OR_RETURN(Tensor y, NewTensor(DType::kFloat32, {n, 1}));
    float* out = y.data<float>();
    if (vector_count_ > 0) {
      std::vector<float> k(static_cast<size_t>(n * vector_count_));
      kernel_.Dot(xd, support_vectors_.data(), n, vector_count_, feature_count_, 0.f, k.data());
      if (n > 0) {
        std::fill(out, out + n, rho_);
        cblas_sgemv(CblasRowMajor, CblasNoTrans, static_cast<int>(n),
                    static_cast<int>(vector_count_), 1.f, k.data(), static_cast<int>(vector_count_),
                    coefficients_.data(), 1, 1.f, out, 1);
      }
    } else {
      kernel_.Dot(xd, coefficients_.data(), n, 1, feature_count_, rho_, out);
    }
    if (one_class_) {
      for (int64_t i = 0; i < n; ++i) out[i] = out[i] > 0.f ? 1.f : -1.f;
    }
    *ctx.outputs[0] = std::move(y);
    return Status::Ok();
  }

 private:
  KernelFn kernel_;
  std::vector<float> support_vectors_;
  std::vector<float> coefficients_;
  float rho_;
  int64_t vector_count_;
  int64_t feature_count_;
  bool one_class_;
};

}  // namespace

Result<KernelPtr> MakeSVMClassifier(const KernelInit& init) {
  InitBlasThreads();
  NodeAttrs attrs(init.node);
  SvmClassifierKernel::Params p;
  ASSIGN_OR_RETURN(p.kernel, ReadKernelFn(attrs));
  ASSIGN_OR_RETURN(p.vectors_per_class, attrs.Ints("vectors_per_class"));
  ASSIGN_OR_RETURN(p.support_vectors, attrs.Floats("support_vectors"));
  ASSIGN_OR_RETURN(p.coefficients, attrs.Floats("coefficients"));
  ASSIGN_OR_RETURN(p.rho, attrs.Floats("rho"));
  ASSIGN_OR_RETURN(p.prob_a, attrs.Floats("prob_a"));
  ASSIGN_OR_RETURN(p.prob_b, attrs.Floats("prob_b"));
  ASSIGN_OR_RETURN(p.int_labels, attrs.Ints("classlabels_ints"));
  ASSIGN_OR_RETURN(p.str_labels, attrs.Strings("classlabels_strings"));
  ASSIGN_OR_RETURN(std::string post, attrs.String("post_transform", "NONE"));
  ASSIGN_OR_RETURN(p.post, ParsePostTransform(post));
  if (p.prob_a.size() != p.prob_b.size()) {
    return InvalidInput("SVMClassifier prob_a and prob_b must have the same length");
  }
  if (p.coefficients.empty()) return InvalidInput("SVMClassifier needs coefficients");
  if (p.rho.empty()) return InvalidInput("SVMClassifier needs rho");
  p.class_count =
      static_cast<int64_t>(p.str_labels.empty() ? p.int_labels.size() : p.str_labels.size());
  if (p.class_count < 2) {
    return Unsupported("SVMClassifier needs at least two class labels, got " +
                       std::to_string(p.class_count));
  }
  const int64_t classes = p.class_count;
  const int64_t classifiers = classes * (classes - 1) / 2;
  for (int64_t v : p.vectors_per_class) {
    if (v < 0 || v > INT_MAX) return InvalidInput("SVMClassifier vectors_per_class is invalid");
    p.starting_vector.push_back(p.vector_count);
    p.vector_count += v;
    if (p.vector_count > INT_MAX) return InvalidInput("SVMClassifier has too many vectors");
  }
  if (p.vector_count > 0) {
    p.svc = true;
    if (static_cast<int64_t>(p.vectors_per_class.size()) < classes) {
      return InvalidInput("SVMClassifier vectors_per_class has " +
                          std::to_string(p.vectors_per_class.size()) + " entries for " +
                          std::to_string(classes) + " classes");
    }
    p.feature_count = static_cast<int64_t>(p.support_vectors.size()) / p.vector_count;
    if (p.feature_count * p.vector_count != static_cast<int64_t>(p.support_vectors.size())) {
      return InvalidInput("SVMClassifier support_vectors is not a multiple of the vector count");
    }
    if (static_cast<int64_t>(p.coefficients.size()) < (classes - 1) * p.vector_count) {
      return InvalidInput("SVMClassifier needs " + std::to_string((classes - 1) * p.vector_count) +
                          " coefficients, got " + std::to_string(p.coefficients.size()));
    }
    if (static_cast<int64_t>(p.rho.size()) < classifiers) {
      return InvalidInput("SVMClassifier needs " + std::to_string(classifiers) + " rho values");
    }
    if (!p.prob_a.empty() && static_cast<int64_t>(p.prob_a.size()) < classifiers) {
      return InvalidInput("SVMClassifier needs " + std::to_string(classifiers) +
                          " prob_a/prob_b values");
    }
  } else {
    p.kernel.type = SvmKernel::kLinear;
    p.feature_count = static_cast<int64_t>(p.coefficients.size()) / classes;
    if (p.feature_count * classes != static_cast<int64_t>(p.coefficients.size())) {
      return InvalidInput("SVMClassifier coefficients are not a multiple of the class count");
    }
    p.prob_a.clear();  // onnxruntime applies Platt scaling only with support vectors
    p.prob_b.clear();
  }
  p.weights_all_positive =
      std::all_of(p.coefficients.begin(), p.coefficients.end(), [](float v) { return v >= 0.f; });
  if (init.node.output.empty()) return InvalidInput("SVMClassifier needs outputs");
  return KernelPtr(new SvmClassifierKernel(std::move(p)));
}

Result<KernelPtr> MakeSVMRegressor(const KernelInit& init) {
  InitBlasThreads();
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(KernelFn kernel, ReadKernelFn(attrs));
  ASSIGN_OR_RETURN(int64_t n_supports, attrs.Int("n_supports", 0));
  ASSIGN_OR_RETURN(std::vector<float> sv, attrs.Floats("support_vectors"));
  ASSIGN_OR_RETURN(std::vector<float> coef, attrs.Floats("coefficients"));
  ASSIGN_OR_RETURN(std::vector<float> rho, attrs.Floats("rho"));
  ASSIGN_OR_RETURN(int64_t one_class, attrs.Int("one_class", 0));
  if (coef.empty()) return InvalidInput("SVMRegressor needs coefficients");
  if (rho.empty()) return InvalidInput("SVMRegressor needs rho");
  if (n_supports < 0 || n_supports > INT_MAX) {
    return InvalidInput("SVMRegressor n_supports is invalid");
  }
  int64_t features = 0;
  if (n_supports > 0) {
    features = static_cast<int64_t>(sv.size()) / n_supports;
    if (features * n_supports != static_cast<int64_t>(sv.size()) ||
        static_cast<int64_t>(coef.size()) < n_supports) {
      return InvalidInput("SVMRegressor support_vectors/coefficients do not match n_supports");
    }
  } else {
    kernel.type = SvmKernel::kLinear;
    features = static_cast<int64_t>(coef.size());
  }
  return KernelPtr(new SvmRegressorKernel(kernel, std::move(sv), std::move(coef), rho[0],
                                          n_supports, features, one_class != 0));
}

}  // namespace serveml::engine
