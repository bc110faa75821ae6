// The one explicit operator table: every (domain, op_type, min_opset) the engine runs and
// the factory that builds its kernel. No static-initialiser registration anywhere.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "engine/kernel.h"

namespace serveml::engine {

struct OpTableEntry {
  std::string_view domain;  // "" = ai.onnx, "ai.onnx.ml"
  std::string_view op_type;
  int64_t min_opset;  // the earliest opset whose semantics the factory implements
  KernelFactory factory;
};

std::span<const OpTableEntry> OpTable();

// "" and "ai.onnx" are the same domain; returns "" for both.
std::string_view NormalizeDomain(std::string_view domain);
// "ai.onnx" for "", else the domain itself (for messages).
std::string_view DomainDisplayName(std::string_view domain);

// The entry for op_type in domain with the largest min_opset <= opset, or nullptr.
// `*known_op` is set when the op exists in the table at some opset.
const OpTableEntry* FindOp(std::string_view domain, std::string_view op_type, int64_t opset,
                           bool* known_op = nullptr);

// "Abs, Add, ..." — the op types of one domain, sorted, for error messages.
std::string SupportedOps(std::string_view domain);

}  // namespace serveml::engine
