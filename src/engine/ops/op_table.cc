#include "engine/ops/op_table.h"

#include <algorithm>
#include <array>
#include <vector>

#include "engine/ops/ops.h"

namespace serveml::engine {
namespace {

constexpr std::string_view kMl = "ai.onnx.ml";

// Sorted by domain, then op type. To add an operator: write the kernel and factory in
// ops/<family>.cc, declare the factory in ops/ops.h, add a row here and bump kOpCount.
constexpr std::array kOps = {
    OpTableEntry{"", "Abs", 6, MakeUnaryElementwise},
    OpTableEntry{"", "Add", 7, MakeBinaryElementwise},
    OpTableEntry{"", "ArgMax", 1, MakeArgMax},
    OpTableEntry{"", "Cast", 6, MakeCast},
    OpTableEntry{"", "Concat", 4, MakeConcat},
    OpTableEntry{"", "Constant", 1, MakeConstant},
    OpTableEntry{"", "Div", 7, MakeBinaryElementwise},
    OpTableEntry{"", "Exp", 6, MakeUnaryElementwise},
    OpTableEntry{"", "Flatten", 1, MakeFlatten},
    OpTableEntry{"", "Gemm", 7, MakeGemm},
    OpTableEntry{"", "Identity", 1, MakeIdentity},
    OpTableEntry{"", "Log", 6, MakeUnaryElementwise},
    OpTableEntry{"", "LogSoftmax", 1, MakeSoftmax},
    OpTableEntry{"", "MatMul", 1, MakeMatMul},
    OpTableEntry{"", "Mul", 7, MakeBinaryElementwise},
    OpTableEntry{"", "Neg", 6, MakeUnaryElementwise},
    OpTableEntry{"", "Relu", 6, MakeUnaryElementwise},
    OpTableEntry{"", "Reshape", 5, MakeReshape},
    OpTableEntry{"", "Sigmoid", 6, MakeUnaryElementwise},
    OpTableEntry{"", "Softmax", 1, MakeSoftmax},
    OpTableEntry{"", "Sqrt", 6, MakeUnaryElementwise},
    OpTableEntry{"", "Sub", 7, MakeBinaryElementwise},
    OpTableEntry{"", "Tanh", 6, MakeUnaryElementwise},
    OpTableEntry{kMl, "ArrayFeatureExtractor", 1, MakeArrayFeatureExtractor},
    OpTableEntry{kMl, "LinearClassifier", 1, MakeLinearClassifier},
    OpTableEntry{kMl, "LinearRegressor", 1, MakeLinearRegressor},
    OpTableEntry{kMl, "Normalizer", 1, MakeNormalizer},
    OpTableEntry{kMl, "ZipMap", 1, MakeZipMap},
};
constexpr size_t kOpCount = 28;
static_assert(kOps.size() == kOpCount, "update kOpCount when adding an operator");

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
