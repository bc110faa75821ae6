#include "importers/pickle/reader.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <unordered_map>

#include "importers/pickle/allow_list.h"

namespace serveml::importers::pickle {
namespace {

constexpr size_t kValueCost = sizeof(Value) + 16;

std::string Hex(uint8_t b) {
  static const char* d = "0123456789abcdef";
  return std::string("0x") + d[b >> 4] + d[b & 15];
}

// Shared by the outer reader and the nested pickles joblib writes for object arrays.
struct ReadState {
  std::string_view data;
  const ReaderLimits& limits;
  PickleTree* tree;
  size_t budget;
  size_t used = 0;
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
                     " entries");
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
  Status Charge(size_t bytes) {
    st_.used += bytes;
    if (st_.used > st_.budget) {
      return InvalidInput("the pickle would need more than " + std::to_string(st_.budget >> 20) +
                          " MiB to load, far more than its size justifies; refusing it");
    }
    return Status::Ok();
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
                   " levels deep");
    }
    return Status::Ok();
  }
  Result<Value*> MakeSeq(Kind kind, const std::vector<Value*>& items) {
    ASSIGN_OR_RETURN(Value * v, New(kind));
    RETURN_IF_ERROR(Charge(items.size() * sizeof(void*)));
    for (Value* it : items) {
      v->items.push_back(it);
      RETURN_IF_ERROR(Nest(v, it));
    }
    return v;
  }
  Status Append(Value* list, const std::vector<Value*>& items) {
    // kObject: list subclasses (NEWOBJ, then APPENDS of their items).
    if (list->kind == Kind::kList || list->kind == Kind::kSet || list->kind == Kind::kObject) {
      RETURN_IF_ERROR(Charge(items.size() * sizeof(void*)));
      for (Value* it : items) {
        list->items.push_back(it);
        RETURN_IF_ERROR(Nest(list, it));
      }
      return Status::Ok();
    }
    return Error("APPEND/ADDITEMS to a " + list->TypeName() + ", which is not a list or set");
  }
  Status SetItems(Value* dict, const std::vector<Value*>& kv) {
    // kObject: dict subclasses (NEWOBJ, then SETITEMS).
    if (dict->kind != Kind::kDict && dict->kind != Kind::kObject) {
      return Error("SETITEM on a " + dict->TypeName());
    }
    if (kv.size() % 2) return Error("SETITEMS with an odd number of values");
    RETURN_IF_ERROR(Charge(kv.size() * sizeof(void*)));
    for (size_t i = 0; i < kv.size(); i += 2) {
      RETURN_IF_ERROR(Nest(dict, kv[i]));
      RETURN_IF_ERROR(Nest(dict, kv[i + 1]));
      // Later keys replace earlier ones (string and int keys; others just append).
      bool replaced = false;
      if (kv[i]->kind == Kind::kStr || kv[i]->kind == Kind::kInt) {
        for (auto& e : dict->entries) {
          if (e.first->kind == kv[i]->kind && e.first->s == kv[i]->s && e.first->i == kv[i]->i) {
            e.second = kv[i + 1];
            replaced = true;
            break;
          }
        }
      }
      if (!replaced) dict->entries.emplace_back(kv[i], kv[i + 1]);
    }
    return Status::Ok();
  }

  // ---- memo --------------------------------------------------------------------------
  Status Put(uint64_t idx) {
    ASSIGN_OR_RETURN(Value * v, Top());
    if (memo_.size() >= st_.limits.max_memo && !memo_.count(idx)) {
      return Error("the memo grew past " + std::to_string(st_.limits.max_memo) + " entries");
    }
    RETURN_IF_ERROR(Charge(48));
    memo_[idx] = v;
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
    g->s = std::string(module) + "." + std::string(name);
    g->i = static_cast<int64_t>(k);
    return Push(g);
  }
  static GlobalKind KindOf(const Value* v) {
    return v->kind == Kind::kGlobal ? static_cast<GlobalKind>(v->i) : GlobalKind::kRefused;
  }

  Result<Value*> MakeObject(const Value* cls, Value* args) {
    ASSIGN_OR_RETURN(Value * o, New(Kind::kObject));
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
    if (names->kind == Kind::kTuple && fields->kind == Kind::kDict) {
      for (const Value* n : names->items) {
        if (n->kind != Kind::kStr) return Error("numpy dtype field name is not a string");
        const Value* f = fields->Get(n->s);
        if (!f || f->kind != Kind::kTuple || f->items.size() < 2 ||
            f->items[0]->kind != Kind::kDType || f->items[1]->kind != Kind::kInt) {
          return Error("numpy dtype field '" + n->s + "' is malformed");
        }
        d->fields.push_back({n->s, f->items[0]->dtype, f->items[1]->i});
      }
    }
    return Status::Ok();
  }

  static bool ShapeOf(const Value* v, std::vector<int64_t>* shape, int64_t* numel) {
    if (v->kind == Kind::kInt) {
      *shape = {v->i};
    } else if (v->kind == Kind::kTuple || v->kind == Kind::kList) {
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
    a->objects = fortran && a->shape.size() > 1 ? FortranToC(list->items, a->shape) : list->items;
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
    a->dtype = *dtype->dtype;
    const bool f = fortran->kind == Kind::kBool ? fortran->b : fortran->i != 0;
    if (a->dtype.kind == 'O') return SetArrayObjects(a, arr, f, raw);
    if (raw->kind == Kind::kBytes || raw->kind == Kind::kStr) {
      // Protocol 0/1 writers store bytes as a latin-1 str.
      if (raw->kind == Kind::kStr) {
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
    const Value* shape = state->Get("shape");
    const Value* dtype = state->Get("dtype");
    const Value* order = state->Get("order");
    const Value* align = state->Get("numpy_array_alignment_bytes");
    if (!shape || !dtype || dtype->kind != Kind::kDType) {
      return Error("joblib array wrapper lacks its shape or dtype");
    }
    ASSIGN_OR_RETURN(Value * arr, New(Kind::kNdArray));
    arr->array = std::make_shared<NdArray>();
    NdArray* a = arr->array.get();
    int64_t numel = 0;
    if (!ShapeOf(shape, &a->shape, &numel)) return Error("joblib array shape is malformed");
    a->dtype = *dtype->dtype;
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
        std::string raw = a[1]->s;
        if (a[1]->kind == Kind::kStr) {
          ASSIGN_OR_RETURN(raw, Latin1(a[1]->s));
        }
        NdArray tmp;
        tmp.dtype = d;
        tmp.shape = {};
        if (d.itemsize <= 0 || raw.size() != static_cast<size_t>(d.itemsize)) {
          return Error("numpy scalar of dtype " + d.Name() + " has " + std::to_string(raw.size()) +
                       " bytes");
        }
        tmp.data = raw;
        if (d.kind == 'U' || d.kind == 'S') {
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
        v->array->dtype = *a[1]->dtype;
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
        ASSIGN_OR_RETURN(v->s, Latin1(arg(0)->s));
        RETURN_IF_ERROR(Charge(v->s.size()));
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
          for (const Value* it : arg(0)->items) v->items.push_back(it);
          RETURN_IF_ERROR(Nest(v, arg(0)));
        }
        return v;
      }
      case GlobalKind::kBuiltinBytes: {
        ASSIGN_OR_RETURN(Value * v, New(Kind::kBytes));
        if (arg(0)) {
          if (arg(0)->kind == Kind::kBytes) {
            v->s = arg(0)->s;
          } else if (arg(0)->kind == Kind::kStr) {
            ASSIGN_OR_RETURN(v->s, Latin1(arg(0)->s));
          } else {
            return Error("bytes() of a " + arg(0)->TypeName());
          }
          RETURN_IF_ERROR(Charge(v->s.size()));
        }
        return v;
      }
      case GlobalKind::kOrderedDict: {
        ASSIGN_OR_RETURN(Value * v, New(Kind::kDict));
        if (arg(0)) {
          if (arg(0)->kind != Kind::kList) return Error("OrderedDict() of a " + arg(0)->TypeName());
          std::vector<Value*> kv;
          for (const Value* p : arg(0)->items) {
            if ((p->kind != Kind::kTuple && p->kind != Kind::kList) || p->items.size() != 2) {
              return Error("OrderedDict() item is not a pair");
            }
            kv.push_back(const_cast<Value*>(p->items[0]));
            kv.push_back(const_cast<Value*>(p->items[1]));
          }
          RETURN_IF_ERROR(SetItems(v, kv));
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
        obj->state = state;
        return Nest(obj, state);
      }
      case Kind::kDict:
        if (state->kind == Kind::kDict) {
          std::vector<Value*> kv;
          for (auto& [k, v] : state->entries) {
            kv.push_back(const_cast<Value*>(k));
            kv.push_back(const_cast<Value*>(v));
          }
          return SetItems(obj, kv);
        }
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
  ReadState st{data, limits, &tree, data.size() * limits.alloc_factor + limits.alloc_slack};
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
