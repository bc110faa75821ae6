#include "importers/pickle/value.h"

#include <algorithm>
#include <cstring>

#include "core/utf8.h"

namespace serveml::importers::pickle {
namespace {

template <typename T>
T Load(const char* p, bool big_endian) {
  char buf[sizeof(T)];
  std::memcpy(buf, p, sizeof(T));
  if (big_endian) std::reverse(buf, buf + sizeof(T));
  T v;
  std::memcpy(&v, buf, sizeof(T));
  return v;
}

// Reads one element of a simple numeric dtype at `p` as double (and exactly as int64 into
// *as_int when the dtype is integral). False for non-numeric dtypes.
bool LoadNumber(const DTypeDesc& d, const char* p, double* out, int64_t* as_int) {
  const bool be = d.big_endian;
  int64_t iv = 0;
  switch (d.kind) {
    case 'f':
      if (d.itemsize == 8)
        *out = Load<double>(p, be);
      else if (d.itemsize == 4)
        *out = Load<float>(p, be);
      else
        return false;
      if (as_int) *as_int = static_cast<int64_t>(*out);
      return true;
    case 'b':
      if (d.itemsize != 1) return false;
      iv = p[0] != 0;
      break;
    case 'i':
      switch (d.itemsize) {
        case 1:
          iv = static_cast<int8_t>(p[0]);
          break;
        case 2:
          iv = Load<int16_t>(p, be);
          break;
        case 4:
          iv = Load<int32_t>(p, be);
          break;
        case 8:
          iv = Load<int64_t>(p, be);
          break;
        default:
          return false;
      }
      break;
    case 'u':
      switch (d.itemsize) {
        case 1:
          iv = static_cast<uint8_t>(p[0]);
          break;
        case 2:
          iv = Load<uint16_t>(p, be);
          break;
        case 4:
          iv = Load<uint32_t>(p, be);
          break;
        case 8:
          iv = static_cast<int64_t>(Load<uint64_t>(p, be));
          break;
        default:
          return false;
      }
      break;
    default:
      return false;
  }
  *out = static_cast<double>(iv);
  if (as_int) *as_int = iv;
  return true;
}

}  // namespace

const DTypeDesc::Field* DTypeDesc::FindField(std::string_view name) const {
  for (const auto& f : fields) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

std::string DTypeDesc::Name() const {
  switch (kind) {
    case 'f':
      return "float" + std::to_string(itemsize * 8);
    case 'i':
      return "int" + std::to_string(itemsize * 8);
    case 'u':
      return "uint" + std::to_string(itemsize * 8);
    case 'b':
      return "bool";
    case 'O':
      return "object";
    case 'U':
      return "<U" + std::to_string(itemsize / 4);
    case 'S':
      return "|S" + std::to_string(itemsize);
    default:
      return std::string(1, kind) + std::to_string(itemsize);
  }
}

int64_t NdArray::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

Result<std::vector<double>> NdArray::ToDoubles() const {
  std::vector<double> out;
  const int64_t n = numel();
  out.reserve(static_cast<size_t>(n));
  if (is_object()) {
    for (const Value* v : objects) {
      if (!v->is_number()) return InvalidInput("expected numbers, found a " + v->TypeName());
      out.push_back(v->AsDouble());
    }
    return out;
  }
  for (int64_t i = 0; i < n; ++i) {
    double d = 0;
    if (!LoadNumber(dtype, data.data() + i * dtype.itemsize, &d, nullptr)) {
      return InvalidInput("expected a numeric array, found dtype " + dtype.Name());
    }
    out.push_back(d);
  }
  return out;
}

Result<std::vector<int64_t>> NdArray::ToInt64s() const {
  std::vector<int64_t> out;
  const int64_t n = numel();
  out.reserve(static_cast<size_t>(n));
  if (is_object()) {
    for (const Value* v : objects) {
      if (v->kind != Kind::kInt && v->kind != Kind::kBool) {
        return InvalidInput("expected integers, found a " + v->TypeName());
      }
      out.push_back(v->kind == Kind::kBool ? v->b : v->i);
    }
    return out;
  }
  for (int64_t i = 0; i < n; ++i) {
    double d = 0;
    int64_t iv = 0;
    if (!LoadNumber(dtype, data.data() + i * dtype.itemsize, &d, &iv)) {
      return InvalidInput("expected a numeric array, found dtype " + dtype.Name());
    }
    out.push_back(iv);
  }
  return out;
}

Result<std::vector<double>> NdArray::FieldAsDoubles(std::string_view name) const {
  const DTypeDesc::Field* f = dtype.FindField(name);
  if (!f) return InvalidInput("the array has no field '" + std::string(name) + "'");
  if (f->offset < 0 || f->offset + f->type->itemsize > dtype.itemsize) {
    return InvalidInput("field '" + std::string(name) + "' lies outside its record");
  }
  std::vector<double> out;
  const int64_t n = numel();
  out.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    double d = 0;
    if (!LoadNumber(*f->type, data.data() + i * dtype.itemsize + f->offset, &d, nullptr)) {
      return InvalidInput("field '" + std::string(name) + "' has non-numeric dtype " +
                          f->type->Name());
    }
    out.push_back(d);
  }
  return out;
}

Result<std::vector<std::string>> NdArray::ToStrings() const {
  std::vector<std::string> out;
  const int64_t n = numel();
  if (is_object()) {
    for (const Value* v : objects) {
      if (v->kind != Kind::kStr && v->kind != Kind::kBytes) {
        return InvalidInput("expected strings, found a " + v->TypeName());
      }
      out.push_back(v->s);
    }
    return out;
  }
  if (dtype.kind == 'S' || dtype.kind == 'U') {
    // Each element becomes a std::string: for 1-byte items that is ~32x the array's bytes,
    // so the copy is bounded like the reader's own budget (8 x the data + 64 MiB).
    constexpr size_t kSlack = size_t{64} << 20;
    const size_t need = static_cast<size_t>(n) * sizeof(std::string);
    if (need > data.size() * 8 + kSlack) {
      return InvalidInput("a string array of " + std::to_string(n) + " elements would need " +
                          std::to_string(need >> 20) +
                          " MiB as strings, more than its allocation budget; refusing it");
    }
    out.reserve(static_cast<size_t>(n));
  }
  if (dtype.kind == 'S') {
    for (int64_t i = 0; i < n; ++i) {
      std::string s(data.data() + i * dtype.itemsize, static_cast<size_t>(dtype.itemsize));
      s.erase(std::find(s.begin(), s.end(), '\0'), s.end());
      out.push_back(std::move(s));
    }
    return out;
  }
  if (dtype.kind == 'U') {
    const int64_t chars = dtype.itemsize / 4;
    for (int64_t i = 0; i < n; ++i) {
      std::string s;
      for (int64_t c = 0; c < chars; ++c) {
        uint32_t cp = Load<uint32_t>(data.data() + i * dtype.itemsize + c * 4, dtype.big_endian);
        if (cp == 0) break;
        if (cp > 0x10FFFF) cp = 0xFFFD;
        AppendUtf8(s, cp);
      }
      out.push_back(std::move(s));
    }
    return out;
  }
  return InvalidInput("expected strings, found dtype " + dtype.Name());
}

const Value* Value::Get(std::string_view key) const {
  if (kind != Kind::kDict) return nullptr;
  for (const auto& [k, v] : entries) {
    if (k->kind == Kind::kStr && k->s == key) return v;
  }
  return nullptr;
}

std::string Value::TypeName() const {
  switch (kind) {
    case Kind::kNone:
      return "None";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
    case Kind::kBigInt:
      return "int";
    case Kind::kFloat:
      return "float";
    case Kind::kStr:
      return "str";
    case Kind::kBytes:
      return "bytes";
    case Kind::kList:
      return "list";
    case Kind::kTuple:
      return "tuple";
    case Kind::kDict:
      return "dict";
    case Kind::kSet:
      return "set";
    case Kind::kObject: {
      size_t dot = cls.rfind('.');
      return dot == std::string::npos ? cls : cls.substr(dot + 1);
    }
    case Kind::kGlobal:
      return "class " + s;
    case Kind::kNdArray:
      return "ndarray";
    case Kind::kDType:
      return "dtype";
  }
  return "value";
}

}  // namespace serveml::importers::pickle
