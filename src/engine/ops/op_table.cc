#include "engine/ops/op_table.h"

#include <algorithm>
#include <array>
#include <vector>

#include "engine/ops/ops.h"

namespace serveml::engine {
namespace {

constexpr std::string_view kMl = "ai.onnx.ml";

// Sorted by domain, then op type (checked at compile time below). To add an operator: write
// the kernel and factory in ops/<family>.cc, declare the factory in ops/ops.h, add a row here
// in its sorted place.
constexpr std::array kOps = {
    OpTableEntry{"", "Abs", 6, MakeUnaryElementwise},
    OpTableEntry{"", "Acos", 7, MakeUnaryMath},
    OpTableEntry{"", "Acosh", 9, MakeUnaryMath},
    OpTableEntry{"", "Add", 1, MakeBinaryElementwise},
    OpTableEntry{"", "AffineGrid", 20, MakeAffineGrid},
    OpTableEntry{"", "And", 7, MakeLogical},
    OpTableEntry{"", "ArgMax", 1, MakeArgMax},
    OpTableEntry{"", "ArgMin", 1, MakeArgMax},
    OpTableEntry{"", "Asin", 7, MakeUnaryMath},
    OpTableEntry{"", "Asinh", 9, MakeUnaryMath},
    OpTableEntry{"", "Atan", 7, MakeUnaryMath},
    OpTableEntry{"", "Atanh", 9, MakeUnaryMath},
    OpTableEntry{"", "Attention", 23, MakeAttention},
    OpTableEntry{"", "AveragePool", 1, MakePool},
    OpTableEntry{"", "BatchNormalization", 6, MakeBatchNormalization},
    OpTableEntry{"", "BitShift", 11, MakeBitShift},
    OpTableEntry{"", "BitwiseAnd", 18, MakeBitwise},
    OpTableEntry{"", "BitwiseNot", 18, MakeBitwise},
    OpTableEntry{"", "BitwiseOr", 18, MakeBitwise},
    OpTableEntry{"", "BitwiseXor", 18, MakeBitwise},
    OpTableEntry{"", "Cast", 6, MakeCast},
    OpTableEntry{"", "CastLike", 15, MakeCast},
    OpTableEntry{"", "Ceil", 6, MakeUnaryMath},
    OpTableEntry{"", "Celu", 12, MakeActivation},
    OpTableEntry{"", "CenterCropPad", 18, MakeCenterCropPad},
    OpTableEntry{"", "Clip", 6, MakeClip},
    OpTableEntry{"", "Col2Im", 18, MakeCol2Im},
    OpTableEntry{"", "Compress", 9, MakeCompress},
    OpTableEntry{"", "Concat", 4, MakeConcat},
    OpTableEntry{"", "Constant", 1, MakeConstant},
    OpTableEntry{"", "ConstantOfShape", 9, MakeConstantOfShape},
    OpTableEntry{"", "Conv", 1, MakeConv},
    OpTableEntry{"", "ConvInteger", 10, MakeConvInteger},
    OpTableEntry{"", "ConvTranspose", 1, MakeConv},
    OpTableEntry{"", "Cos", 7, MakeUnaryMath},
    OpTableEntry{"", "Cosh", 9, MakeUnaryMath},
    OpTableEntry{"", "CumSum", 11, MakeCumSum},
    OpTableEntry{"", "DepthToSpace", 1, MakeDepthSpace},
    OpTableEntry{"", "DequantizeLinear", 10, MakeDequantizeLinear},
    OpTableEntry{"", "Det", 11, MakeDet},
    OpTableEntry{"", "Div", 1, MakeBinaryElementwise},
    OpTableEntry{"", "Dropout", 7, MakeDropout},
    OpTableEntry{"", "DynamicQuantizeLinear", 11, MakeDynamicQuantizeLinear},
    OpTableEntry{"", "Einsum", 12, MakeEinsum},
    OpTableEntry{"", "Elu", 6, MakeActivation},
    OpTableEntry{"", "Equal", 7, MakeCompare},
    OpTableEntry{"", "Erf", 9, MakeUnaryMath},
    OpTableEntry{"", "Exp", 6, MakeUnaryElementwise},
    OpTableEntry{"", "Expand", 8, MakeExpand},
    OpTableEntry{"", "EyeLike", 9, MakeEyeLike},
    OpTableEntry{"", "Flatten", 1, MakeFlatten},
    OpTableEntry{"", "Floor", 6, MakeUnaryMath},
    OpTableEntry{"", "GRU", 7, MakeGRU},
    OpTableEntry{"", "Gather", 1, MakeGather},
    OpTableEntry{"", "GatherElements", 11, MakeGather},
    OpTableEntry{"", "GatherND", 11, MakeGatherND},
    OpTableEntry{"", "Gelu", 20, MakeActivation},
    OpTableEntry{"", "Gemm", 1, MakeGemm},
    OpTableEntry{"", "GlobalAveragePool", 1, MakePool},
    OpTableEntry{"", "GlobalLpPool", 2, MakePool},
    OpTableEntry{"", "GlobalMaxPool", 1, MakePool},
    OpTableEntry{"", "Greater", 7, MakeCompare},
    OpTableEntry{"", "GreaterOrEqual", 12, MakeCompare},
    OpTableEntry{"", "GridSample", 16, MakeGridSample},
    OpTableEntry{"", "HardSigmoid", 6, MakeActivation},
    OpTableEntry{"", "HardSwish", 14, MakeActivation},
    OpTableEntry{"", "Hardmax", 1, MakeHardmax},
    OpTableEntry{"", "Identity", 1, MakeIdentity},
    OpTableEntry{"", "If", 1, MakeIf},
    OpTableEntry{"", "InstanceNormalization", 6, MakeInstanceNormalization},
    OpTableEntry{"", "IsInf", 10, MakeUnaryMath},
    OpTableEntry{"", "IsNaN", 9, MakeUnaryMath},
    OpTableEntry{"", "LRN", 1, MakeLRN},
    OpTableEntry{"", "LSTM", 7, MakeLSTM},
    OpTableEntry{"", "LayerNormalization", 17, MakeLayerNormalization},
    OpTableEntry{"", "LeakyRelu", 6, MakeActivation},
    OpTableEntry{"", "Less", 7, MakeCompare},
    OpTableEntry{"", "LessOrEqual", 12, MakeCompare},
    OpTableEntry{"", "Log", 6, MakeUnaryElementwise},
    OpTableEntry{"", "LogSoftmax", 1, MakeSoftmax},
    OpTableEntry{"", "Loop", 1, MakeLoop},
    OpTableEntry{"", "LpNormalization", 1, MakeLpNormalization},
    OpTableEntry{"", "LpPool", 2, MakePool},
    OpTableEntry{"", "MatMul", 1, MakeMatMul},
    OpTableEntry{"", "MatMulInteger", 10, MakeMatMulInteger},
    OpTableEntry{"", "Max", 6, MakeVariadicElementwise},
    OpTableEntry{"", "MaxPool", 1, MakePool},
    OpTableEntry{"", "MaxUnpool", 9, MakeMaxUnpool},
    OpTableEntry{"", "Mean", 6, MakeVariadicElementwise},
    OpTableEntry{"", "Min", 6, MakeVariadicElementwise},
    OpTableEntry{"", "Mish", 18, MakeActivation},
    OpTableEntry{"", "Mod", 10, MakeMod},
    OpTableEntry{"", "Mul", 1, MakeBinaryElementwise},
    OpTableEntry{"", "Neg", 6, MakeUnaryElementwise},
    OpTableEntry{"", "NegativeLogLikelihoodLoss", 12, MakeNegativeLogLikelihoodLoss},
    OpTableEntry{"", "NonMaxSuppression", 10, MakeNonMaxSuppression},
    OpTableEntry{"", "NonZero", 9, MakeNonZero},
    OpTableEntry{"", "Not", 1, MakeLogical},
    OpTableEntry{"", "OneHot", 9, MakeOneHot},
    OpTableEntry{"", "Or", 7, MakeLogical},
    OpTableEntry{"", "PRelu", 6, MakePRelu},
    OpTableEntry{"", "Pad", 2, MakePad},
    OpTableEntry{"", "Pow", 7, MakePow},
    OpTableEntry{"", "QLinearConv", 10, MakeQLinearConv},
    OpTableEntry{"", "QLinearMatMul", 10, MakeQLinearMatMul},
    OpTableEntry{"", "QuantizeLinear", 10, MakeQuantizeLinear},
    OpTableEntry{"", "RMSNormalization", 23, MakeRMSNormalization},
    OpTableEntry{"", "RNN", 7, MakeRNN},
    OpTableEntry{"", "Range", 11, MakeRange},
    OpTableEntry{"", "Reciprocal", 6, MakeUnaryMath},
    OpTableEntry{"", "ReduceL1", 1, MakeReduce},
    OpTableEntry{"", "ReduceL2", 1, MakeReduce},
    OpTableEntry{"", "ReduceLogSum", 1, MakeReduce},
    OpTableEntry{"", "ReduceLogSumExp", 1, MakeReduce},
    OpTableEntry{"", "ReduceMax", 1, MakeReduce},
    OpTableEntry{"", "ReduceMean", 1, MakeReduce},
    OpTableEntry{"", "ReduceMin", 1, MakeReduce},
    OpTableEntry{"", "ReduceProd", 1, MakeReduce},
    OpTableEntry{"", "ReduceSum", 1, MakeReduce},
    OpTableEntry{"", "ReduceSumSquare", 1, MakeReduce},
    OpTableEntry{"", "RegexFullMatch", 20, MakeRegexFullMatch},
    OpTableEntry{"", "Relu", 6, MakeUnaryElementwise},
    OpTableEntry{"", "Reshape", 5, MakeReshape},
    OpTableEntry{"", "Resize", 10, MakeResize},
    OpTableEntry{"", "ReverseSequence", 10, MakeReverseSequence},
    OpTableEntry{"", "RoiAlign", 10, MakeRoiAlign},
    OpTableEntry{"", "RotaryEmbedding", 23, MakeRotaryEmbedding},
    OpTableEntry{"", "Round", 11, MakeUnaryMath},
    OpTableEntry{"", "Scan", 8, MakeScan},
    OpTableEntry{"", "ScatterElements", 11, MakeScatter},
    OpTableEntry{"", "ScatterND", 11, MakeScatter},
    OpTableEntry{"", "Selu", 6, MakeActivation},
    OpTableEntry{"", "Shape", 1, MakeShape},
    OpTableEntry{"", "Shrink", 9, MakeActivation},
    OpTableEntry{"", "Sigmoid", 6, MakeUnaryElementwise},
    OpTableEntry{"", "Sign", 9, MakeUnaryMath},
    OpTableEntry{"", "Sin", 7, MakeUnaryMath},
    OpTableEntry{"", "Sinh", 9, MakeUnaryMath},
    OpTableEntry{"", "Size", 1, MakeSize},
    OpTableEntry{"", "Slice", 1, MakeSlice},
    OpTableEntry{"", "Softmax", 1, MakeSoftmax},
    OpTableEntry{"", "SoftmaxCrossEntropyLoss", 12, MakeSoftmaxCrossEntropyLoss},
    OpTableEntry{"", "Softplus", 1, MakeActivation},
    OpTableEntry{"", "Softsign", 1, MakeActivation},
    OpTableEntry{"", "SpaceToDepth", 1, MakeDepthSpace},
    OpTableEntry{"", "Split", 2, MakeSplit},
    OpTableEntry{"", "Sqrt", 6, MakeUnaryElementwise},
    OpTableEntry{"", "Squeeze", 1, MakeSqueeze},
    OpTableEntry{"", "StringConcat", 20, MakeStringConcat},
    OpTableEntry{"", "StringNormalizer", 10, MakeStringNormalizer},
    OpTableEntry{"", "StringSplit", 20, MakeStringSplit},
    OpTableEntry{"", "Sub", 1, MakeBinaryElementwise},
    OpTableEntry{"", "Sum", 6, MakeVariadicElementwise},
    OpTableEntry{"", "Tan", 7, MakeUnaryMath},
    OpTableEntry{"", "Tanh", 6, MakeUnaryElementwise},
    OpTableEntry{"", "TfIdfVectorizer", 9, MakeTfIdfVectorizer},
    OpTableEntry{"", "ThresholdedRelu", 10, MakeActivation},
    OpTableEntry{"", "Tile", 6, MakeTile},
    OpTableEntry{"", "TopK", 1, MakeTopK},
    OpTableEntry{"", "Transpose", 1, MakeTranspose},
    OpTableEntry{"", "Trilu", 14, MakeTrilu},
    OpTableEntry{"", "Unique", 11, MakeUnique},
    OpTableEntry{"", "Unsqueeze", 1, MakeSqueeze},
    OpTableEntry{"", "Upsample", 7, MakeResize},
    OpTableEntry{"", "Where", 9, MakeWhere},
    OpTableEntry{"", "Xor", 7, MakeLogical},
    OpTableEntry{kMl, "ArrayFeatureExtractor", 1, MakeArrayFeatureExtractor},
    OpTableEntry{kMl, "Binarizer", 1, MakeBinarizer},
    OpTableEntry{kMl, "CategoryMapper", 1, MakeCategoryMapper},
    OpTableEntry{kMl, "FeatureVectorizer", 1, MakeFeatureVectorizer},
    OpTableEntry{kMl, "Imputer", 1, MakeImputer},
    OpTableEntry{kMl, "LabelEncoder", 1, MakeLabelEncoder},
    OpTableEntry{kMl, "LinearClassifier", 1, MakeLinearClassifier},
    OpTableEntry{kMl, "LinearRegressor", 1, MakeLinearRegressor},
    OpTableEntry{kMl, "Normalizer", 1, MakeNormalizer},
    OpTableEntry{kMl, "OneHotEncoder", 1, MakeOneHotEncoder},
    OpTableEntry{kMl, "SVMClassifier", 1, MakeSVMClassifier},
    OpTableEntry{kMl, "SVMRegressor", 1, MakeSVMRegressor},
    OpTableEntry{kMl, "Scaler", 1, MakeScaler},
    OpTableEntry{kMl, "TreeEnsemble", 5, MakeTreeEnsemble},
    OpTableEntry{kMl, "TreeEnsembleClassifier", 1, MakeTreeEnsembleClassifier},
    OpTableEntry{kMl, "TreeEnsembleRegressor", 1, MakeTreeEnsembleRegressor},
    OpTableEntry{kMl, "ZipMap", 1, MakeZipMap},
};
// Rows are ordered by (domain, op type, min_opset), so every operator's versions are adjacent
// and the table reads like the operator list it is.
constexpr bool TableIsSorted() {
  for (size_t i = 1; i < kOps.size(); ++i) {
    const OpTableEntry& a = kOps[i - 1];
    const OpTableEntry& b = kOps[i];
    if (a.domain != b.domain) {
      if (a.domain > b.domain) return false;
      continue;
    }
    if (a.op_type > b.op_type) return false;
    if (a.op_type == b.op_type && a.min_opset >= b.min_opset) return false;
  }
  return true;
}
static_assert(TableIsSorted(), "keep kOps sorted by domain, op type, then min_opset");

}  // namespace

std::span<const OpTableEntry> OpTable() { return kOps; }

std::string_view NormalizeDomain(std::string_view domain) {
  return domain == "ai.onnx" ? std::string_view() : domain;
}

std::string_view DomainDisplayName(std::string_view domain) {
  return domain.empty() ? std::string_view("ai.onnx") : domain;
}

const OpTableEntry* FindOp(std::string_view domain, std::string_view op_type, int64_t opset,
                           bool* known_op) {
  domain = NormalizeDomain(domain);
  const OpTableEntry* best = nullptr;
  bool known = false;
  for (const OpTableEntry& e : kOps) {
    if (e.domain != domain || e.op_type != op_type) continue;
    known = true;
    if (e.min_opset <= opset && (!best || e.min_opset > best->min_opset)) best = &e;
  }
  if (known_op) *known_op = known;
  return best;
}

std::string SupportedOps(std::string_view domain) {
  domain = NormalizeDomain(domain);
  std::vector<std::string_view> names;
  for (const OpTableEntry& e : kOps) {
    if (e.domain == domain) names.push_back(e.op_type);
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  std::string s;
  for (auto n : names) {
    if (!s.empty()) s += ", ";
    s += n;
  }
  return s;
}

}  // namespace serveml::engine
