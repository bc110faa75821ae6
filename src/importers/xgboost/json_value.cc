#include "importers/xgboost/json_value.h"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "core/utf8.h"

namespace serveml::importers::xgboost {

const Value* Value::Find(std::string_view key) const {
  if (kind != Kind::kObject) return nullptr;
  for (const auto& [k, v] : members) {
    if (k == key) return &v;
  }
  return nullptr;
}

namespace {

// The allocation accounting both readers share (and a nested 'H' number parse with them).
class Budgeted {
 protected:
  explicit Budgeted(AllocBudget* budget) : budget_(budget) {}

  Status Charge(size_t bytes) { return budget_->Charge(bytes); }
  template <typename T>
  Status Reserve(std::vector<T>& v, size_t extra) {
    return budget_->Reserve(v, extra);
  }

  // Appends `v` to array `arr`, keeping the all-numbers representation while it holds.
  Status AppendToArray(Value& arr, Value&& v) {
    if (arr.items.empty() && v.kind == Value::Kind::kNumber) {
      RETURN_IF_ERROR(Reserve(arr.numbers, 1));
      arr.numbers.push_back(v.number);
      return Status::Ok();
    }
    if (!arr.numbers.empty()) {
      RETURN_IF_ERROR(Reserve(arr.items, arr.numbers.size() + 1));
      for (double d : arr.numbers) {
        Value n;
        n.kind = Value::Kind::kNumber;
        n.number = d;
        arr.items.push_back(std::move(n));
      }
      arr.numbers.clear();
      arr.numbers.shrink_to_fit();
    }
    RETURN_IF_ERROR(Reserve(arr.items, 1));
    arr.items.push_back(std::move(v));
    return Status::Ok();
  }
  Status AddMember(Value& obj, std::string&& key, Value&& v) {
    RETURN_IF_ERROR(Reserve(obj.members, 1));
    obj.members.emplace_back(std::move(key), std::move(v));
    return Status::Ok();
  }

  AllocBudget* budget_;
};

Status NestingError(const std::string& prefix) {
  return InvalidInput(prefix + "nesting deeper than " + std::to_string(kMaxJsonDepth) +
                      " (nesting depth limit)");
}

// Reads a decimal number token: integers exactly (as double), reals as float32 (see header).
bool ParseDecimal(std::string_view tok, double* out) {
  if (tok.empty()) return false;
  bool is_real = tok.find_first_of(".eE") != std::string_view::npos;
  const char* b = tok.data();
  const char* e = tok.data() + tok.size();
  if (!is_real) {
    int64_t i = 0;
    auto r = std::from_chars(b, e, i);
    if (r.ec == std::errc() && r.ptr == e) {
      *out = static_cast<double>(i);
      return true;
    }
    // Integers beyond int64 fall through to the real path.
  }
  float f = 0;
  auto r = std::from_chars(b, e, f);
  if (r.ptr != e) return false;
  if (r.ec == std::errc::result_out_of_range) {
    // Overflow to +-inf or underflow to 0, as strtof would.
    // The caller strips the sign, so only the exponent's sign matters.
    bool tiny =
        tok.find("e-") != std::string_view::npos || tok.find("E-") != std::string_view::npos;
    f = tiny ? 0.0f : std::numeric_limits<float>::infinity();
  } else if (r.ec != std::errc()) {
    return false;
  }
  *out = static_cast<double>(f);
  return true;
}

class JsonParser : Budgeted {
 public:
  JsonParser(std::string_view s, AllocBudget* budget) : Budgeted(budget), s_(s) {}

  Result<Value> Parse() {
    Value v;
    RETURN_IF_ERROR(ParseValue(v, 0));
    SkipWs();
    if (pos_ != s_.size()) return Error("unexpected data after the end of the document");
    return v;
  }

 private:
  Status Error(const std::string& what) const {
    return InvalidInput("malformed JSON at byte " + std::to_string(pos_) + ": " + what);
  }
  void SkipWs() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\r' || s_[pos_] == '\t')) {
      ++pos_;
    }
  }
  bool Consume(std::string_view lit) {
    if (s_.substr(pos_, lit.size()) == lit) {
      pos_ += lit.size();
      return true;
    }
    return false;
  }

