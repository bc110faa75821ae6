// Data-movement operators: Identity, Constant, Flatten, Reshape, Concat. Identity, Flatten
// and Reshape alias their input's buffer (tensors are immutable once produced).
#include <cstring>

#include "engine/kernel.h"
#include "engine/onnx/tensor_proto.h"
#include "engine/ops/ops.h"

namespace serveml::engine {
namespace {

class IdentityKernel final : public Kernel {
 public:
  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (!x) return InvalidInput("Identity needs an input");
    *ctx.outputs[0] = *x;
    return Status::Ok();
  }
};

class ConstantKernel final : public Kernel {
 public:
  explicit ConstantKernel(Tensor value) : value_(std::move(value)) {}
  Status Run(KernelContext& ctx) const override {
    *ctx.outputs[0] = value_;  // shares the immutable buffer
    return Status::Ok();
  }

 private:
  Tensor value_;
};

class FlattenKernel final : public Kernel {
 public:
  explicit FlattenKernel(int64_t axis) : axis_(axis) {}
  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (!x) return InvalidInput("Flatten needs an input");
    const int64_t rank = static_cast<int64_t>(x->rank());
    ASSIGN_OR_RETURN(int64_t axis, NormalizeAxis(axis_, rank, /*allow_end=*/true));
    int64_t outer = 1, inner = 1;
    for (int64_t i = 0; i < rank; ++i) (i < axis ? outer : inner) *= x->dim(i);
    *ctx.outputs[0] = x->Reshaped({outer, inner});
    return Status::Ok();
  }

 private:
  int64_t axis_;
};

class ReshapeKernel final : public Kernel {
 public:
  explicit ReshapeKernel(bool allowzero) : allowzero_(allowzero) {}
  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    const Tensor* s = ctx.input(1);
    if (!x || !s) return InvalidInput("Reshape needs data and shape inputs");
    if (s->dtype() != DType::kInt64 || s->rank() != 1) {
      return InvalidInput("Reshape shape must be a 1-D int64 tensor");
    }
    const int64_t* req = s->data<int64_t>();
    const int64_t n = s->numel();
    std::vector<int64_t> shape(static_cast<size_t>(n));
    int64_t infer = -1;
    bool has_zero = false;
    int64_t known = 1;
    for (int64_t i = 0; i < n; ++i) {
      int64_t d = req[i];
      if (d == -1) {
        if (infer >= 0) return InvalidInput("Reshape shape has more than one -1");
        infer = i;
        continue;
      }
      if (d == 0) {
        has_zero = true;
        if (!allowzero_) {
          if (i >= static_cast<int64_t>(x->rank())) {
            return InvalidInput("Reshape shape has 0 at index " + std::to_string(i) +
                                " beyond the input rank");
          }
          d = x->dim(static_cast<size_t>(i));
        }
      } else if (d < -1) {
        return InvalidInput("Reshape shape has invalid dimension " + std::to_string(d));
      }
      shape[static_cast<size_t>(i)] = d;
      if (d != 0 && known > onnx::kMaxTensorElements / d) {
        return InvalidInput("Reshape shape is too large");
      }
      known *= d;
    }
    if (infer >= 0) {
      if (allowzero_ && has_zero) {
        return InvalidInput("Reshape with allowzero=1 cannot combine 0 and -1");
      }
      if (known == 0 || x->numel() % known != 0) {
        return InvalidInput("Reshape cannot infer -1: input " + ShapeToString(x->shape()) + " to " +
                            ShapeToString({req, req + n}));
      }
      shape[static_cast<size_t>(infer)] = x->numel() / known;
    } else if (known != x->numel()) {
      return InvalidInput("Reshape from " + ShapeToString(x->shape()) + " to " +
                          ShapeToString(shape) + " changes the element count");
    }
    *ctx.outputs[0] = x->Reshaped(std::move(shape));
    return Status::Ok();
  }

 private:
  bool allowzero_;
};

