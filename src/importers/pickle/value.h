// The inert object tree a restricted pickle read produces. Nothing here refers to Python:
// every value is plain data; allow-listed classes become Object{class path, args, state},
// numpy arrays become NdArray with their dtype, shape and bytes.
//
// Ownership: all values of one read live in one PickleTree arena and are referenced by raw
// `const Value*` that stay valid as long as the tree. Cycles (a list containing itself) are
// possible and harmless: nothing walks the tree recursively without a depth bound.
// Thread safety: a finished tree is immutable and may be read from many threads.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

namespace serveml::importers::pickle {

struct Value;

// A numpy dtype as far as the reader needs it.
struct DTypeDesc {
  char kind = 'V';       // numpy kind: 'f' float, 'i' int, 'u' uint, 'b' bool, 'O' object,
                         // 'U' unicode (UCS-4), 'S' bytes, 'V' void/structured, 'c' complex
  int64_t itemsize = 0;  // bytes per element
  bool big_endian = false;
  struct Field {
    std::string name;
    std::shared_ptr<const DTypeDesc> type;
    int64_t offset = 0;
  };
  std::vector<Field> fields;  // structured dtypes only, in declaration order

  const Field* FindField(std::string_view name) const;
  // "float64", "int64", "object", "V64", ... for messages.
  std::string Name() const;
};

// A numpy array. Numeric data is stored in native (little-endian) byte order and C order
// once the reader finishes: big-endian and Fortran-ordered inputs are normalised.
struct NdArray {
  DTypeDesc dtype;
  std::vector<int64_t> shape;
  std::string data;                   // numel * itemsize bytes (not for object arrays)
  std::vector<const Value*> objects;  // object arrays: numel elements, C order

  int64_t numel() const;
  bool is_object() const { return dtype.kind == 'O'; }
  // Element `i` (C order) of a numeric array, converted. InvalidInput for non-numeric dtypes.
  Result<std::vector<double>> ToDoubles() const;
  Result<std::vector<int64_t>> ToInt64s() const;
  // One field of a structured array as doubles (ints widened), numel values.
  Result<std::vector<double>> FieldAsDoubles(std::string_view field) const;
  // Elements of a 'U' or 'S' array, or of an object array whose elements are all str/bytes.
  // InvalidInput naming the "allocation budget" when a 'U'/'S' array's strings would take
  // more than 8 x its bytes + 64 MiB (many tiny items).
  Result<std::vector<std::string>> ToStrings() const;
};

enum class Kind {
  kNone,
  kBool,
  kInt,
  kBigInt,  // integers that do not fit in int64; `s` holds the little-endian two's complement
  kFloat,
  kStr,
  kBytes,
  kList,
  kTuple,
  kDict,
  kSet,
  kObject,  // an instance of an allow-listed class (or an emulated reconstructor's result)
  kGlobal,  // a reference to an allow-listed class or function, never resolved to code
  kNdArray,
  kDType,
};

struct Value {
  Kind kind = Kind::kNone;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;                    // str (UTF-8), bytes, big int bytes, or global path
  std::vector<const Value*> items;  // list, tuple, set elements; Object: unused
  std::vector<std::pair<const Value*, const Value*>> entries;  // dict
  // Object: class path ("sklearn.linear_model._logistic.LogisticRegression"), the
  // constructor arguments and the BUILD state (nullptr when absent).
  std::string cls;
  const Value* args = nullptr;
  const Value* state = nullptr;
  std::shared_ptr<NdArray> array;    // kNdArray
  std::shared_ptr<DTypeDesc> dtype;  // kDType
  int depth = 1;                     // nesting depth, bounded by the reader

  bool is_none() const { return kind == Kind::kNone; }
  bool is_str() const { return kind == Kind::kStr; }
  bool is_number() const {
    return kind == Kind::kInt || kind == Kind::kFloat || kind == Kind::kBool;
  }
  double AsDouble() const {
    return kind == Kind::kFloat ? f : kind == Kind::kBool ? b : static_cast<double>(i);
  }
  // Dict lookup by string key; nullptr when absent or not a dict.
  const Value* Get(std::string_view key) const;
  // "list", "ndarray", "LogisticRegression", ... for messages.
  std::string TypeName() const;
};

// The arena of one read. Movable, not copyable.
class PickleTree {
 public:
  PickleTree() = default;
  PickleTree(PickleTree&&) = default;
  PickleTree& operator=(PickleTree&&) = default;
  PickleTree(const PickleTree&) = delete;
  PickleTree& operator=(const PickleTree&) = delete;

  Value* New(Kind kind) {
    values_.emplace_back();
    values_.back().kind = kind;
    return &values_.back();
  }
  size_t size() const { return values_.size(); }

  const Value* root = nullptr;

 private:
  std::deque<Value> values_;  // deque: stable addresses
};

}  // namespace serveml::importers::pickle