  Status ParseValue(Value& v, int depth) {
    SkipWs();
    if (pos_ >= s_.size()) return Error("unexpected end of input");
    char c = s_[pos_];
    if (c == '{' || c == '[') {
      if (depth >= kMaxJsonDepth) {
        return NestingError("malformed JSON at byte " + std::to_string(pos_) + ": ");
      }
      return c == '{' ? ParseObject(v, depth + 1) : ParseArray(v, depth + 1);
    }
    if (c == '"') {
      v.kind = Value::Kind::kString;
      return ParseString(v.str);  // charged by ParseString
    }
    if (Consume("true")) {
      v.kind = Value::Kind::kBool;
      v.boolean = true;
      return Status::Ok();
    }
    if (Consume("false")) {
      v.kind = Value::Kind::kBool;
      return Status::Ok();
    }
    if (Consume("null")) {
      v.kind = Value::Kind::kNull;
      return Status::Ok();
    }
    v.kind = Value::Kind::kNumber;
    if (Consume("NaN")) {
      v.number = std::numeric_limits<double>::quiet_NaN();
      return Status::Ok();
    }
    if (Consume("Infinity")) {
      v.number = std::numeric_limits<double>::infinity();
      return Status::Ok();
    }
    if (Consume("-Infinity")) {
      v.number = -std::numeric_limits<double>::infinity();
      return Status::Ok();
    }
    return ParseNumber(v.number);
  }

  Status ParseNumber(double& out) {
    size_t start = pos_;
    auto digits = [&] {
      size_t d = pos_;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
      return pos_ > d;
    };
    if (pos_ < s_.size() && s_[pos_] == '-') ++pos_;
    if (!digits()) return Error("expected a value");
    if (pos_ < s_.size() && s_[pos_] == '.') {
      ++pos_;
      if (!digits()) return Error("expected digits after '.'");
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      if (!digits()) return Error("expected digits in the exponent");
    }
    std::string_view tok = s_.substr(start, pos_ - start);
    if (!tok.empty() && tok[0] == '-') {
      double d = 0;
      if (!ParseDecimal(tok.substr(1), &d)) return Error("bad number");
      out = -d;
      return Status::Ok();
    }
    if (!ParseDecimal(tok, &out)) return Error("bad number");
    return Status::Ok();
  }

