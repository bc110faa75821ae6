#include "importers/pickle/reader.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <unordered_map>

#include "importers/pickle/allow_list.h"

namespace serveml::importers::pickle {
namespace {

// What the budget is charged for each value, dict index entry, memo entry and per-dict
// index (allocator overhead included).
constexpr size_t kValueCost = sizeof(Value) + 16;
constexpr size_t kIndexEntryCost = 96;
constexpr size_t kIndexCost = 96;
constexpr size_t kMemoEntryCost = 48;

// The key of a str or int dict key, for the per-dict index that makes SETITEM(S) O(log n).
struct DictKey {
  Kind kind;
  int64_t i;
  std::string_view s;
  bool operator<(const DictKey& o) const {
    if (kind != o.kind) return kind < o.kind;
    if (i != o.i) return i < o.i;
    return s < o.s;
  }
};
using DictIndex = std::map<DictKey, size_t>;  // key -> position in Value::entries

// Bytes a copy of `d` holds (its fields' names and slots; field types are shared).
size_t DTypeCost(const DTypeDesc& d) {
  size_t n = sizeof(DTypeDesc) + d.fields.size() * sizeof(DTypeDesc::Field);
  for (const auto& f : d.fields) n += f.name.size();
  return n;
}

std::string Hex(uint8_t b) {
  static const char* d = "0123456789abcdef";
  return std::string("0x") + d[b >> 4] + d[b & 15];
}

// Shared by the outer reader and the nested pickles joblib writes for object arrays.
struct ReadState {
  std::string_view data;
  const ReaderLimits& limits;
  PickleTree* tree;
  AllocBudget budget;
  // The str/int keys of every dict (and dict subclass object) built so far. Keys point into
  // the keys' own Values, which live as long as the tree.
  std::unordered_map<const Value*, DictIndex> dict_index;
};

class Reader {
 public:
  explicit Reader(ReadState* st) : st_(*st) {}

  // Parses one pickle starting at *pos up to and including its STOP opcode.
  Result<Value*> Parse(size_t* pos) {
    pos_ = *pos;
    while (true) {
      if (pos_ >= st_.data.size()) return Truncated("an opcode");
      op_pos_ = pos_;
      const uint8_t op = static_cast<uint8_t>(st_.data[pos_++]);
      if (op == '.') {  // STOP
        if (!marks_.empty()) return Error("STOP inside an unclosed MARK");
        if (stack_.size() != 1) {
          return Error("STOP with " + std::to_string(stack_.size()) + " values on the stack");
        }
        *pos = pos_;
        return stack_.back();
      }
      RETURN_IF_ERROR(Step(op));
      if (stack_.size() + marks_.size() > st_.limits.max_stack) {
        return Error("the pickle stack grew past " + std::to_string(st_.limits.max_stack) +
                     " entries (stack limit)");
      }
    }
  }

 private:
  // ---- errors -----------------------------------------------------------------------
  Status Error(const std::string& what) const {
    return InvalidInput("malformed pickle at byte " + std::to_string(op_pos_) + ": " + what);
  }
  Status Truncated(const std::string& what) const {
    return InvalidInput("the pickle is truncated: the file ends at byte " +
                        std::to_string(st_.data.size()) + " while reading " + what);
  }

  // ---- allocation accounting ---------------------------------------------------------
  Status Charge(size_t bytes) { return st_.budget.Charge(bytes); }
  template <typename T>
  Status Reserve(std::vector<T>& v, size_t extra) {
    return st_.budget.Reserve(v, extra);
  }
  Result<Value*> New(Kind kind) {
    RETURN_IF_ERROR(Charge(kValueCost));
    return st_.tree->New(kind);
  }

