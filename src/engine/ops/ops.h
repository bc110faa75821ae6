// Kernel factories, one per operator or family, referenced by the operator table
// (op_table.cc). A factory parses and validates the node's attributes once, at load.
#pragma once

#include "engine/kernel.h"

namespace serveml::engine {

// elementwise.cc
Result<KernelPtr> MakeBinaryElementwise(const KernelInit& init);  // Add Sub Mul Div
Result<KernelPtr> MakeUnaryElementwise(const KernelInit& init);   // Relu Sigmoid Tanh Exp ...
// tensor_ops.cc
Result<KernelPtr> MakeIdentity(const KernelInit& init);
Result<KernelPtr> MakeConstant(const KernelInit& init);
Result<KernelPtr> MakeFlatten(const KernelInit& init);
Result<KernelPtr> MakeReshape(const KernelInit& init);
Result<KernelPtr> MakeConcat(const KernelInit& init);
// cast.cc
Result<KernelPtr> MakeCast(const KernelInit& init);
// softmax.cc
Result<KernelPtr> MakeSoftmax(const KernelInit& init);  // Softmax, LogSoftmax
// matmul.cc
// Sets OpenBLAS to one thread, once per process (factories using BLAS call it).
void InitBlasThreads();
Result<KernelPtr> MakeGemm(const KernelInit& init);
Result<KernelPtr> MakeMatMul(const KernelInit& init);
// reduce.cc
Result<KernelPtr> MakeArgMax(const KernelInit& init);
// ml_linear.cc (ai.onnx.ml)
Result<KernelPtr> MakeLinearClassifier(const KernelInit& init);
Result<KernelPtr> MakeLinearRegressor(const KernelInit& init);
// ml_misc.cc (ai.onnx.ml)
Result<KernelPtr> MakeNormalizer(const KernelInit& init);
Result<KernelPtr> MakeZipMap(const KernelInit& init);
Result<KernelPtr> MakeArrayFeatureExtractor(const KernelInit& init);

}  // namespace serveml::engine