  Status ParseHex4(uint32_t* cp) {
    if (s_.size() - pos_ < 4) return Error("truncated \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      char h = s_[pos_++];
      v <<= 4;
      if (h >= '0' && h <= '9')
        v |= static_cast<uint32_t>(h - '0');
      else if (h >= 'a' && h <= 'f')
        v |= static_cast<uint32_t>(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F')
        v |= static_cast<uint32_t>(h - 'A' + 10);
      else
        return Error("bad \\u escape");
    }
    *cp = v;
    return Status::Ok();
  }

  // Reads a string into `out`, charging its size. Each output byte consumes at least one
  // input byte, so the string is bounded by the input before it is charged.
  Status ParseString(std::string& out) {
    RETURN_IF_ERROR(ParseStringBody(out));
    return Charge(out.capacity());
  }
  Status ParseStringBody(std::string& out) {
    ++pos_;  // opening quote
    while (true) {
      if (pos_ >= s_.size()) return Error("unterminated string");
      char c = s_[pos_++];
      if (c == '"') return Status::Ok();
      if (static_cast<unsigned char>(c) < 0x20) return Error("control character in a string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= s_.size()) return Error("unterminated string");
      char e = s_[pos_++];
      switch (e) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          uint32_t cp = 0;
          RETURN_IF_ERROR(ParseHex4(&cp));
          if (cp >= 0xD800 && cp < 0xDC00 && Consume("\\u")) {
            uint32_t lo = 0;
            RETURN_IF_ERROR(ParseHex4(&lo));
            if (lo < 0xDC00 || lo > 0xDFFF) return Error("bad surrogate pair");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          AppendUtf8(out, cp);
          break;
        }
        default:
          return Error("bad escape");
      }
    }
  }

  Status ParseArray(Value& v, int depth) {
    v.kind = Value::Kind::kArray;
    ++pos_;
    SkipWs();
    if (pos_ < s_.size() && s_[pos_] == ']') {
      ++pos_;
      return Status::Ok();
    }
    while (true) {
      Value item;
      RETURN_IF_ERROR(ParseValue(item, depth));
      RETURN_IF_ERROR(AppendToArray(v, std::move(item)));
      SkipWs();
      if (pos_ >= s_.size()) return Error("unterminated array");
      char c = s_[pos_++];
      if (c == ']') return Status::Ok();
      if (c != ',') return Error("expected ',' or ']'");
    }
  }

  Status ParseObject(Value& v, int depth) {
    v.kind = Value::Kind::kObject;
    ++pos_;
    SkipWs();
    if (pos_ < s_.size() && s_[pos_] == '}') {
      ++pos_;
      return Status::Ok();
    }
    while (true) {
      SkipWs();
      if (pos_ >= s_.size() || s_[pos_] != '"') return Error("expected a member name");
      std::string key;
      RETURN_IF_ERROR(ParseString(key));
      SkipWs();
      if (pos_ >= s_.size() || s_[pos_] != ':') return Error("expected ':'");
      ++pos_;
      Value item;
      RETURN_IF_ERROR(ParseValue(item, depth));
      RETURN_IF_ERROR(AddMember(v, std::move(key), std::move(item)));
      SkipWs();
      if (pos_ >= s_.size()) return Error("unterminated object");
      char c = s_[pos_++];
      if (c == '}') return Status::Ok();
      if (c != ',') return Error("expected ',' or '}'");
    }
  }

  std::string_view s_;
  size_t pos_ = 0;
};

class UbjsonParser : Budgeted {
 public:
  UbjsonParser(std::string_view s, AllocBudget* budget) : Budgeted(budget), s_(s) {}

  Result<Value> Parse() {
    Value v;
    char marker = 0;
    RETURN_IF_ERROR(ReadMarker(&marker));
    RETURN_IF_ERROR(ReadValue(marker, v, 0));
    while (pos_ < s_.size() && s_[pos_] == 'N') ++pos_;  // trailing no-ops
    if (pos_ != s_.size()) return Error("unexpected data after the end of the document");
    return v;
  }

 private:
  Status Error(const std::string& what) const {
    return InvalidInput("malformed UBJSON at byte " + std::to_string(pos_) + ": " + what);
  }
  size_t Remaining() const { return s_.size() - pos_; }

  Status ReadMarker(char* m) {
    do {
      if (pos_ >= s_.size()) return Error("unexpected end of input");
      *m = s_[pos_++];
    } while (*m == 'N');
    return Status::Ok();
  }