  // ---- raw input ---------------------------------------------------------------------
  Result<std::string_view> Take(uint64_t n, const char* what) {
    if (n > st_.data.size() - pos_) {
      if (pos_ + 0 < st_.data.size() && n > (uint64_t{1} << 40)) {
        return Error(std::string(what) + " declares an impossible length of " + std::to_string(n) +
                     " bytes");
      }
      return Truncated(std::string(what) + " (" + std::to_string(n) + " bytes declared, " +
                       std::to_string(st_.data.size() - pos_) + " left)");
    }
    std::string_view v = st_.data.substr(pos_, static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return v;
  }
  Result<uint64_t> ReadUInt(int bytes, const char* what) {
    ASSIGN_OR_RETURN(std::string_view b, Take(static_cast<uint64_t>(bytes), what));
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(b[i]);
    return v;
  }
  Result<std::string_view> ReadLine(const char* what) {
    size_t nl = st_.data.find('\n', pos_);
    if (nl == std::string_view::npos) return Truncated(what);
    if (nl - pos_ > 4096) return Error(std::string(what) + " is too long");
    std::string_view v = st_.data.substr(pos_, nl - pos_);
    pos_ = nl + 1;
    return v;
  }

  // ---- stack -------------------------------------------------------------------------
  Result<Value*> Pop() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back())) {
      return Error("an opcode needs a value but the stack is empty");
    }
    Value* v = stack_.back();
    stack_.pop_back();
    return v;
  }
  Result<Value*> Top() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back())) {
      return Error("an opcode needs a value but the stack is empty");
    }
    return stack_.back();
  }
  Result<std::vector<Value*>> PopMark() {
    if (marks_.empty()) return Error("an opcode needs a MARK but there is none");
    size_t m = marks_.back();
    marks_.pop_back();
    std::vector<Value*> items(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return items;
  }
  Status Push(Value* v) {
    stack_.push_back(v);
    return Status::Ok();
  }
  Status Nest(Value* parent, const Value* child) {
    if (child->depth + 1 > parent->depth) parent->depth = child->depth + 1;
    if (parent->depth > st_.limits.max_depth) {
      return Error("values are nested more than " + std::to_string(st_.limits.max_depth) +
                   " levels deep (nesting depth limit)");
    }
    return Status::Ok();
  }
  Result<Value*> MakeSeq(Kind kind, const std::vector<Value*>& items) {
    ASSIGN_OR_RETURN(Value * v, New(kind));
    RETURN_IF_ERROR(Reserve(v->items, items.size()));
    for (Value* it : items) {
      v->items.push_back(it);
      RETURN_IF_ERROR(Nest(v, it));
    }
    return v;
  }
  Status Append(Value* list, const std::vector<Value*>& items) {
    // kObject: list subclasses (NEWOBJ, then APPENDS of their items).
    if (list->kind == Kind::kList || list->kind == Kind::kSet || list->kind == Kind::kObject) {
      RETURN_IF_ERROR(Reserve(list->items, items.size()));
      for (Value* it : items) {
        list->items.push_back(it);
        RETURN_IF_ERROR(Nest(list, it));
      }
      return Status::Ok();
    }
    return Error("APPEND/ADDITEMS to a " + list->TypeName() + ", which is not a list or set");
  }
  // dict[key] = value: a str or int key already present keeps its place and gets the new
  // value (other keys are just appended). O(log n) through the dict's index.
  Status SetItem(Value* dict, const Value* key, const Value* value) {
    RETURN_IF_ERROR(Nest(dict, key));
    RETURN_IF_ERROR(Nest(dict, value));
    if (key->kind == Kind::kStr || key->kind == Kind::kInt) {
      auto [slot, fresh] = st_.dict_index.try_emplace(dict);
      if (fresh) RETURN_IF_ERROR(Charge(kIndexCost));
      DictIndex& index = slot->second;
      const DictKey k{key->kind, key->kind == Kind::kInt ? key->i : 0,
                      key->kind == Kind::kStr ? std::string_view(key->s) : std::string_view()};
      if (auto it = index.find(k); it != index.end()) {
        dict->entries[it->second].second = value;
        return Status::Ok();
      }
      RETURN_IF_ERROR(Charge(kIndexEntryCost));
      index.emplace(k, dict->entries.size());
    }
    RETURN_IF_ERROR(Reserve(dict->entries, 1));
    dict->entries.emplace_back(key, value);
    return Status::Ok();
  }
  // dict[key] for a str key through the dict's index (O(log n), however often a large dict is
  // looked up); nullptr when absent.
  const Value* Lookup(const Value* dict, std::string_view key) const {
    auto slot = st_.dict_index.find(dict);
    if (slot == st_.dict_index.end()) return nullptr;
    auto it = slot->second.find(DictKey{Kind::kStr, 0, key});
    return it == slot->second.end() ? nullptr : dict->entries[it->second].second;
  }
  Status CheckDictTarget(const Value* dict) const {
    // kObject: dict subclasses (NEWOBJ, then SETITEMS).
    if (dict->kind != Kind::kDict && dict->kind != Kind::kObject) {
      return Error("SETITEM on a " + dict->TypeName());
    }
    return Status::Ok();
  }
  Status SetItems(Value* dict, const std::vector<Value*>& kv) {
    RETURN_IF_ERROR(CheckDictTarget(dict));
    if (kv.size() % 2) return Error("SETITEMS with an odd number of values");
    for (size_t i = 0; i < kv.size(); i += 2) RETURN_IF_ERROR(SetItem(dict, kv[i], kv[i + 1]));
    return Status::Ok();
  }
  // dict.update(src) for a dict `src` (which may be `dict` itself).
  Status Update(Value* dict, const Value* src) {
    RETURN_IF_ERROR(CheckDictTarget(dict));
    for (size_t i = 0, n = src->entries.size(); i < n; ++i) {
      const auto [k, v] = src->entries[i];
      RETURN_IF_ERROR(SetItem(dict, k, v));
    }
    return Status::Ok();
  }

  // ---- memo --------------------------------------------------------------------------
  Status Put(uint64_t idx) {
    ASSIGN_OR_RETURN(Value * v, Top());
    if (auto it = memo_.find(idx); it != memo_.end()) {
      it->second = v;
      return Status::Ok();
    }
    if (memo_.size() >= st_.limits.max_memo) {
      return Error("the memo grew past " + std::to_string(st_.limits.max_memo) +
                   " entries (memo limit)");
    }
    RETURN_IF_ERROR(Charge(kMemoEntryCost));
    memo_.emplace(idx, v);
    return Status::Ok();
  }
  Status Get(uint64_t idx) {
    auto it = memo_.find(idx);
    if (it == memo_.end()) return Error("memo entry " + std::to_string(idx) + " is not defined");
    return Push(it->second);
  }

  // ---- scalars -----------------------------------------------------------------------
  Status PushInt(int64_t v) {
    ASSIGN_OR_RETURN(Value * x, New(Kind::kInt));
    x->i = v;
    return Push(x);
  }
  Status PushLong(std::string_view bytes) {
    // Little-endian two's complement of any length.
    if (bytes.size() <= 8) {
      uint64_t u = 0;
      for (size_t i = bytes.size(); i-- > 0;) u = (u << 8) | static_cast<uint8_t>(bytes[i]);
      if (!bytes.empty() && bytes.size() < 8 && (static_cast<uint8_t>(bytes.back()) & 0x80)) {
        u |= ~uint64_t{0} << (8 * bytes.size());  // sign-extend
      }
      return PushInt(static_cast<int64_t>(u));
    }
    RETURN_IF_ERROR(Charge(bytes.size()));
    ASSIGN_OR_RETURN(Value * x, New(Kind::kBigInt));
    x->s = std::string(bytes);
    return Push(x);
  }
  Status PushString(Kind kind, std::string_view bytes) {
    RETURN_IF_ERROR(Charge(bytes.size()));
    ASSIGN_OR_RETURN(Value * x, New(kind));
    x->s = std::string(bytes);
    return Push(x);
  }

  // ---- globals and their emulation ---------------------------------------------------
  Status PushGlobal(std::string_view module, std::string_view name) {
    GlobalKind k = ClassifyGlobal(module, name);
    if (k == GlobalKind::kRefused) return InvalidInput(RefusedGlobalMessage(module, name));
    ASSIGN_OR_RETURN(Value * g, New(Kind::kGlobal));
    RETURN_IF_ERROR(Charge(module.size() + 1 + name.size()));
    g->s = std::string(module) + "." + std::string(name);
    g->i = static_cast<int64_t>(k);
    return Push(g);
  }
  static GlobalKind KindOf(const Value* v) {
    return v->kind == Kind::kGlobal ? static_cast<GlobalKind>(v->i) : GlobalKind::kRefused;
  }

  Result<Value*> MakeObject(const Value* cls, Value* args) {
    ASSIGN_OR_RETURN(Value * o, New(Kind::kObject));
    RETURN_IF_ERROR(Charge(cls->s.size()));
    o->cls = cls->s;
    o->args = args;
    if (args) RETURN_IF_ERROR(Nest(o, args));
    return o;
  }

  static Result<std::string> Latin1(const std::string& utf8) {
    std::string out;
    for (size_t i = 0; i < utf8.size(); ++i) {
      unsigned char c = static_cast<unsigned char>(utf8[i]);
      if (c < 0x80) {
        out += static_cast<char>(c);
      } else if ((c & 0xE0) == 0xC0 && i + 1 < utf8.size()) {
        uint32_t cp = ((c & 0x1Fu) << 6) | (static_cast<unsigned char>(utf8[i + 1]) & 0x3Fu);
        if (cp > 0xFF) return InvalidInput("a latin-1 byte string holds a character above 0xFF");
        out += static_cast<char>(cp);
        ++i;
      } else {
        return InvalidInput("a latin-1 byte string holds a character above 0xFF");
      }
    }
    return out;
  }

  Result<std::shared_ptr<DTypeDesc>> ParseTypeStr(const std::string& ts) {
    if (ts.empty()) return Error("an empty numpy dtype string");
    auto d = std::make_shared<DTypeDesc>();
    size_t i = 0;
    if (ts[0] == '<' || ts[0] == '>' || ts[0] == '|' || ts[0] == '=') {
      d->big_endian = ts[0] == '>';
      i = 1;
    }
    if (i >= ts.size()) return Error("numpy dtype '" + ts + "'");
    d->kind = ts[i++];
    int64_t n = 0;
    if (i < ts.size()) {
      auto r = std::from_chars(ts.data() + i, ts.data() + ts.size(), n);
      if (r.ec != std::errc() || r.ptr != ts.data() + ts.size() || n < 0 || n > (1 << 30)) {
        return Error("numpy dtype '" + ts + "' is not understood");
      }
    }
    switch (d->kind) {
      case 'f':
      case 'i':
      case 'u':
      case 'b':
      case 'c':
      case 'V':
      case 'S':
        d->itemsize = n;
        break;
      case 'O':
        d->itemsize = 8;
        break;
      case 'U':
        d->itemsize = n * 4;
        break;
      case 'M':
      case 'm':
        return Error("numpy datetime dtypes ('" + ts + "') are not supported in model files");
      default:
        return Error("numpy dtype '" + ts + "' is not understood");
    }
    if (d->kind == 'b' && d->itemsize == 0) d->itemsize = 1;
    return d;
  }

  // numpy.dtype.__setstate__: (version, byteorder, subdescr, names, fields, elsize, alignment,
  // flags[, metadata]).
  Status BuildDType(DTypeDesc* d, const Value* state) {
    if (state->kind != Kind::kTuple || state->items.size() < 8) {
      return Error("numpy dtype state is not the expected tuple");
    }
    const Value* order = state->items[1];
    if (order->kind == Kind::kStr && !order->s.empty()) d->big_endian = order->s == ">";
    const Value* names = state->items[3];
    const Value* fields = state->items[4];
    const Value* elsize = state->items[5];
    if (elsize->kind == Kind::kInt && elsize->i > 0) {
      if (elsize->i > (int64_t{1} << 30)) return Error("numpy dtype item size is absurd");
      d->itemsize = elsize->i;
    }
    d->fields.clear();  // a repeated BUILD replaces the fields, as numpy does
    if (names->kind == Kind::kTuple && fields->kind == Kind::kDict) {
      // The fields by name, so that looking up every name stays O(n log n).
      RETURN_IF_ERROR(Charge(fields->entries.size() * kIndexEntryCost));
      std::map<std::string_view, const Value*> by_name;
      for (const auto& [k, v] : fields->entries) {
        if (k->kind == Kind::kStr) by_name.emplace(k->s, v);
      }
      RETURN_IF_ERROR(Reserve(d->fields, names->items.size()));
      for (const Value* n : names->items) {
        if (n->kind != Kind::kStr) return Error("numpy dtype field name is not a string");
        auto found = by_name.find(n->s);
        const Value* f = found == by_name.end() ? nullptr : found->second;
        if (!f || f->kind != Kind::kTuple || f->items.size() < 2 ||
            f->items[0]->kind != Kind::kDType || f->items[1]->kind != Kind::kInt) {
          return Error("numpy dtype field '" + n->s + "' is malformed");
        }
        RETURN_IF_ERROR(Charge(n->s.size()));
        d->fields.push_back({n->s, f->items[0]->dtype, f->items[1]->i});
      }
    }
    return Status::Ok();
  }

  static bool ShapeOf(const Value* v, std::vector<int64_t>* shape, int64_t* numel) {
    if (v->kind == Kind::kInt) {
      *shape = {v->i};
    } else if (v->kind == Kind::kTuple || v->kind == Kind::kList) {
      if (v->items.size() > 32) return false;
      shape->clear();
      for (const Value* d : v->items) {
        if (d->kind != Kind::kInt) return false;
        shape->push_back(d->i);
      }
    } else {
      return false;
    }
    int64_t n = 1;
    for (int64_t d : *shape) {
      if (d < 0 || d > (int64_t{1} << 40)) return false;
      if (d != 0 && n > (int64_t{1} << 40) / d) return false;
      n *= d;
    }
    *numel = n;
    return shape->size() <= 32;
  }

  // Reorders Fortran-ordered bytes (or objects) into C order.
  template <typename Elem>
  static std::vector<Elem> FortranToC(const std::vector<Elem>& src,
                                      const std::vector<int64_t>& shape) {
    const size_t rank = shape.size();
    std::vector<Elem> out(src.size());
    std::vector<int64_t> idx(rank, 0), fstride(rank, 1);
    for (size_t k = 1; k < rank; ++k) fstride[k] = fstride[k - 1] * shape[k - 1];
    for (size_t c = 0; c < src.size(); ++c) {
      int64_t off = 0;
      for (size_t k = 0; k < rank; ++k) off += idx[k] * fstride[k];
      out[c] = src[static_cast<size_t>(off)];
      for (size_t k = rank; k-- > 0;) {
        if (++idx[k] < shape[k]) break;
        idx[k] = 0;
      }
    }
    return out;
  }

  // Copies dtype `d` into array `a`, charging the copy.
  Status SetArrayDType(NdArray* a, const DTypeDesc& d) {
    RETURN_IF_ERROR(Charge(DTypeCost(d)));
    a->dtype = d;
    return Status::Ok();
  }

  Status SetArrayData(NdArray* a, bool fortran, std::string_view raw) {
    const int64_t n = a->numel();
    const int64_t isz = a->dtype.itemsize;
    if (isz <= 0) return Error("numpy array of dtype " + a->dtype.Name() + " has no item size");
    if (n != 0 && static_cast<uint64_t>(isz) > raw.size() / static_cast<uint64_t>(n)) {
      return Error("numpy array data is " + std::to_string(raw.size()) + " bytes, expected " +
                   std::to_string(n) + " x " + std::to_string(isz));
    }
    if (static_cast<uint64_t>(n) * static_cast<uint64_t>(isz) != raw.size()) {
      return Error("numpy array data is " + std::to_string(raw.size()) + " bytes, expected " +
                   std::to_string(n * isz));
    }
    RETURN_IF_ERROR(Charge(raw.size()));
    if (fortran && a->shape.size() > 1) {
      std::vector<std::string_view> elems;
      elems.reserve(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i)
        elems.push_back(raw.substr(static_cast<size_t>(i * isz), static_cast<size_t>(isz)));
      RETURN_IF_ERROR(Charge(elems.size() * sizeof(std::string_view) * 2));
      auto c = FortranToC(elems, a->shape);
      a->data.reserve(raw.size());
      for (auto e : c) a->data.append(e);
    } else {
      a->data.assign(raw);
    }
    return Status::Ok();
  }

  Status SetArrayObjects(NdArray* a, Value* owner, bool fortran, const Value* list) {
    if (list->kind != Kind::kList && list->kind != Kind::kTuple) {
      return Error("object array data is a " + list->TypeName() + ", expected a list");
    }
    if (static_cast<int64_t>(list->items.size()) != a->numel()) {
      return Error("object array has " + std::to_string(list->items.size()) +
                   " elements, expected " + std::to_string(a->numel()));
    }
    RETURN_IF_ERROR(Nest(owner, list));
    // A copy of the list's element slots (twice while a Fortran-ordered one is reordered):
    // charged every time, however often the same list is used.
    const bool reorder = fortran && a->shape.size() > 1;
    RETURN_IF_ERROR(Charge(list->items.size() * sizeof(const Value*) * (reorder ? 2 : 1)));
    a->objects = reorder ? FortranToC(list->items, a->shape) : list->items;
    return Status::Ok();
  }

  // ndarray.__setstate__((version,) shape, dtype, is_fortran, rawdata).
  Status BuildArray(Value* arr, const Value* state) {
    if (state->kind != Kind::kTuple || (state->items.size() != 5 && state->items.size() != 4)) {
      return Error("numpy array state is not the expected tuple");
    }
    size_t o = state->items.size() == 5 ? 1 : 0;
    const Value* shape = state->items[o];
    const Value* dtype = state->items[o + 1];
    const Value* fortran = state->items[o + 2];
    const Value* raw = state->items[o + 3];
    NdArray* a = arr->array.get();
    int64_t numel = 0;
    if (!ShapeOf(shape, &a->shape, &numel)) return Error("numpy array shape is malformed");
    if (dtype->kind != Kind::kDType) return Error("numpy array dtype is a " + dtype->TypeName());
    RETURN_IF_ERROR(SetArrayDType(a, *dtype->dtype));
    const bool f = fortran->kind == Kind::kBool ? fortran->b : fortran->i != 0;
    if (a->dtype.kind == 'O') return SetArrayObjects(a, arr, f, raw);
    if (raw->kind == Kind::kBytes || raw->kind == Kind::kStr) {
      // Protocol 0/1 writers store bytes as a latin-1 str.
      if (raw->kind == Kind::kStr) {
        RETURN_IF_ERROR(Charge(raw->s.size()));  // the latin-1 copy
        ASSIGN_OR_RETURN(std::string b, Latin1(raw->s));
        return SetArrayData(a, f, b);
      }
      return SetArrayData(a, f, raw->s);
    }
    return Error("numpy array data is a " + raw->TypeName() + ", expected bytes");
  }

  // joblib: the array bytes follow the wrapper's BUILD in the stream.
  Result<Value*> ReadJoblibArray(const Value* state) {
    if (state->kind != Kind::kDict) return Error("joblib array wrapper state is not a dict");
    const Value* shape = Lookup(state, "shape");
    const Value* dtype = Lookup(state, "dtype");
    const Value* order = Lookup(state, "order");
    const Value* align = Lookup(state, "numpy_array_alignment_bytes");
    if (!shape || !dtype || dtype->kind != Kind::kDType) {
      return Error("joblib array wrapper lacks its shape or dtype");
    }
    ASSIGN_OR_RETURN(Value * arr, New(Kind::kNdArray));
    arr->array = std::make_shared<NdArray>();
    NdArray* a = arr->array.get();
    int64_t numel = 0;
    if (!ShapeOf(shape, &a->shape, &numel)) return Error("joblib array shape is malformed");
    RETURN_IF_ERROR(SetArrayDType(a, *dtype->dtype));
    const bool fortran = order && order->kind == Kind::kStr && order->s == "F";
    if (a->dtype.kind == 'O') {
      // A nested protocol pickle of the whole object array.
      if (++nested_depth_ > 4) return Error("joblib object arrays nested too deeply");
      Reader inner(&st_);
      inner.nested_depth_ = nested_depth_;
      size_t p = pos_;
      ASSIGN_OR_RETURN(Value * v, inner.Parse(&p));
      pos_ = p;
      --nested_depth_;
      if (v->kind != Kind::kNdArray) return Error("joblib object array is a " + v->TypeName());
      return v;
    }
    if (align && align->kind == Kind::kInt) {
      ASSIGN_OR_RETURN(uint64_t pad, ReadUInt(1, "joblib alignment padding"));
      ASSIGN_OR_RETURN(std::string_view skipped, Take(pad, "joblib alignment padding"));
      (void)skipped;
    }
    if (a->dtype.itemsize <= 0) return Error("joblib array dtype has no item size");
    const uint64_t nbytes = static_cast<uint64_t>(numel) * static_cast<uint64_t>(a->dtype.itemsize);
    if (numel != 0 &&
        nbytes / static_cast<uint64_t>(numel) != static_cast<uint64_t>(a->dtype.itemsize)) {
      return Error("joblib array size overflows");
    }
    ASSIGN_OR_RETURN(std::string_view raw, Take(nbytes, "joblib array data"));
    RETURN_IF_ERROR(SetArrayData(a, fortran, raw));
    return arr;
  }

  Result<Value*> Reduce(Value* callable, Value* args) {
    const GlobalKind k = KindOf(callable);
    if (callable->kind != Kind::kGlobal) {
      return Error("REDUCE calls a " + callable->TypeName() + ", which is not callable here");
    }
    if (args->kind != Kind::kTuple) return Error("REDUCE arguments are not a tuple");
    const auto& a = args->items;
    auto arg = [&](size_t i) -> const Value* { return i < a.size() ? a[i] : nullptr; };
    switch (k) {
      case GlobalKind::kReconstruct: {
        if (a.size() != 3 || KindOf(a[0]) != GlobalKind::kNdArrayType) {
          return Error("numpy _reconstruct called with unexpected arguments");
        }
        ASSIGN_OR_RETURN(Value * v, New(Kind::kNdArray));
        v->array = std::make_shared<NdArray>();
        v->array->dtype.kind = 'u';
        v->array->dtype.itemsize = 1;
        v->array->shape = {0};
        return v;
      }
      case GlobalKind::kDType: {
        if (!arg(0) || arg(0)->kind != Kind::kStr)
          return Error("numpy dtype called without a type string");
        ASSIGN_OR_RETURN(Value * v, New(Kind::kDType));
        ASSIGN_OR_RETURN(v->dtype, ParseTypeStr(arg(0)->s));
        return v;
      }
      case GlobalKind::kScalar: {
        if (a.size() < 1 || a[0]->kind != Kind::kDType)
          return Error("numpy scalar without a dtype");
        const DTypeDesc& d = *a[0]->dtype;
        if (d.kind == 'O') {
          if (a.size() < 2) return Error("numpy object scalar without a value");
          return const_cast<Value*>(a[1]);
        }
        if (a.size() < 2 || (a[1]->kind != Kind::kBytes && a[1]->kind != Kind::kStr)) {
          return Error("numpy scalar without its bytes");
        }
        if (d.itemsize <= 0 || a[1]->s.size() < static_cast<size_t>(d.itemsize) ||
            a[1]->s.size() > static_cast<size_t>(d.itemsize) * 2) {
          return Error("numpy scalar of dtype " + d.Name() + " has " +
                       std::to_string(a[1]->s.size()) + " bytes");
        }
        // Only the scalar's kind, size and byte order matter here (no field copies).
        NdArray tmp;
        tmp.dtype.kind = d.kind;
        tmp.dtype.itemsize = d.itemsize;
        tmp.dtype.big_endian = d.big_endian;
        tmp.shape = {};
        RETURN_IF_ERROR(Charge(a[1]->s.size()));
        if (a[1]->kind == Kind::kStr) {
          ASSIGN_OR_RETURN(tmp.data, Latin1(a[1]->s));
        } else {
          tmp.data = a[1]->s;
        }
        if (tmp.data.size() != static_cast<size_t>(d.itemsize)) {
          return Error("numpy scalar of dtype " + d.Name() + " has " +
                       std::to_string(tmp.data.size()) + " bytes");
        }
        if (d.kind == 'U' || d.kind == 'S') {
          RETURN_IF_ERROR(Charge(tmp.data.size()));  // the decoded string
          ASSIGN_OR_RETURN(auto strs, tmp.ToStrings());
          ASSIGN_OR_RETURN(Value * v, New(Kind::kStr));
          v->s = strs.at(0);
          return v;
        }
        if (d.kind == 'f') {
          ASSIGN_OR_RETURN(auto ds, tmp.ToDoubles());
          ASSIGN_OR_RETURN(Value * v, New(Kind::kFloat));
          v->f = ds.at(0);
          return v;
        }
        if (d.kind == 'i' || d.kind == 'u' || d.kind == 'b') {
          ASSIGN_OR_RETURN(auto is, tmp.ToInt64s());
          ASSIGN_OR_RETURN(Value * v, New(d.kind == 'b' ? Kind::kBool : Kind::kInt));
          v->i = is.at(0);
          v->b = is.at(0) != 0;
          return v;
        }
        return Error("numpy scalar of dtype " + d.Name() + " is not supported");
      }
      case GlobalKind::kFromBuffer: {
        // _frombuffer(buffer, dtype, shape, order)
        if (a.size() != 4 || (a[0]->kind != Kind::kBytes) || a[1]->kind != Kind::kDType ||
            a[3]->kind != Kind::kStr) {
          return Error("numpy _frombuffer called with unexpected arguments");
        }
        ASSIGN_OR_RETURN(Value * v, New(Kind::kNdArray));
        v->array = std::make_shared<NdArray>();
        RETURN_IF_ERROR(SetArrayDType(v->array.get(), *a[1]->dtype));
        int64_t numel = 0;
        if (!ShapeOf(a[2], &v->array->shape, &numel))
          return Error("numpy _frombuffer shape is malformed");
        if (v->array->dtype.kind == 'O') return Error("numpy _frombuffer of an object dtype");
        RETURN_IF_ERROR(SetArrayData(v->array.get(), a[3]->s == "F", a[0]->s));
        return v;
      }
      case GlobalKind::kCodecsEncode: {
        if (!arg(0) || arg(0)->kind != Kind::kStr) return Error("_codecs.encode without a string");
        if (arg(1) && arg(1)->kind == Kind::kStr && arg(1)->s != "latin1" &&
            arg(1)->s != "latin-1") {
          return Error("_codecs.encode with encoding '" + arg(1)->s + "'");
        }
        ASSIGN_OR_RETURN(Value * v, New(Kind::kBytes));
        RETURN_IF_ERROR(Charge(arg(0)->s.size()));  // latin-1 is never longer than UTF-8
        ASSIGN_OR_RETURN(v->s, Latin1(arg(0)->s));
        return v;
      }
      case GlobalKind::kCopyregReconstructor: {
        // copyreg._reconstructor(cls, object, None) / sklearn's newObj(cls).
        if (!arg(0) || KindOf(arg(0)) != GlobalKind::kClass) {
          return Error(callable->s + " called without an allowed class");
        }
        if (arg(1) && KindOf(arg(1)) != GlobalKind::kBuiltinObject) {
          return Error(callable->s + " with a base other than object");
        }
        return MakeObject(arg(0), nullptr);
      }
      case GlobalKind::kBuiltinSet: {
        ASSIGN_OR_RETURN(Value * v, New(Kind::kSet));
        if (arg(0)) {
          if (arg(0)->kind != Kind::kList && arg(0)->kind != Kind::kTuple &&
              arg(0)->kind != Kind::kSet) {
            return Error("set() of a " + arg(0)->TypeName());
          }
          // A copy of the container's element slots, charged every time it is made.
          RETURN_IF_ERROR(Reserve(v->items, arg(0)->items.size()));
          for (const Value* it : arg(0)->items) v->items.push_back(it);
          RETURN_IF_ERROR(Nest(v, arg(0)));
        }
        return v;
      }
      case GlobalKind::kBuiltinBytes: {
        ASSIGN_OR_RETURN(Value * v, New(Kind::kBytes));
        if (arg(0)) {
          if (arg(0)->kind != Kind::kBytes && arg(0)->kind != Kind::kStr) {
            return Error("bytes() of a " + arg(0)->TypeName());
          }
          RETURN_IF_ERROR(Charge(arg(0)->s.size()));  // the copy, charged before it is made
          if (arg(0)->kind == Kind::kBytes) {
            v->s = arg(0)->s;
          } else {
            ASSIGN_OR_RETURN(v->s, Latin1(arg(0)->s));
          }
        }
        return v;
      }
      case GlobalKind::kOrderedDict: {
        ASSIGN_OR_RETURN(Value * v, New(Kind::kDict));
        if (arg(0)) {
          if (arg(0)->kind != Kind::kList) return Error("OrderedDict() of a " + arg(0)->TypeName());
          for (const Value* p : arg(0)->items) {
            if ((p->kind != Kind::kTuple && p->kind != Kind::kList) || p->items.size() != 2) {
              return Error("OrderedDict() item is not a pair");
            }
            RETURN_IF_ERROR(SetItem(v, p->items[0], p->items[1]));
          }
        }
        return v;
      }
      case GlobalKind::kSlice:
      case GlobalKind::kClass:
      case GlobalKind::kOpaqueCtor:
        return MakeObject(callable, args);
      case GlobalKind::kJoblibWrapper:
        return MakeObject(callable, args);
      case GlobalKind::kNdArrayType:
      case GlobalKind::kNumpyType:
      case GlobalKind::kBuiltinObject:
      case GlobalKind::kRefused:
        break;
    }
    return Error("REDUCE calls " + callable->s + ", which model files may not call");
  }

  Status Build(Value* obj, Value* state) {
    switch (obj->kind) {
      case Kind::kNdArray:
        return BuildArray(obj, state);
      case Kind::kDType:
        return BuildDType(obj->dtype.get(), state);
      case Kind::kObject: {
        if (obj->cls == "joblib.numpy_pickle.NumpyArrayWrapper" ||
            obj->cls == "sklearn.externals.joblib.numpy_pickle.NumpyArrayWrapper") {
          ASSIGN_OR_RETURN(Value * arr, ReadJoblibArray(state));
          stack_.back() = arr;  // the wrapper on the stack becomes the array it describes
          return Status::Ok();
        }
        // (dict, slotstate) pairs: keep the dict, which is what estimators use.
        if (state->kind == Kind::kTuple && state->items.size() == 2 &&
            state->items[0]->kind == Kind::kDict) {
          state = const_cast<Value*>(state->items[0]);
        }
        // A later BUILD with a dict state updates the instance dict (instance.__dict__.update)
        // into a fresh dict: a charged copy each time, so repeating it cannot be free.
        if (obj->state && obj->state->kind == Kind::kDict && state->kind == Kind::kDict) {
          ASSIGN_OR_RETURN(Value * merged, New(Kind::kDict));
          RETURN_IF_ERROR(Update(merged, obj->state));
          RETURN_IF_ERROR(Update(merged, state));
          obj->state = merged;
          return Nest(obj, merged);
        }
        obj->state = state;
        return Nest(obj, state);
      }
      case Kind::kDict:
        if (state->kind == Kind::kDict) return Update(obj, state);
        break;
      default:
        break;
    }
    return Error("BUILD on a " + obj->TypeName() + " with a " + state->TypeName() + " state");
  }

  // ---- the opcode interpreter ---------------------------------------------------------
  Status Step(uint8_t op) {
    switch (op) {
      case 0x80: {  // PROTO
        ASSIGN_OR_RETURN(uint64_t v, ReadUInt(1, "PROTO"));
        if (v < 2 || v > 5) {
          return Error("pickle protocol " + std::to_string(v) + " is not supported (2 to 5 are)");
        }
        return Status::Ok();
      }
      case 0x95: {  // FRAME: a length prefix; frames are transparent here.
        ASSIGN_OR_RETURN(uint64_t n, ReadUInt(8, "FRAME"));
        if (n > st_.data.size() - pos_) {
          return Truncated("a FRAME of " + std::to_string(n) + " bytes");
        }
        return Status::Ok();
      }
      case '(':  // MARK
        marks_.push_back(stack_.size());
        return Status::Ok();
      case '0': {  // POP
        if (!marks_.empty() && marks_.back() == stack_.size()) {
          marks_.pop_back();  // POP of a MARK, as CPython does
          return Status::Ok();
        }
        ASSIGN_OR_RETURN(Value * v, Pop());
        (void)v;
        return Status::Ok();
      }
      case '1': {  // POP_MARK
        ASSIGN_OR_RETURN(auto items, PopMark());
        return Status::Ok();
      }
      case '2': {  // DUP
        ASSIGN_OR_RETURN(Value * v, Top());
        return Push(v);
      }
      case 'N': {
        ASSIGN_OR_RETURN(Value * v, New(Kind::kNone));
        return Push(v);
      }
      case 0x88:
      case 0x89: {
        ASSIGN_OR_RETURN(Value * v, New(Kind::kBool));
        v->b = op == 0x88;
        return Push(v);
      }
      case 'I': {  // INT (text): "00"/"01" are False/True
        ASSIGN_OR_RETURN(std::string_view line, ReadLine("INT"));
        if (line == "00" || line == "01") {
          ASSIGN_OR_RETURN(Value * v, New(Kind::kBool));
          v->b = line == "01";
          return Push(v);
        }
        int64_t x = 0;
        auto r = std::from_chars(line.data(), line.data() + line.size(), x);
        if (r.ec != std::errc() || r.ptr != line.data() + line.size()) return Error("bad INT");
        return PushInt(x);
      }
      case 'J': {
        ASSIGN_OR_RETURN(uint64_t v, ReadUInt(4, "BININT"));
        return PushInt(static_cast<int32_t>(static_cast<uint32_t>(v)));
      }
      case 'K': {
        ASSIGN_OR_RETURN(uint64_t v, ReadUInt(1, "BININT1"));
        return PushInt(static_cast<int64_t>(v));
      }
      case 'M': {
        ASSIGN_OR_RETURN(uint64_t v, ReadUInt(2, "BININT2"));
        return PushInt(static_cast<int64_t>(v));
      }
      case 0x8a: {  // LONG1
        ASSIGN_OR_RETURN(uint64_t n, ReadUInt(1, "LONG1"));
        ASSIGN_OR_RETURN(std::string_view b, Take(n, "LONG1"));
        return PushLong(b);
      }
      case 0x8b: {  // LONG4
        ASSIGN_OR_RETURN(uint64_t n, ReadUInt(4, "LONG4"));
        if (n & 0x80000000u) return Error("LONG4 with a negative length");
        ASSIGN_OR_RETURN(std::string_view b, Take(n, "LONG4"));
        return PushLong(b);
      }
      case 'G': {  // BINFLOAT, big-endian
        ASSIGN_OR_RETURN(std::string_view b, Take(8, "BINFLOAT"));
        uint64_t u = 0;
        for (int i = 0; i < 8; ++i) u = (u << 8) | static_cast<uint8_t>(b[i]);
        ASSIGN_OR_RETURN(Value * v, New(Kind::kFloat));
        std::memcpy(&v->f, &u, 8);
        return Push(v);
      }
      case 'X':
      case 0x8c:
      case 0x8d: {  // BINUNICODE, SHORT_BINUNICODE, BINUNICODE8
        const int w = op == 'X' ? 4 : op == 0x8c ? 1 : 8;
        ASSIGN_OR_RETURN(uint64_t n, ReadUInt(w, "a unicode string length"));
        ASSIGN_OR_RETURN(std::string_view b, Take(n, "a unicode string"));
        return PushString(Kind::kStr, b);
      }
      case 'T':
      case 'U': {  // BINSTRING, SHORT_BINSTRING (Python 2 str, read as text)
        ASSIGN_OR_RETURN(uint64_t n, ReadUInt(op == 'T' ? 4 : 1, "a string length"));
        if (op == 'T' && (n & 0x80000000u)) return Error("BINSTRING with a negative length");
        ASSIGN_OR_RETURN(std::string_view b, Take(n, "a string"));
        return PushString(Kind::kStr, b);
      }
      case 'B':
      case 'C':
      case 0x8e:
      case 0x96: {  // BINBYTES, SHORT_BINBYTES, BINBYTES8, BYTEARRAY8
        const int w = op == 'B' ? 4 : op == 'C' ? 1 : 8;
        ASSIGN_OR_RETURN(uint64_t n, ReadUInt(w, "a bytes length"));
        ASSIGN_OR_RETURN(std::string_view b, Take(n, "a bytes object"));
        return PushString(Kind::kBytes, b);
      }
      case 0x97:
      case 0x98:
        return Error(
            "out-of-band pickle buffers (NEXT_BUFFER/READONLY_BUFFER) are not supported; save "
            "the model with pickle.dump or joblib.dump without buffer_callback");
      case ']': {
        ASSIGN_OR_RETURN(Value * v, New(Kind::kList));
        return Push(v);
      }
      case 'a': {  // APPEND
        ASSIGN_OR_RETURN(Value * item, Pop());
        ASSIGN_OR_RETURN(Value * list, Top());
        return Append(list, {item});
      }
      case 'e':
      case 0x90: {  // APPENDS, ADDITEMS
        ASSIGN_OR_RETURN(auto items, PopMark());
        ASSIGN_OR_RETURN(Value * list, Top());
        return Append(list, items);
      }
      case 'l': {  // LIST
        ASSIGN_OR_RETURN(auto items, PopMark());
        ASSIGN_OR_RETURN(Value * v, MakeSeq(Kind::kList, items));
        return Push(v);
      }
      case ')': {
        ASSIGN_OR_RETURN(Value * v, New(Kind::kTuple));
        return Push(v);
      }
      case 0x85:
      case 0x86:
      case 0x87: {  // TUPLE1..3
        const size_t n = op - 0x84u;
        std::vector<Value*> items(n);
        for (size_t i = n; i-- > 0;) {
          ASSIGN_OR_RETURN(items[i], Pop());
        }
        ASSIGN_OR_RETURN(Value * v, MakeSeq(Kind::kTuple, items));
        return Push(v);
      }
      case 't': {
        ASSIGN_OR_RETURN(auto items, PopMark());
        ASSIGN_OR_RETURN(Value * v, MakeSeq(Kind::kTuple, items));
        return Push(v);
      }
      case '}': {
        ASSIGN_OR_RETURN(Value * v, New(Kind::kDict));
        return Push(v);
      }
      case 's': {  // SETITEM
        ASSIGN_OR_RETURN(Value * value, Pop());
        ASSIGN_OR_RETURN(Value * key, Pop());
        ASSIGN_OR_RETURN(Value * dict, Top());
        return SetItems(dict, {key, value});
      }
      case 'u': {  // SETITEMS
        ASSIGN_OR_RETURN(auto kv, PopMark());
        ASSIGN_OR_RETURN(Value * dict, Top());
        return SetItems(dict, kv);
      }
      case 'd': {  // DICT
        ASSIGN_OR_RETURN(auto kv, PopMark());
        ASSIGN_OR_RETURN(Value * v, New(Kind::kDict));
        RETURN_IF_ERROR(SetItems(v, kv));
        return Push(v);
      }
      case 0x8f: {  // EMPTY_SET
        ASSIGN_OR_RETURN(Value * v, New(Kind::kSet));
        return Push(v);
      }
      case 0x91: {  // FROZENSET
        ASSIGN_OR_RETURN(auto items, PopMark());
        ASSIGN_OR_RETURN(Value * v, MakeSeq(Kind::kSet, items));
        return Push(v);
      }
      case 'c': {  // GLOBAL "module\nname\n"
        ASSIGN_OR_RETURN(std::string_view module, ReadLine("GLOBAL module"));
        ASSIGN_OR_RETURN(std::string_view name, ReadLine("GLOBAL name"));
        return PushGlobal(module, name);
      }
      case 0x93: {  // STACK_GLOBAL
        ASSIGN_OR_RETURN(Value * name, Pop());
        ASSIGN_OR_RETURN(Value * module, Pop());
        if (module->kind != Kind::kStr || name->kind != Kind::kStr) {
          return Error("STACK_GLOBAL needs two strings");
        }
        return PushGlobal(module->s, name->s);
      }
      case 'R': {  // REDUCE
        ASSIGN_OR_RETURN(Value * args, Pop());
        ASSIGN_OR_RETURN(Value * callable, Pop());
        ASSIGN_OR_RETURN(Value * v, Reduce(callable, args));
        return Push(v);
      }
      case 0x81:
      case 0x92: {  // NEWOBJ, NEWOBJ_EX
        Value* kwargs = nullptr;
        if (op == 0x92) {
          ASSIGN_OR_RETURN(kwargs, Pop());
        }
        ASSIGN_OR_RETURN(Value * args, Pop());
        ASSIGN_OR_RETURN(Value * cls, Pop());
        const GlobalKind k = KindOf(cls);
        if (k == GlobalKind::kBuiltinSet || k == GlobalKind::kOrderedDict) {
          ASSIGN_OR_RETURN(Value * v, Reduce(cls, args));
          return Push(v);
        }
        if (k != GlobalKind::kClass && k != GlobalKind::kJoblibWrapper) {
          return Error("NEWOBJ of " +
                       (cls->kind == Kind::kGlobal ? cls->s : "a " + cls->TypeName()));
        }
        ASSIGN_OR_RETURN(Value * v, MakeObject(cls, args));
        (void)kwargs;
        return Push(v);
      }
      case 'b': {  // BUILD
        ASSIGN_OR_RETURN(Value * state, Pop());
        ASSIGN_OR_RETURN(Value * obj, Top());
        return Build(obj, state);
      }
      case 'p': {  // PUT (text index)
        ASSIGN_OR_RETURN(std::string_view line, ReadLine("PUT"));
        uint64_t idx = 0;
        auto r = std::from_chars(line.data(), line.data() + line.size(), idx);
        if (r.ec != std::errc() || r.ptr != line.data() + line.size())
          return Error("bad PUT index");
        return Put(idx);
      }
      case 'q': {
        ASSIGN_OR_RETURN(uint64_t idx, ReadUInt(1, "BINPUT"));
        return Put(idx);
      }
      case 'r': {
        ASSIGN_OR_RETURN(uint64_t idx, ReadUInt(4, "LONG_BINPUT"));
        return Put(idx);
      }
      case 0x94:  // MEMOIZE
        return Put(memo_.size());
      case 'g': {
        ASSIGN_OR_RETURN(std::string_view line, ReadLine("GET"));
        uint64_t idx = 0;
        auto r = std::from_chars(line.data(), line.data() + line.size(), idx);
        if (r.ec != std::errc() || r.ptr != line.data() + line.size())
          return Error("bad GET index");
        return Get(idx);
      }
      case 'h': {
        ASSIGN_OR_RETURN(uint64_t idx, ReadUInt(1, "BINGET"));
        return Get(idx);
      }
      case 'j': {
        ASSIGN_OR_RETURN(uint64_t idx, ReadUInt(4, "LONG_BINGET"));
        return Get(idx);
      }
      case 0x82:
      case 0x83:
      case 0x84:
        return Error("extension-registry opcodes (EXT1/EXT2/EXT4) are not allowed in model files");
      case 'P':
      case 'Q':
        return Error("persistent ids (PERSID/BINPERSID) are not allowed in model files");
      case 'i':
      case 'o':
        return Error(
            "protocol 0/1 object opcodes (INST/OBJ) are not supported; save with "
            "protocol 2 or newer");
      default:
        return Error("unknown or unsupported pickle opcode " + Hex(op));
    }
  }

  ReadState& st_;
  size_t pos_ = 0;
  size_t op_pos_ = 0;
  int nested_depth_ = 0;
  std::vector<Value*> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Value*> memo_;
};

}  // namespace