class ConcatKernel final : public Kernel {
 public:
  explicit ConcatKernel(int64_t axis) : axis_(axis) {}
  Status Run(KernelContext& ctx) const override {
    if (ctx.num_inputs() == 0 || !ctx.input(0)) return InvalidInput("Concat needs inputs");
    const Tensor& first = *ctx.input(0);
    const int64_t rank = static_cast<int64_t>(first.rank());
    if (rank == 0) return InvalidInput("Concat inputs must have rank >= 1");
    ASSIGN_OR_RETURN(int64_t axis, NormalizeAxis(axis_, rank));
    std::vector<int64_t> shape = first.shape();
    shape[axis] = 0;
    for (size_t k = 0; k < ctx.num_inputs(); ++k) {
      const Tensor* t = ctx.input(k);
      if (!t) return InvalidInput("Concat input is missing");
      if (t->dtype() != first.dtype() || static_cast<int64_t>(t->rank()) != rank) {
        return InvalidInput("Concat inputs must share element type and rank");
      }
      for (int64_t d = 0; d < rank; ++d) {
        if (d != axis && t->dim(d) != first.dim(d)) {
          return InvalidInput("Concat input shapes " + ShapeToString(first.shape()) + " and " +
                              ShapeToString(t->shape()) + " differ off the axis");
        }
      }
      shape[axis] += t->dim(axis);
    }
    int64_t outer = 1;
    for (int64_t d = 0; d < axis; ++d) outer *= shape[d];
    int64_t inner = 1;
    for (int64_t d = axis + 1; d < rank; ++d) inner *= shape[d];
    ASSIGN_OR_RETURN(Tensor out, NewTensor(first.dtype(), shape));
    if (first.dtype() == DType::kString) {
      auto& dst = out.strings();
      size_t pos = 0;
      for (int64_t o = 0; o < outer; ++o) {
        for (size_t k = 0; k < ctx.num_inputs(); ++k) {
          const Tensor& t = *ctx.input(k);
          const int64_t chunk = t.dim(axis) * inner;
          for (int64_t i = 0; i < chunk; ++i) dst[pos++] = t.strings()[o * chunk + i];
        }
      }
    } else {
      const size_t es = DTypeSize(first.dtype());
      char* dst = static_cast<char*>(out.raw());
      for (int64_t o = 0; o < outer; ++o) {
        for (size_t k = 0; k < ctx.num_inputs(); ++k) {
          const Tensor& t = *ctx.input(k);
          const size_t chunk = static_cast<size_t>(t.dim(axis) * inner) * es;
          if (chunk) {
            std::memcpy(dst, static_cast<const char*>(t.raw()) + o * chunk, chunk);
          }
          dst += chunk;
        }
      }
    }
    *ctx.outputs[0] = std::move(out);
    return Status::Ok();
  }

 private:
  int64_t axis_;
};

}  // namespace

Result<KernelPtr> MakeIdentity(const KernelInit& init) {
  if (init.node.input.size() != 1) return InvalidInput("Identity needs exactly one input");
  return KernelPtr(new IdentityKernel());
}

Result<KernelPtr> MakeConstant(const KernelInit& init) {
  const auto& attrs = init.node.attribute;
  if (attrs.size() != 1) {
    return InvalidInput("Constant needs exactly one value attribute, got " +
                        std::to_string(attrs.size()));
  }
  const onnx::AttributeProto& a = attrs[0];
  using A = onnx::AttributeProto;
  auto want = [&](int32_t type) -> Status {
    if (a.type != type) {
      return InvalidInput("Constant attribute '" + a.name + "' must be " +
                          std::string(onnx::AttributeTypeName(type)));
    }
    return Status::Ok();
  };
  Tensor value;
  if (a.name == "value") {
    RETURN_IF_ERROR(want(A::kTensor));
    if (!a.t) return InvalidInput("Constant 'value' has no tensor");
    ASSIGN_OR_RETURN(value, onnx::TensorFromProto(*a.t));
  } else if (a.name == "value_float") {
    RETURN_IF_ERROR(want(A::kFloat));
    value = Tensor::From<float>({}, {a.f});
  } else if (a.name == "value_floats") {
    RETURN_IF_ERROR(want(A::kFloats));
    value = Tensor::From<float>({static_cast<int64_t>(a.floats.size())}, a.floats);
  } else if (a.name == "value_int") {
    RETURN_IF_ERROR(want(A::kInt));
    value = Tensor::From<int64_t>({}, {a.i});
  } else if (a.name == "value_ints") {
    RETURN_IF_ERROR(want(A::kInts));
    value = Tensor::From<int64_t>({static_cast<int64_t>(a.ints.size())}, a.ints);
  } else if (a.name == "value_string") {
    RETURN_IF_ERROR(want(A::kString));
    value = Tensor::FromStrings({}, {a.s});
  } else if (a.name == "value_strings") {
    RETURN_IF_ERROR(want(A::kStrings));
    value = Tensor::FromStrings({static_cast<int64_t>(a.strings.size())}, a.strings);
  } else if (a.name == "sparse_value") {
    return Unsupported("Constant with a sparse_value is not supported");
  } else {
    return InvalidInput("Constant has unknown attribute '" + a.name + "'");
  }
  return KernelPtr(new ConstantKernel(std::move(value)));
}

Result<KernelPtr> MakeFlatten(const KernelInit& init) {
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(int64_t axis, attrs.Int("axis", 1));
  return KernelPtr(new FlattenKernel(axis));
}

Result<KernelPtr> MakeReshape(const KernelInit& init) {
  if (init.node.input.size() != 2) return InvalidInput("Reshape needs data and shape inputs");
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(int64_t allowzero, attrs.Int("allowzero", 0));
  return KernelPtr(new ReshapeKernel(allowzero != 0));
}

Result<KernelPtr> MakeConcat(const KernelInit& init) {
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(int64_t axis, attrs.RequiredInt("axis"));
  if (init.node.input.empty()) return InvalidInput("Concat needs at least one input");
  return KernelPtr(new ConcatKernel(axis));
}

}  // namespace serveml::engine