  template <typename T>
  Status ReadBigEndian(T* out) {
    if (Remaining() < sizeof(T)) return Error("unexpected end of input");
    unsigned char b[sizeof(T)];
    std::memcpy(b, s_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    if constexpr (std::endian::native == std::endian::little) {
      for (size_t i = 0; i < sizeof(T) / 2; ++i) std::swap(b[i], b[sizeof(T) - 1 - i]);
    }
    std::memcpy(out, b, sizeof(T));
    return Status::Ok();
  }

  // Reads an integer payload of type `m` into *out. Returns false (no error) for other types.
  Status ReadInteger(char m, int64_t* out, bool* is_int) {
    *is_int = true;
    switch (m) {
      case 'i': {
        int8_t v = 0;
        RETURN_IF_ERROR(ReadBigEndian(&v));
        *out = v;
        break;
      }
      case 'U': {
        uint8_t v = 0;
        RETURN_IF_ERROR(ReadBigEndian(&v));
        *out = v;
        break;
      }
      case 'I': {
        int16_t v = 0;
        RETURN_IF_ERROR(ReadBigEndian(&v));
        *out = v;
        break;
      }
      case 'l': {
        int32_t v = 0;
        RETURN_IF_ERROR(ReadBigEndian(&v));
        *out = v;
        break;
      }
      case 'L': {
        int64_t v = 0;
        RETURN_IF_ERROR(ReadBigEndian(&v));
        *out = v;
        break;
      }
      default:
        *is_int = false;
    }
    return Status::Ok();
  }

  // A length or count: an integer marker and payload, non-negative and at most
  // Remaining() / min_element_bytes (every element needs at least that many bytes).
  Status ReadCount(size_t min_element_bytes, size_t* out) {
    char m = 0;
    RETURN_IF_ERROR(ReadMarker(&m));
    return ReadCountPayload(m, min_element_bytes, out);
  }
  Status ReadCountPayload(char m, size_t min_element_bytes, size_t* out) {
    int64_t n = 0;
    bool is_int = false;
    RETURN_IF_ERROR(ReadInteger(m, &n, &is_int));
    if (!is_int)
      return Error(std::string("expected an integer length, found marker '") + Printable(m) + "'");
    if (n < 0) return Error("negative length " + std::to_string(n));
    if (static_cast<uint64_t>(n) > Remaining() / std::max<size_t>(min_element_bytes, 1)) {
      return Error("declared length " + std::to_string(n) + " exceeds the " +
                   std::to_string(Remaining()) + " remaining bytes");
    }
    *out = static_cast<size_t>(n);
    return Status::Ok();
  }

  static std::string Printable(char c) {
    if (c >= 0x20 && c < 0x7F) return std::string(1, c);
    char buf[8];
    std::snprintf(buf, sizeof(buf), "\\x%02x", static_cast<unsigned char>(c));
    return buf;
  }

  Status ReadString(std::string* out) {
    size_t n = 0;
    RETURN_IF_ERROR(ReadCount(1, &n));
    RETURN_IF_ERROR(Charge(n));
    out->assign(s_.data() + pos_, n);
    pos_ += n;
    return Status::Ok();
  }

  // Payload bytes of a fixed-size scalar type (0 for non-scalars and markers without payload).
  static size_t ScalarSize(char m) {
    switch (m) {
      case 'i':
      case 'U':
      case 'C':
        return 1;
      case 'I':
        return 2;
      case 'l':
      case 'd':
        return 4;
      case 'L':
      case 'D':
        return 8;
      default:
        return 0;
    }
  }

  Status ReadValue(char m, Value& v, int depth) {
    int64_t i = 0;
    bool is_int = false;
    RETURN_IF_ERROR(ReadInteger(m, &i, &is_int));
    if (is_int) {
      v.kind = Value::Kind::kNumber;
      v.number = static_cast<double>(i);
      return Status::Ok();
    }
    switch (m) {
      case 'Z':
        v.kind = Value::Kind::kNull;
        return Status::Ok();
      case 'T':
      case 'F':
        v.kind = Value::Kind::kBool;
        v.boolean = m == 'T';
        return Status::Ok();
      case 'd': {
        float f = 0;
        RETURN_IF_ERROR(ReadBigEndian(&f));
        v.kind = Value::Kind::kNumber;
        v.number = f;
        return Status::Ok();
      }
      case 'D': {
        double d = 0;
        RETURN_IF_ERROR(ReadBigEndian(&d));
        v.kind = Value::Kind::kNumber;
        v.number = d;
        return Status::Ok();
      }
      case 'C':
        if (Remaining() < 1) return Error("unexpected end of input");
        v.kind = Value::Kind::kString;
        v.str.assign(1, s_[pos_++]);
        return Status::Ok();
      case 'S':
        v.kind = Value::Kind::kString;
        return ReadString(&v.str);
      case 'H': {
        std::string text;
        RETURN_IF_ERROR(ReadString(&text));
        auto parsed = JsonParser(text, budget_).Parse();
        if (!parsed.ok() || !parsed->is_number()) return Error("bad high-precision number");
        v = std::move(parsed).value();
        return Status::Ok();
      }
      case '[':
      case '{':
        if (depth >= kMaxJsonDepth) {
          return NestingError("malformed UBJSON at byte " + std::to_string(pos_) + ": ");
        }
        return m == '[' ? ReadArray(v, depth + 1) : ReadObject(v, depth + 1);
      default:
        return Error(std::string("unknown marker '") + Printable(m) + "'");
    }
  }

  // Reads the optional "$type" and "#count" of a container. `type` 0 = untyped; `counted`
  // false = terminated by ']' / '}'.
  Status ReadContainerHeader(char* type, bool* counted, size_t* count, bool object) {
    *type = 0;
    *counted = false;
    *count = 0;
    if (Remaining() >= 1 && s_[pos_] == '$') {
      ++pos_;
      if (Remaining() < 1) return Error("unexpected end of input");
      *type = s_[pos_++];
      if (ScalarSize(*type) == 0 && *type != 'S' && *type != 'H') {
        return Error(std::string("unsupported container element type '") + Printable(*type) + "'");
      }
      if (Remaining() < 1 || s_[pos_] != '#') return Error("a typed container needs a count");
    }
    if (Remaining() >= 1 && s_[pos_] == '#') {
      ++pos_;
      size_t min_bytes = *type ? std::max<size_t>(ScalarSize(*type), 1) : 1;
      if (object) min_bytes += 2;  // key length marker + payload at least
      RETURN_IF_ERROR(ReadCount(min_bytes, count));
      *counted = true;
    }
    return Status::Ok();
  }

  // One element of a typed container: the payload of scalar type `type` (no marker).
  Status ReadTyped(char type, Value& v) { return ReadValue(type, v, kMaxJsonDepth); }

  Status ReadArray(Value& v, int depth) {
    v.kind = Value::Kind::kArray;
    char type = 0;
    bool counted = false;
    size_t count = 0;
    RETURN_IF_ERROR(ReadContainerHeader(&type, &counted, &count, false));
    if (counted && type != 0 && type != 'C' && type != 'S' && type != 'H') {
      // Fast path: a typed numeric array.
      RETURN_IF_ERROR(Reserve(v.numbers, count));
      for (size_t k = 0; k < count; ++k) {
        Value item;
        RETURN_IF_ERROR(ReadTyped(type, item));
        v.numbers.push_back(item.number);
      }
      return Status::Ok();
    }
    for (size_t k = 0; !counted || k < count; ++k) {
      Value item;
      if (type != 0) {
        RETURN_IF_ERROR(ReadTyped(type, item));
      } else {
        char m = 0;
        RETURN_IF_ERROR(ReadMarker(&m));
        if (!counted && m == ']') return Status::Ok();
        RETURN_IF_ERROR(ReadValue(m, item, depth));
      }
      RETURN_IF_ERROR(AppendToArray(v, std::move(item)));
    }
    return Status::Ok();
  }

  Status ReadObject(Value& v, int depth) {
    v.kind = Value::Kind::kObject;
    char type = 0;
    bool counted = false;
    size_t count = 0;
    RETURN_IF_ERROR(ReadContainerHeader(&type, &counted, &count, true));
    for (size_t k = 0; !counted || k < count; ++k) {
      char m = 0;
      RETURN_IF_ERROR(ReadMarker(&m));
      if (!counted && m == '}') return Status::Ok();
      size_t n = 0;
      RETURN_IF_ERROR(ReadCountPayload(m, 1, &n));
      RETURN_IF_ERROR(Charge(n));
      std::string key(s_.data() + pos_, n);
      pos_ += n;
      Value item;
      if (type != 0) {
        RETURN_IF_ERROR(ReadTyped(type, item));
      } else {
        char vm = 0;
        RETURN_IF_ERROR(ReadMarker(&vm));
        RETURN_IF_ERROR(ReadValue(vm, item, depth));
      }
      RETURN_IF_ERROR(AddMember(v, std::move(key), std::move(item)));
    }
    return Status::Ok();
  }

  std::string_view s_;
  size_t pos_ = 0;
};

}  // namespace

Result<Value> ParseJson(std::string_view text, const BoostingLimits& limits) {
  AllocBudget budget("the JSON document", text.size(), limits);
  return JsonParser(text, &budget).Parse();
}

Result<Value> ParseUbjson(std::string_view bytes, const BoostingLimits& limits) {
  AllocBudget budget("the UBJSON document", bytes.size(), limits);
  return UbjsonParser(bytes, &budget).Parse();
}

}  // namespace serveml::importers::xgboost