Result<PickleTree> ReadPickle(std::string_view bytes, const ReaderLimits& limits) {
  std::string compression;
  ASSIGN_OR_RETURN(std::string inflated, MaybeDecompress(bytes, limits, &compression));
  std::string_view data = compression.empty() ? bytes : std::string_view(inflated);
  if (data.empty()) return InvalidInput("the model file is empty");
  if (static_cast<uint8_t>(data[0]) != 0x80) {
    if (data.substr(0, 6) == "\x93NUMPY") {
      return InvalidInput("this is a .npy array file, not a pickled model");
    }
    return InvalidInput(
        "not a pickle: scikit-learn models must be saved with pickle.dump or joblib.dump "
        "(protocol 2 or newer)");
  }
  PickleTree tree;
  ReadState st{data,
               limits,
               &tree,
               AllocBudget("the pickle", data.size(), limits.alloc_factor, limits.alloc_slack,
                           limits.max_alloc_bytes),
               {}};
  // The decompressed stream is held for the whole read.
  if (!compression.empty()) RETURN_IF_ERROR(st.budget.Charge(inflated.size()));
  Reader reader(&st);
  size_t pos = 0;
  ASSIGN_OR_RETURN(Value * root, reader.Parse(&pos));
  if (pos != data.size()) {
    return InvalidInput("unexpected " + std::to_string(data.size() - pos) +
                        " bytes after the end of the pickle at byte " + std::to_string(pos));
  }
  tree.root = root;
  return tree;
}

}  // namespace serveml::importers::pickle
