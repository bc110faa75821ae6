// A small document tree for XGBoost model files, with two bounds-checked readers: JSON (as
// `Booster.save_model("m.json")` writes it) and UBJSON (`.ubj`). Both treat the bytes as
// hostile: nesting depth, string and container sizes are checked against the input before
// anything is allocated, and every failure is an InvalidInput naming the byte offset.
//
// Allocation budget: every value slot, number, string and member name the tree holds is
// charged (before it is allocated) to a budget of min(alloc_factor * input size +
// alloc_slack, max_alloc_bytes) from BoostingLimits (importers/limits.h). A document of
// tiny values (`[null,null,...]`, UBJSON `[ZZZ...]`, each ~1 byte of input but a whole
// Value of memory) therefore fails with "allocation budget" instead of growing ~100x its
// size. Limit messages name their limit: "nesting depth limit", "declared length" (a UBJSON
// count or length larger than the rest of the input can hold), "allocation budget".
//
// Numbers: XGBoost stores every real as float32, so a JSON number with a fraction or an
// exponent is read as the nearest float32 (exactly what XGBoost wrote) and integers exactly
// up to 2^53. Arrays whose elements are all numbers are kept compactly in `numbers`.
//
// Not thread safe to mutate; a parsed tree may be read from many threads.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"
#include "importers/limits.h"

namespace serveml::importers::xgboost {

struct JsonMember;

struct Value {
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };
  Kind kind = Kind::kNull;
  bool boolean = false;
  double number = 0;
  std::string str;
  // kArray: when every element is a number they are all in `numbers` and `items` is empty;
  // otherwise every element is in `items` and `numbers` is empty.
  std::vector<double> numbers;
  std::vector<Value> items;
  std::vector<JsonMember> members;  // kObject, in file order

  bool is_object() const { return kind == Kind::kObject; }
  bool is_array() const { return kind == Kind::kArray; }
  bool is_string() const { return kind == Kind::kString; }
  bool is_number() const { return kind == Kind::kNumber; }
  // Element count of an array (numbers or items), 0 otherwise.
  size_t size() const { return numbers.empty() ? items.size() : numbers.size(); }
  // First member named `key` of an object, or nullptr (also for non-objects).
  const Value* Find(std::string_view key) const;
};

// One member of a JSON object (a named struct rather than std::pair: the standard library
// only allows incomplete element types for std::vector itself).
struct JsonMember {
  JsonMember(std::string k, Value v) : key(std::move(k)), value(std::move(v)) {}
  std::string key;
  Value value;
};

// Maximum nesting of arrays/objects accepted by both readers.
inline constexpr int kMaxJsonDepth = 64;

// Parses a JSON text (RFC 8259, plus the NaN/Infinity/-Infinity tokens XGBoost may write).
// Errors: InvalidInput naming the offset, or the limit hit.
Result<Value> ParseJson(std::string_view text, const BoostingLimits& limits = {});

// Parses a UBJSON document (draft 12 as XGBoost writes it: typed and counted containers,
// big-endian numbers; the 'H' high-precision type is read as a decimal number).
// Errors: InvalidInput naming the offset (truncation, unknown markers, declared sizes larger
// than the remaining input, nesting deeper than kMaxJsonDepth, the allocation budget).
Result<Value> ParseUbjson(std::string_view bytes, const BoostingLimits& limits = {});

}  // namespace serveml::importers::xgboost
