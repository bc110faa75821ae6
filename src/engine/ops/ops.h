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
Result<KernelPtr> MakeHardmax(const KernelInit& init);
// matmul.cc
// Sets OpenBLAS to one thread, once per process (factories using BLAS call it). Defined in
// gemm.cc (see gemm.h for the engine's GEMM entry points).
void InitBlasThreads();
Result<KernelPtr> MakeGemm(const KernelInit& init);
Result<KernelPtr> MakeMatMul(const KernelInit& init);
// quantize.cc
Result<KernelPtr> MakeQuantizeLinear(const KernelInit& init);
Result<KernelPtr> MakeDequantizeLinear(const KernelInit& init);
Result<KernelPtr> MakeDynamicQuantizeLinear(const KernelInit& init);
// qlinear.cc
Result<KernelPtr> MakeMatMulInteger(const KernelInit& init);
Result<KernelPtr> MakeConvInteger(const KernelInit& init);
Result<KernelPtr> MakeQLinearMatMul(const KernelInit& init);
Result<KernelPtr> MakeQLinearConv(const KernelInit& init);
// reduce.cc
Result<KernelPtr> MakeArgMax(const KernelInit& init);  // ArgMax, ArgMin
Result<KernelPtr> MakeReduce(const KernelInit& init);  // ReduceSum/Mean/Max/Min/Prod/L1/L2/...
// math.cc
Result<KernelPtr> MakePow(const KernelInit& init);
Result<KernelPtr> MakeMod(const KernelInit& init);
Result<KernelPtr> MakeBitShift(const KernelInit& init);
Result<KernelPtr> MakeVariadicElementwise(const KernelInit& init);  // Min Max Sum Mean
Result<KernelPtr> MakeUnaryMath(const KernelInit& init);  // Floor Ceil Round Sign Erf Sin ...
// compare.cc
Result<KernelPtr> MakeCompare(const KernelInit& init);  // Equal Less Greater (Or Equal)
Result<KernelPtr> MakeLogical(const KernelInit& init);  // And Or Xor Not
Result<KernelPtr> MakeBitwise(const KernelInit& init);  // BitwiseAnd/Or/Xor/Not
// activation.cc
Result<KernelPtr> MakeActivation(const KernelInit& init);  // LeakyRelu Elu Selu Gelu ...
Result<KernelPtr> MakeClip(const KernelInit& init);
Result<KernelPtr> MakePRelu(const KernelInit& init);
// conv.cc
Result<KernelPtr> MakeConv(const KernelInit& init);  // Conv, ConvTranspose
// pool.cc
Result<KernelPtr> MakePool(const KernelInit& init);  // Max/Average/LpPool and Global*
// sampling.cc
Result<KernelPtr> MakeGridSample(const KernelInit& init);
Result<KernelPtr> MakeAffineGrid(const KernelInit& init);
Result<KernelPtr> MakeRoiAlign(const KernelInit& init);  // opsets 10 and 16
// detection.cc
Result<KernelPtr> MakeNonMaxSuppression(const KernelInit& init);
// tensor_misc.cc
Result<KernelPtr> MakeCenterCropPad(const KernelInit& init);
Result<KernelPtr> MakeReverseSequence(const KernelInit& init);
Result<KernelPtr> MakeUnique(const KernelInit& init);
Result<KernelPtr> MakeMaxUnpool(const KernelInit& init);
Result<KernelPtr> MakeLRN(const KernelInit& init);
Result<KernelPtr> MakeCol2Im(const KernelInit& init);
// normalization.cc
Result<KernelPtr> MakeBatchNormalization(const KernelInit& init);
Result<KernelPtr> MakeLayerNormalization(const KernelInit& init);
Result<KernelPtr> MakeInstanceNormalization(const KernelInit& init);
Result<KernelPtr> MakeLpNormalization(const KernelInit& init);
Result<KernelPtr> MakeRMSNormalization(const KernelInit& init);
// shape_ops.cc
Result<KernelPtr> MakeTranspose(const KernelInit& init);
Result<KernelPtr> MakeSqueeze(const KernelInit& init);  // Squeeze, Unsqueeze
Result<KernelPtr> MakeSplit(const KernelInit& init);
Result<KernelPtr> MakeSlice(const KernelInit& init);
Result<KernelPtr> MakeGather(const KernelInit& init);  // Gather, GatherElements
Result<KernelPtr> MakeExpand(const KernelInit& init);
Result<KernelPtr> MakeTile(const KernelInit& init);
Result<KernelPtr> MakePad(const KernelInit& init);
Result<KernelPtr> MakeShape(const KernelInit& init);
Result<KernelPtr> MakeSize(const KernelInit& init);
Result<KernelPtr> MakeConstantOfShape(const KernelInit& init);
Result<KernelPtr> MakeRange(const KernelInit& init);
Result<KernelPtr> MakeWhere(const KernelInit& init);
Result<KernelPtr> MakeTrilu(const KernelInit& init);
Result<KernelPtr> MakeDropout(const KernelInit& init);
Result<KernelPtr> MakeDepthSpace(const KernelInit& init);  // DepthToSpace, SpaceToDepth
Result<KernelPtr> MakeGatherND(const KernelInit& init);
Result<KernelPtr> MakeScatter(const KernelInit& init);  // ScatterElements, ScatterND
Result<KernelPtr> MakeNonZero(const KernelInit& init);
Result<KernelPtr> MakeCompress(const KernelInit& init);
Result<KernelPtr> MakeEyeLike(const KernelInit& init);
Result<KernelPtr> MakeOneHot(const KernelInit& init);
Result<KernelPtr> MakeCumSum(const KernelInit& init);
// rnn.cc
Result<KernelPtr> MakeRNN(const KernelInit& init);
Result<KernelPtr> MakeGRU(const KernelInit& init);
Result<KernelPtr> MakeLSTM(const KernelInit& init);
// topk.cc
Result<KernelPtr> MakeTopK(const KernelInit& init);
// control_flow.cc (subgraphs: see control_flow.h)
Result<KernelPtr> MakeIf(const KernelInit& init);
Result<KernelPtr> MakeLoop(const KernelInit& init);
Result<KernelPtr> MakeScan(const KernelInit& init);  // Scan 8 and 9+
// resize.cc
Result<KernelPtr> MakeResize(const KernelInit& init);  // Resize, Upsample
// einsum.cc
Result<KernelPtr> MakeEinsum(const KernelInit& init);
// attention.cc
Result<KernelPtr> MakeAttention(const KernelInit& init);
Result<KernelPtr> MakeRotaryEmbedding(const KernelInit& init);
// text.cc
Result<KernelPtr> MakeStringNormalizer(const KernelInit& init);
Result<KernelPtr> MakeStringConcat(const KernelInit& init);
Result<KernelPtr> MakeStringSplit(const KernelInit& init);
Result<KernelPtr> MakeRegexFullMatch(const KernelInit& init);
Result<KernelPtr> MakeTfIdfVectorizer(const KernelInit& init);
// loss.cc
Result<KernelPtr> MakeNegativeLogLikelihoodLoss(const KernelInit& init);
Result<KernelPtr> MakeSoftmaxCrossEntropyLoss(const KernelInit& init);
// linalg.cc
Result<KernelPtr> MakeDet(const KernelInit& init);
// ml_linear.cc (ai.onnx.ml)
Result<KernelPtr> MakeLinearClassifier(const KernelInit& init);
Result<KernelPtr> MakeLinearRegressor(const KernelInit& init);
// ml_misc.cc (ai.onnx.ml)
Result<KernelPtr> MakeNormalizer(const KernelInit& init);
Result<KernelPtr> MakeZipMap(const KernelInit& init);
Result<KernelPtr> MakeArrayFeatureExtractor(const KernelInit& init);
// ml_tree.cc (ai.onnx.ml)
Result<KernelPtr> MakeTreeEnsembleClassifier(const KernelInit& init);
Result<KernelPtr> MakeTreeEnsembleRegressor(const KernelInit& init);
Result<KernelPtr> MakeTreeEnsemble(const KernelInit& init);  // opset 5
// ml_svm.cc (ai.onnx.ml)
Result<KernelPtr> MakeSVMClassifier(const KernelInit& init);
Result<KernelPtr> MakeSVMRegressor(const KernelInit& init);
// ml_preprocess.cc (ai.onnx.ml)
Result<KernelPtr> MakeScaler(const KernelInit& init);
Result<KernelPtr> MakeImputer(const KernelInit& init);
Result<KernelPtr> MakeBinarizer(const KernelInit& init);
Result<KernelPtr> MakeOneHotEncoder(const KernelInit& init);
Result<KernelPtr> MakeLabelEncoder(const KernelInit& init);  // opsets 1-4
Result<KernelPtr> MakeCategoryMapper(const KernelInit& init);
Result<KernelPtr> MakeFeatureVectorizer(const KernelInit& init);

}  // namespace serveml::engine
