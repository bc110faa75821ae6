// Text operators on string tensors: StringNormalizer (opset 10), StringConcat, StringSplit and
// RegexFullMatch (opset 20), and TfIdfVectorizer (opset 9, int32/int64/string input).
//
// Strings are UTF-8 byte strings. Semantics follow onnxruntime where it defines them (the
// ONNX reference implementation in onnx/reference/ops/op_*.py otherwise):
//  - StringNormalizer removes whole elements equal to a stopword (compared case-insensitively
//    through the lower-case mapping below unless is_case_sensitive), then applies the case
//    change. Input [C] or [1, C] with C > 0; when every element is removed the output is one
//    empty string ([1] or [1, 1]). Case mapping is the simple one-to-one Unicode mapping of
//    glibc's towupper/towlower for ASCII, Latin-1, Latin Extended-A, the Latin digraphs
//    (DŽ/Lj/Nj/Dz), Latin Extended Additional, Greek, Cyrillic, Armenian and fullwidth Latin
//    letters; other characters are unchanged, and letters whose upper case is several
//    characters (ß) keep their form. Locales "C"/"POSIX" map ASCII only ("C.UTF-8" and the
//    language locales such as "" or "en_US" map as above); Turkish, Azeri and Lithuanian
//    locales (language-specific rules) are refused at load.
//  - StringSplit follows the ONNX reference (Python's str.split): an empty or missing
//    delimiter splits on runs of Unicode whitespace and drops leading whitespace (and trailing
//    whitespace unless `maxsplit` stopped the splitting); `maxsplit` bounds the splits; an
//    empty string with a delimiter gives one empty substring. (onnxruntime differs: it splits
//    on spaces only and gives no substring for an empty string.)
//  - RegexFullMatch takes an RE2 pattern, translated at load into an ECMAScript regex run by
//    std::wregex over code points in libstdc++'s polynomial (Thompson NFA) mode, so matching
//    time is linear in the input and stack use does not grow with it. Patterns using RE2
//    features that have no equivalent here are refused at load, naming the construct:
//    Unicode classes (\p, \P), \C, octal escapes, flag groups other than a leading (?i), and
//    the non-RE2 constructs lookaround and backreferences. \w, \d, \s, \b are ASCII as in
//    RE2. Limits: `.` excludes \r as well as \n (RE2: \n only), and (?i) is only guaranteed
//    to fold ASCII letters (RE2 folds Unicode).
#include <algorithm>
#include <cstdio>
#include <cwchar>
#include <regex>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>

#include "core/utf8.h"
#include "engine/kernel.h"
#include "engine/ops/broadcast.h"
#include "engine/ops/dispatch.h"
#include "engine/ops/ops.h"

namespace serveml::engine {
namespace {

std::vector<int64_t> DimsOf(const Tensor& t) {
  return std::vector<int64_t>(t.shape().begin(), t.shape().end());
}

Status NeedStrings(const Tensor* x, std::string_view op, std::string_view what) {
  if (!x) return InvalidInput(std::string(op) + " needs input " + std::string(what));
  if (x->dtype() != DType::kString) {
    return InvalidInput(std::string(op) + " input " + std::string(what) +
                        " must be a string tensor, got " + std::string(DTypeName(x->dtype())));
  }
  return Status::Ok();
}

// ---- UTF-8 ----------------------------------------------------------------------------------

// Decodes the code point at s[i], advancing i. Returns false on malformed UTF-8 (overlong
// forms, surrogates, values above U+10FFFF, truncated sequences).
bool DecodeUtf8(std::string_view s, size_t& i, char32_t& cp) {
  const unsigned char c = static_cast<unsigned char>(s[i]);
  int len;
  char32_t v;
  if (c < 0x80) {
    cp = c;
    ++i;
    return true;
  } else if ((c & 0xE0) == 0xC0) {
    len = 2;
    v = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3;
    v = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4;
    v = c & 0x07;
  } else {
    return false;
  }
  if (i + len > s.size()) return false;
  for (int k = 1; k < len; ++k) {
    const unsigned char cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xC0) != 0x80) return false;
    v = (v << 6) | (cc & 0x3F);
  }
  static constexpr char32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (v < kMin[len] || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return false;
  cp = v;
  i += len;
  return true;
}

// ---- case mapping ---------------------------------------------------------------------------

// In a range of alternating upper/lower pairs starting at `first` (an upper-case letter).
bool InPairs(char32_t c, char32_t first, char32_t last) { return c >= first && c <= last; }

char32_t ToUpperCp(char32_t c, bool ascii_only) {
  if (c >= 'a' && c <= 'z') return c - 0x20;
  if (c < 0x80 || ascii_only) return c;
  if (c == 0xB5) return 0x39C;
  if ((c >= 0xE0 && c <= 0xFE && c != 0xF7)) return c - 0x20;
  if (c == 0xFF) return 0x178;
  if (c == 0x131) return 'I';
  if (c == 0x17F) return 'S';
  if ((InPairs(c, 0x100, 0x12F) || InPairs(c, 0x132, 0x137) || InPairs(c, 0x14A, 0x177)) && (c & 1))
    return c - 1;
  if ((InPairs(c, 0x139, 0x148) || InPairs(c, 0x179, 0x17E)) && !(c & 1)) return c - 1;
  if (c == 0x1C5 || c == 0x1C6) return 0x1C4;
  if (c == 0x1C8 || c == 0x1C9) return 0x1C7;
  if (c == 0x1CB || c == 0x1CC) return 0x1CA;
  if (c == 0x1F2 || c == 0x1F3) return 0x1F1;
  // Greek
  if (c == 0x3AC) return 0x386;
  if (c >= 0x3AD && c <= 0x3AF) return c - 0x25;
  if (c == 0x3C2) return 0x3A3;
  if (c >= 0x3B1 && c <= 0x3CB) return c - 0x20;
  if (c == 0x3CC) return 0x38C;
  if (c == 0x3CD || c == 0x3CE) return c - 0x3F;
  // Cyrillic
  if (c >= 0x430 && c <= 0x44F) return c - 0x20;
  if (c >= 0x450 && c <= 0x45F) return c - 0x50;
  if ((InPairs(c, 0x460, 0x481) || InPairs(c, 0x48A, 0x4BF)) && (c & 1)) return c - 1;
  // Armenian
  if (c >= 0x561 && c <= 0x586) return c - 0x30;
  // Latin Extended Additional (U+1E96..U+1E9F have no simple upper case)
  if ((InPairs(c, 0x1E00, 0x1E95) || InPairs(c, 0x1EA0, 0x1EFF)) && (c & 1)) return c - 1;
  // Fullwidth Latin
  if (c >= 0xFF41 && c <= 0xFF5A) return c - 0x20;
  return c;
}

char32_t ToLowerCp(char32_t c, bool ascii_only) {
  if (c >= 'A' && c <= 'Z') return c + 0x20;
  if (c < 0x80 || ascii_only) return c;
  if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return c + 0x20;
  if (c == 0x130) return 'i';
  if (c == 0x178) return 0xFF;
  if ((InPairs(c, 0x100, 0x12F) || InPairs(c, 0x132, 0x137) || InPairs(c, 0x14A, 0x177)) &&
      !(c & 1))
    return c + 1;
  if ((InPairs(c, 0x139, 0x148) || InPairs(c, 0x179, 0x17E)) && (c & 1)) return c + 1;
  if (c == 0x1C4 || c == 0x1C5) return 0x1C6;
  if (c == 0x1C7 || c == 0x1C8) return 0x1C9;
  if (c == 0x1CA || c == 0x1CB) return 0x1CC;
  if (c == 0x1F1 || c == 0x1F2) return 0x1F3;
  // Greek
  if (c == 0x386) return 0x3AC;
  if (c >= 0x388 && c <= 0x38A) return c + 0x25;
  if (c == 0x38C) return 0x3CC;
  if (c == 0x38E || c == 0x38F) return c + 0x3F;
  if (c >= 0x391 && c <= 0x3AB && c != 0x3A2) return c + 0x20;
  // Cyrillic
  if (c >= 0x410 && c <= 0x42F) return c + 0x20;
  if (c >= 0x400 && c <= 0x40F) return c + 0x50;
  if ((InPairs(c, 0x460, 0x481) || InPairs(c, 0x48A, 0x4BF)) && !(c & 1)) return c + 1;
  // Armenian
  if (c >= 0x531 && c <= 0x556) return c + 0x30;
  // Latin Extended Additional
  if ((InPairs(c, 0x1E00, 0x1E95) || InPairs(c, 0x1EA0, 0x1EFF)) && !(c & 1)) return c + 1;
  // Fullwidth Latin
  if (c >= 0xFF21 && c <= 0xFF3A) return c + 0x20;
  return c;
}

enum class CaseAction { kNone, kLower, kUpper };

// Maps every code point of `s`. InvalidInput on malformed UTF-8.
Result<std::string> ChangeCase(std::string_view s, CaseAction action, bool ascii_only) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    char32_t cp;
    if (!DecodeUtf8(s, i, cp)) {
      return InvalidInput("StringNormalizer input is not valid UTF-8 (byte offset " +
                          std::to_string(i) + ")");
    }
    AppendUtf8(out,
               static_cast<uint32_t>(action == CaseAction::kUpper ? ToUpperCp(cp, ascii_only)
                                                                  : ToLowerCp(cp, ascii_only)));
  }
  return out;
}

// ---- StringNormalizer -----------------------------------------------------------------------

class StringNormalizerKernel final : public Kernel {
 public:
  StringNormalizerKernel(CaseAction action, bool case_sensitive, bool ascii_only,
                         std::vector<std::string> stopwords)
      : action_(action), case_sensitive_(case_sensitive), ascii_only_(ascii_only) {
    for (auto& w : stopwords) stopwords_.insert(std::move(w));
  }

  // Lower-cases the stopwords for case-insensitive comparison.
  Status Init() {
    if (case_sensitive_) return Status::Ok();
    std::unordered_set<std::string> lowered;
    for (const std::string& w : stopwords_) {
      ASSIGN_OR_RETURN(std::string l, ChangeCase(w, CaseAction::kLower, ascii_only_));
      lowered.insert(std::move(l));
    }
    stopwords_ = std::move(lowered);
    return Status::Ok();
  }

  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    RETURN_IF_ERROR(NeedStrings(x, "StringNormalizer", "X"));
    const bool two_d = x->rank() == 2;
    if (!((x->rank() == 1 && x->dim(0) > 0) || (two_d && x->dim(0) == 1 && x->dim(1) > 0))) {
      return InvalidInput("StringNormalizer input must have shape [C] or [1, C] with C > 0, got " +
                          ShapeToString(x->shape()));
    }
    std::vector<std::string> kept;
    kept.reserve(x->numel());
    for (const std::string& s : x->strings()) {
      if (!stopwords_.empty()) {
        if (case_sensitive_) {
          if (stopwords_.count(s)) continue;
        } else {
          ASSIGN_OR_RETURN(std::string l, ChangeCase(s, CaseAction::kLower, ascii_only_));
          if (stopwords_.count(l)) continue;
        }
      }
      if (action_ == CaseAction::kNone) {
        kept.push_back(s);
      } else {
        ASSIGN_OR_RETURN(std::string c, ChangeCase(s, action_, ascii_only_));
        kept.push_back(std::move(c));
      }
    }
    if (kept.empty()) kept.emplace_back();
    const int64_t n = static_cast<int64_t>(kept.size());
    std::vector<int64_t> shape = two_d ? std::vector<int64_t>{1, n} : std::vector<int64_t>{n};
    ASSIGN_OR_RETURN(Tensor y, NewTensor(DType::kString, shape));
    y.strings() = std::move(kept);
    *ctx.outputs[0] = std::move(y);
    return Status::Ok();
  }

 private:
  CaseAction action_;
  bool case_sensitive_;
  bool ascii_only_;
  std::unordered_set<std::string> stopwords_;
};

// ---- StringConcat ---------------------------------------------------------------------------

class StringConcatKernel final : public Kernel {
 public:
  Status Run(KernelContext& ctx) const override {
    const Tensor* a = ctx.input(0);
    const Tensor* b = ctx.input(1);
    RETURN_IF_ERROR(NeedStrings(a, "StringConcat", "X"));
    RETURN_IF_ERROR(NeedStrings(b, "StringConcat", "Y"));
    const std::vector<int64_t> sa = DimsOf(*a), sb = DimsOf(*b);
    std::vector<int64_t> shape;
    RETURN_IF_ERROR(BroadcastShape(sa, sb, &shape));
    ASSIGN_OR_RETURN(Tensor y, NewTensor(DType::kString, shape));
    const std::vector<std::string>& xa = a->strings();
    const std::vector<std::string>& xb = b->strings();
    std::vector<std::string>& out = y.strings();
    BroadcastPlan plan = MakeBroadcastPlan(sa, sb, shape);
    ForEachBroadcastRun(
        plan, [&](int64_t oa, int64_t ob, int64_t oo, int64_t len, int64_t step_a, int64_t step_b) {
          for (int64_t i = 0; i < len; ++i) {
            const std::string& l = xa[oa + i * step_a];
            const std::string& r = xb[ob + i * step_b];
            std::string& o = out[oo + i];
            o.reserve(l.size() + r.size());
            o.append(l).append(r);
          }
        });
    *ctx.outputs[0] = std::move(y);
    return Status::Ok();
  }
};

// ---- StringSplit ----------------------------------------------------------------------------

// Python's str.isspace for one code point.
bool IsUnicodeSpace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

// Byte length of the whitespace code point at s[i], or 0 when s[i] does not start one
// (malformed bytes count as non-space).
size_t SpaceAt(std::string_view s, size_t i) {
  size_t j = i;
  char32_t cp;
  if (!DecodeUtf8(s, j, cp)) return 0;
  return IsUnicodeSpace(cp) ? j - i : 0;
}

// Byte length of the (non-space) character at s[i]: a code point, or one malformed byte.
size_t CharAt(std::string_view s, size_t i) {
  size_t j = i;
  char32_t cp;
  return DecodeUtf8(s, j, cp) ? j - i : 1;
}

// str.split(None, maxsplit): CPython's split_whitespace on code points.
void SplitWhitespace(std::string_view s, int64_t maxsplit, std::vector<std::string>& parts) {
  size_t i = 0;
  const size_t n = s.size();
  int64_t left = maxsplit < 0 ? INT64_MAX : maxsplit;
  while (left-- > 0) {
    while (i < n) {
      const size_t w = SpaceAt(s, i);
      if (!w) break;
      i += w;
    }
    if (i == n) break;
    const size_t j = i;
    i += CharAt(s, i);
    while (i < n && !SpaceAt(s, i)) i += CharAt(s, i);
    parts.emplace_back(s.substr(j, i - j));
  }
  if (i < n) {
    while (i < n) {
      const size_t w = SpaceAt(s, i);
      if (!w) break;
      i += w;
    }
    if (i != n) parts.emplace_back(s.substr(i));
  }
}

// str.split(sep, maxsplit) with a non-empty separator.
void SplitOn(std::string_view s, std::string_view sep, int64_t maxsplit,
             std::vector<std::string>& parts) {
  int64_t left = maxsplit < 0 ? INT64_MAX : maxsplit;
  size_t start = 0;
  while (left-- > 0) {
    const size_t pos = s.find(sep, start);
    if (pos == std::string_view::npos) break;
    parts.emplace_back(s.substr(start, pos - start));
    start = pos + sep.size();
  }
  parts.emplace_back(s.substr(start));
}

class StringSplitKernel final : public Kernel {
 public:
  StringSplitKernel(std::string delimiter, int64_t maxsplit)
      : delimiter_(std::move(delimiter)), maxsplit_(maxsplit) {}

  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    RETURN_IF_ERROR(NeedStrings(x, "StringSplit", "X"));
    const int64_t n = x->numel();
    std::vector<std::vector<std::string>> parts(n);
    size_t widest = 0;
    for (int64_t i = 0; i < n; ++i) {
      const std::string& s = x->strings()[i];
      if (delimiter_.empty()) {
        SplitWhitespace(s, maxsplit_, parts[i]);
      } else {
        SplitOn(s, delimiter_, maxsplit_, parts[i]);
      }
      widest = std::max(widest, parts[i].size());
    }
    std::vector<int64_t> shape = DimsOf(*x);
    ASSIGN_OR_RETURN(Tensor z, NewTensor(DType::kInt64, shape));
    shape.push_back(static_cast<int64_t>(widest));
    ASSIGN_OR_RETURN(Tensor y, NewTensor(DType::kString, shape));
    std::vector<std::string>& out = y.strings();
    int64_t* counts = z.data<int64_t>();
    for (int64_t i = 0; i < n; ++i) {
      counts[i] = static_cast<int64_t>(parts[i].size());
      for (size_t k = 0; k < parts[i].size(); ++k) {
        out[i * widest + k] = std::move(parts[i][k]);
      }
    }
    *ctx.outputs[0] = std::move(y);
    if (ctx.num_outputs() > 1) *ctx.outputs[1] = std::move(z);
    return Status::Ok();
  }

 private:
  std::string delimiter_;  // empty: split on whitespace runs
  int64_t maxsplit_;       // < 0: unlimited
};

// ---- RegexFullMatch -------------------------------------------------------------------------

std::wstring Utf8ToWide(std::string_view s, bool* ok) {
  std::wstring w;
  w.reserve(s.size());
  size_t i = 0;
  *ok = true;
  while (i < s.size()) {
    char32_t cp;
    if (!DecodeUtf8(s, i, cp)) {
      *ok = false;
      return w;
    }
    w += static_cast<wchar_t>(cp);
  }
  return w;
}

// Translates an RE2 pattern into an equivalent ECMAScript pattern (over code points), or
// refuses it naming the construct. Sets *icase for a leading (?i).
Result<std::wstring> Re2ToEcma(std::string_view pattern, bool* icase) {
  bool ok;
  const std::wstring p = Utf8ToWide(pattern, &ok);
  if (!ok) return InvalidInput("RegexFullMatch pattern is not valid UTF-8");
  auto refuse = [&](std::string what) -> Status {
    return Unsupported("RegexFullMatch pattern \"" + std::string(pattern) + "\": " + what +
                       " is not supported");
  };
  auto hexval = [](wchar_t c) -> int {
    if (c >= L'0' && c <= L'9') return c - L'0';
    if (c >= L'a' && c <= L'f') return c - L'a' + 10;
    if (c >= L'A' && c <= L'F') return c - L'A' + 10;
    return -1;
  };
  // A literal code point, escaped for ECMAScript.
  auto literal = [](wchar_t c, std::wstring& out) {
    if (c != 0 && std::wcschr(L"\\^$.|?*+()[]{}", c)) out += L'\\';
    out += c;
  };
  std::wstring out;
  *icase = false;
  size_t i = 0;
  if (p.compare(0, 4, L"(?i)") == 0) {
    *icase = true;
    i = 4;
  }
  // Translates the escape at p[i] == '\\' (inside a class when `in_class`).
  auto escape = [&](bool in_class) -> Status {
    if (i + 1 >= p.size()) return InvalidInput("RegexFullMatch pattern ends with a backslash");
    const wchar_t c = p[i + 1];
    i += 2;
    switch (c) {
      case L'd':
      case L'D':
      case L'w':
      case L'W':
      case L'n':
      case L'r':
      case L't':
      case L'f':
      case L'v':
        out += L'\\';
        out += c;
        return Status::Ok();
      case L's':  // RE2: [\t\n\f\r ]
        out += in_class ? L"\\t\\n\\f\\r " : L"[\\t\\n\\f\\r ]";
        return Status::Ok();
      case L'S':
        if (in_class) return refuse("\\S inside a character class");
        out += L"[^\\t\\n\\f\\r ]";
        return Status::Ok();
      case L'b':
      case L'B':
        if (in_class) return refuse("\\b inside a character class");
        out += L'\\';
        out += c;
        return Status::Ok();
      case L'a':
        out += L"\\x07";
        return Status::Ok();
      case L'A':
        if (in_class) return refuse("\\A inside a character class");
        out += L'^';
        return Status::Ok();
      case L'z':
        if (in_class) return refuse("\\z inside a character class");
        out += L'$';
        return Status::Ok();
      case L'Q': {
        const size_t end = p.find(L"\\E", i);
        const size_t stop = end == std::wstring::npos ? p.size() : end;
        for (; i < stop; ++i) literal(p[i], out);
        if (end != std::wstring::npos) i = end + 2;
        return Status::Ok();
      }
      case L'x': {
        char32_t v = 0;
        if (i < p.size() && p[i] == L'{') {
          const size_t end = p.find(L'}', i);
          if (end == std::wstring::npos || end == i + 1 || end - i > 9) {
            return InvalidInput("RegexFullMatch pattern has a malformed \\x{...} escape");
          }
          for (size_t k = i + 1; k < end; ++k) {
            const int h = hexval(p[k]);
            if (h < 0)
              return InvalidInput("RegexFullMatch pattern has a malformed \\x{...} escape");
            v = v * 16 + h;
          }
          i = end + 1;
        } else {
          if (i + 2 > p.size() || hexval(p[i]) < 0 || hexval(p[i + 1]) < 0) {
            return InvalidInput("RegexFullMatch pattern has a malformed \\x escape");
          }
          v = hexval(p[i]) * 16 + hexval(p[i + 1]);
          i += 2;
        }
        if (v > 0x10FFFF) return InvalidInput("RegexFullMatch pattern escape beyond U+10FFFF");
        if (v > 0xFFFF) {
          literal(static_cast<wchar_t>(v), out);
        } else {
          wchar_t buf[8];
          std::swprintf(buf, 8, L"\\u%04X", static_cast<unsigned>(v));
          out += buf;
        }
        return Status::Ok();
      }
      case L'p':
      case L'P':
        return refuse("the Unicode class \\" + std::string(1, static_cast<char>(c)));
      case L'C':
        return refuse("\\C (any byte)");
      default:
        break;
    }
    if (c >= L'0' && c <= L'9')
      return refuse("the octal escape or backreference \\" + std::string(1, static_cast<char>(c)));
    if ((c >= L'a' && c <= L'z') || (c >= L'A' && c <= L'Z')) {
      return InvalidInput("RegexFullMatch pattern has the unknown escape \\" +
                          std::string(1, static_cast<char>(c)));
    }
    literal(c, out);  // an escaped punctuation character
    return Status::Ok();
  };
  while (i < p.size()) {
    const wchar_t c = p[i];
    if (c == L'\\') {
      RETURN_IF_ERROR(escape(false));
    } else if (c == L'(') {
      if (i + 1 < p.size() && p[i + 1] == L'?') {
        if (p.compare(i, 3, L"(?:") == 0) {
          out += L"(?:";
          i += 3;
        } else if (p.compare(i, 4, L"(?P<") == 0 ||
                   (p.compare(i, 3, L"(?<") == 0 && p.compare(i, 4, L"(?<=") != 0 &&
                    p.compare(i, 4, L"(?<!") != 0)) {
          const size_t end = p.find(L'>', i);
          if (end == std::wstring::npos) {
            return InvalidInput("RegexFullMatch pattern has an unterminated group name");
          }
          out += L'(';
          i = end + 1;
        } else if (p.compare(i, 3, L"(?=") == 0 || p.compare(i, 3, L"(?!") == 0 ||
                   p.compare(i, 4, L"(?<=") == 0 || p.compare(i, 4, L"(?<!") == 0) {
          return refuse("lookaround (not RE2 syntax)");
        } else {
          return refuse("the flag group at offset " + std::to_string(i) +
                        " (only a leading (?i) is)");
        }
      } else {
        out += L'(';
        ++i;
      }
    } else if (c == L'[') {
      out += L'[';
      ++i;
      if (i < p.size() && p[i] == L'^') {
        out += L'^';
        ++i;
      }
      if (i < p.size() && p[i] == L']') {  // a leading ] is a literal in RE2
        out += L"\\]";
        ++i;
      }
      bool closed = false;
      while (i < p.size()) {
        const wchar_t d = p[i];
        if (d == L']') {
          out += L']';
          ++i;
          closed = true;
          break;
        }
        if (d == L'\\') {
          RETURN_IF_ERROR(escape(true));
        } else if (d == L'[' && i + 1 < p.size() && p[i + 1] == L':') {
          const size_t end = p.find(L":]", i + 2);
          if (end == std::wstring::npos) {
            return InvalidInput("RegexFullMatch pattern has an unterminated [: class");
          }
          out.append(p, i, end + 2 - i);
          i = end + 2;
        } else if (d == L'[') {
          out += L"\\[";
          ++i;
        } else {
          out += d;
          ++i;
        }
      }
      if (!closed) return InvalidInput("RegexFullMatch pattern has an unterminated [ class");
    } else if (c == L'{') {
      // RE2 repetition {n}, {n,}, {n,m} (counts up to 1000); anything else is a literal {.
      size_t k = i + 1;
      int64_t lo = -1, hi = -1;
      auto number = [&](int64_t& v) {
        const size_t s0 = k;
        v = 0;
        while (k < p.size() && p[k] >= L'0' && p[k] <= L'9' && k - s0 < 8) {
          v = v * 10 + (p[k] - L'0');
          ++k;
        }
        return k > s0;
      };
      bool rep = number(lo);
      if (rep && k < p.size() && p[k] == L',') {
        ++k;
        if (!number(hi)) hi = -1;
      } else {
        hi = lo;
      }
      rep = rep && k < p.size() && p[k] == L'}';
      if (rep) {
        if (lo > 1000 || hi > 1000) {
          return refuse("a repetition count above 1000 (RE2's limit)");
        }
        out.append(p, i, k + 1 - i);
        i = k + 1;
      } else {
        out += L"\\{";
        ++i;
      }
    } else if (c == L'}') {
      out += L"\\}";
      ++i;
    } else {
      out += c;
      ++i;
    }
  }
  return out;
}

class RegexFullMatchKernel final : public Kernel {
 public:
  explicit RegexFullMatchKernel(std::wregex re) : re_(std::move(re)) {}

  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    RETURN_IF_ERROR(NeedStrings(x, "RegexFullMatch", "X"));
    ASSIGN_OR_RETURN(Tensor y, NewTensor(DType::kBool, x->shape()));
    bool* out = y.data<bool>();
    for (int64_t i = 0; i < x->numel(); ++i) {
      bool ok;
      const std::wstring w = Utf8ToWide(x->strings()[i], &ok);
      if (!ok) {
        return InvalidInput("RegexFullMatch input element " + std::to_string(i) +
                            " is not valid UTF-8");
      }
      try {
        out[i] = std::regex_match(w, re_);
      } catch (const std::regex_error& e) {
        return InvalidInput("RegexFullMatch failed on element " + std::to_string(i) + ": " +
                            e.what());
      }
    }
    *ctx.outputs[0] = std::move(y);
    return Status::Ok();
  }

 private:
  std::wregex re_;
};

// ---- TfIdfVectorizer ------------------------------------------------------------------------

// The n-gram pool as a trie: node 0 is the root; a node's id is 1 + the n-gram's position in
// the pool (0: a prefix only).
template <typename Key>
struct NgramTrie {
  struct Node {
    int64_t id = 0;
    std::unordered_map<Key, int32_t> next;
  };
  std::vector<Node> nodes{Node{}};

  int32_t Child(int32_t n, const Key& k) const {
    auto it = nodes[n].next.find(k);
    return it == nodes[n].next.end() ? -1 : it->second;
  }
  int32_t Emplace(int32_t n, const Key& k) {
    auto it = nodes[n].next.find(k);
    if (it != nodes[n].next.end()) return it->second;
    const int32_t c = static_cast<int32_t>(nodes.size());
    nodes[n].next.emplace(k, c);
    nodes.emplace_back();
    return c;
  }
};

enum class TfIdfMode { kTF, kIDF, kTFIDF };

struct TfIdfConfig {
  TfIdfMode mode;
  int64_t min_gram, max_gram, max_skip;
  std::vector<int64_t> ngram_indexes;
  std::vector<float> weights;
  int64_t output_size;
};

template <typename Key>
class TfIdfKernel final : public Kernel {
 public:
  TfIdfKernel(TfIdfConfig cfg, NgramTrie<Key> trie)
      : cfg_(std::move(cfg)), trie_(std::move(trie)) {}

  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (!x) return InvalidInput("TfIdfVectorizer needs an input");
    constexpr bool kStrings = std::is_same_v<Key, std::string>;
    if (kStrings != (x->dtype() == DType::kString)) {
      return InvalidInput(std::string("TfIdfVectorizer has a ") + (kStrings ? "string" : "int64") +
                          " pool but got a " + std::string(DTypeName(x->dtype())) + " input");
    }
    if (x->rank() > 2) {
      return InvalidInput("TfIdfVectorizer input must be [C] or [B, C], got " +
                          ShapeToString(x->shape()));
    }
    const bool batched = x->rank() == 2;
    const int64_t rows = batched ? x->dim(0) : 1;
    const int64_t cols = batched ? x->dim(1) : x->numel();
    const int64_t out_cols = cfg_.output_size;
    std::vector<int64_t> shape =
        batched ? std::vector<int64_t>{rows, out_cols} : std::vector<int64_t>{out_cols};
    ASSIGN_OR_RETURN(Tensor y, NewTensor(DType::kFloat32, shape));
    std::vector<int64_t> freq(static_cast<size_t>(rows * out_cols), 0);
    if constexpr (kStrings) {
      CountAll(x->strings().data(), rows, cols, freq.data());
    } else {
      Status st = Dispatch<int32_t, int64_t>(x->dtype(), "TfIdfVectorizer", [&](auto tag) {
        using T = decltype(tag);
        const T* p = x->data<T>();
        std::vector<int64_t> row(static_cast<size_t>(cols));
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t c = 0; c < cols; ++c) row[c] = static_cast<int64_t>(p[r * cols + c]);
          CountRow(row.data(), cols, freq.data() + r * out_cols);
        }
        return Status::Ok();
      });
      RETURN_IF_ERROR(st);
    }
    float* out = y.data<float>();
    const bool weighted = !cfg_.weights.empty();
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t j = 0; j < out_cols; ++j) {
        const int64_t f = freq[r * out_cols + j];
        float v;
        switch (cfg_.mode) {
          case TfIdfMode::kTF:
            v = static_cast<float>(f);
            break;
          case TfIdfMode::kIDF:
            v = f > 0 ? (weighted ? cfg_.weights[j] : 1.f) : 0.f;
            break;
          default:
            v = weighted ? cfg_.weights[j] * static_cast<float>(f) : static_cast<float>(f);
            break;
        }
        out[r * out_cols + j] = v;
      }
    }
    *ctx.outputs[0] = std::move(y);
    return Status::Ok();
  }

 private:
  void CountAll(const std::string* p, int64_t rows, int64_t cols, int64_t* freq) const {
    for (int64_t r = 0; r < rows; ++r) CountRow(p + r * cols, cols, freq + r * cfg_.output_size);
  }

  // onnxruntime's scan: for each skip distance, every start position walks the trie while
  // the n-gram grows; unigrams are counted at the first skip distance only.
  void CountRow(const Key* row, int64_t cols, int64_t* freq) const {
    int64_t start_size = cfg_.min_gram;
    for (int64_t skip = 1; skip <= cfg_.max_skip + 1; ++skip) {
      for (int64_t start = 0; start < cols; ++start) {
        if (start + skip * (start_size - 1) >= cols) break;
        int32_t node = 0;
        int64_t size = 1;
        for (int64_t item = start;
             !trie_.nodes[node].next.empty() && size <= cfg_.max_gram && item < cols;
             item += skip, ++size) {
          const int32_t child = trie_.Child(node, row[item]);
          if (child < 0) break;
          const int64_t id = trie_.nodes[child].id;
          if (size >= start_size && id != 0) ++freq[cfg_.ngram_indexes[id - 1]];
          node = child;
        }
      }
      if (start_size == 1) {
        ++start_size;
        if (start_size > cfg_.max_gram) break;
      }
    }
  }

  TfIdfConfig cfg_;
  NgramTrie<Key> trie_;
};

// Loads the pool into the trie (only the n-gram sizes in [min_gram, max_gram]); returns the
// number of n-grams in the pool.
template <typename Key>
Result<int64_t> BuildTrie(const std::vector<Key>& pool, const std::vector<int64_t>& counts,
                          int64_t min_gram, int64_t max_gram, NgramTrie<Key>& trie) {
  const int64_t total = static_cast<int64_t>(pool.size());
  int64_t id = 1;
  for (size_t i = 0; i < counts.size(); ++i) {
    const int64_t size = static_cast<int64_t>(i) + 1;
    const int64_t begin = counts[i];
    const int64_t end = i + 1 < counts.size() ? counts[i + 1] : total;
    if (begin < 0 || end < begin || end > total) {
      return InvalidInput("TfIdfVectorizer ngram_counts must be non-decreasing offsets into " +
                          std::string("the pool (size ") + std::to_string(total) + ")");
    }
    const int64_t items = end - begin;  // a remainder that is no whole n-gram is ignored
    const int64_t grams = items / size;
    if (size < min_gram || size > max_gram) {
      id += grams;
      continue;
    }
    for (int64_t g = 0; g < grams; ++g) {
      int32_t node = 0;
      for (int64_t k = 0; k < size; ++k) node = trie.Emplace(node, pool[begin + g * size + k]);
      trie.nodes[node].id = id++;
    }
  }
  return id - 1;
}

}  // namespace

Result<KernelPtr> MakeStringNormalizer(const KernelInit& init) {
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(std::string action_s, attrs.String("case_change_action", "NONE"));
  ASSIGN_OR_RETURN(int64_t sensitive, attrs.Int("is_case_sensitive", 0));
  ASSIGN_OR_RETURN(std::string locale, attrs.String("locale", ""));
  ASSIGN_OR_RETURN(std::vector<std::string> stopwords, attrs.Strings("stopwords"));
  CaseAction action;
  if (action_s == "NONE") {
    action = CaseAction::kNone;
  } else if (action_s == "LOWER") {
    action = CaseAction::kLower;
  } else if (action_s == "UPPER") {
    action = CaseAction::kUpper;
  } else {
    return InvalidInput("StringNormalizer case_change_action must be NONE, LOWER or UPPER, got \"" +
                        action_s + "\"");
  }
  const std::string lang = locale.substr(0, locale.find_first_of("_.@-"));
  if (lang == "tr" || lang == "az" || lang == "lt") {
    return Unsupported("StringNormalizer locale \"" + locale +
                       "\" (language-specific case rules) is not supported");
  }
  const bool ascii_only = locale == "C" || locale == "POSIX";
  auto k = std::make_unique<StringNormalizerKernel>(action, sensitive != 0, ascii_only,
                                                    std::move(stopwords));
  RETURN_IF_ERROR(k->Init());
  return KernelPtr(std::move(k));
}

Result<KernelPtr> MakeStringConcat(const KernelInit&) {
  return KernelPtr(new StringConcatKernel());
}

Result<KernelPtr> MakeStringSplit(const KernelInit& init) {
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(std::string delimiter, attrs.String("delimiter", ""));
  ASSIGN_OR_RETURN(int64_t maxsplit, attrs.Int("maxsplit", -1));
  return KernelPtr(new StringSplitKernel(std::move(delimiter), maxsplit));
}

Result<KernelPtr> MakeRegexFullMatch(const KernelInit& init) {
  NodeAttrs attrs(init.node);
  if (!attrs.Has("pattern")) return InvalidInput("RegexFullMatch needs the pattern attribute");
  ASSIGN_OR_RETURN(std::string pattern, attrs.String("pattern", ""));
  bool icase = false;
  ASSIGN_OR_RETURN(std::wstring ecma, Re2ToEcma(pattern, &icase));
  auto flags = std::regex_constants::ECMAScript | std::regex_constants::optimize;
#if defined(__GLIBCXX__)
  // Thompson-NFA execution: linear time, bounded stack.
  flags |= std::regex_constants::__polynomial;
#endif
  if (icase) flags |= std::regex_constants::icase;
  try {
    return KernelPtr(new RegexFullMatchKernel(std::wregex(ecma, flags)));
  } catch (const std::regex_error& e) {
    return InvalidInput("RegexFullMatch pattern \"" + pattern + "\" is invalid: " + e.what());
  }
}

Result<KernelPtr> MakeTfIdfVectorizer(const KernelInit& init) {
  NodeAttrs attrs(init.node);
  TfIdfConfig cfg;
  ASSIGN_OR_RETURN(std::string mode, attrs.String("mode", ""));
  if (mode == "TF") {
    cfg.mode = TfIdfMode::kTF;
  } else if (mode == "IDF") {
    cfg.mode = TfIdfMode::kIDF;
  } else if (mode == "TFIDF") {
    cfg.mode = TfIdfMode::kTFIDF;
  } else {
    return InvalidInput("TfIdfVectorizer mode must be TF, IDF or TFIDF, got \"" + mode + "\"");
  }
  ASSIGN_OR_RETURN(cfg.min_gram, attrs.RequiredInt("min_gram_length"));
  ASSIGN_OR_RETURN(cfg.max_gram, attrs.RequiredInt("max_gram_length"));
  ASSIGN_OR_RETURN(cfg.max_skip, attrs.RequiredInt("max_skip_count"));
  if (cfg.min_gram < 1 || cfg.max_gram < cfg.min_gram) {
    return InvalidInput("TfIdfVectorizer needs 1 <= min_gram_length <= max_gram_length, got " +
                        std::to_string(cfg.min_gram) + " and " + std::to_string(cfg.max_gram));
  }
  if (cfg.max_skip < 0) return InvalidInput("TfIdfVectorizer max_skip_count must be >= 0");
  ASSIGN_OR_RETURN(std::vector<int64_t> counts, attrs.Ints("ngram_counts"));
  ASSIGN_OR_RETURN(cfg.ngram_indexes, attrs.Ints("ngram_indexes"));
  ASSIGN_OR_RETURN(cfg.weights, attrs.Floats("weights"));
  ASSIGN_OR_RETURN(std::vector<int64_t> pool_i, attrs.Ints("pool_int64s"));
  ASSIGN_OR_RETURN(std::vector<std::string> pool_s, attrs.Strings("pool_strings"));
  if (pool_i.empty() == pool_s.empty()) {
    return InvalidInput("TfIdfVectorizer needs exactly one of pool_int64s and pool_strings");
  }
  if (cfg.ngram_indexes.empty()) return InvalidInput("TfIdfVectorizer needs ngram_indexes");
  int64_t max_index = -1;
  for (int64_t v : cfg.ngram_indexes) {
    if (v < 0) return InvalidInput("TfIdfVectorizer ngram_indexes must be >= 0");
    max_index = std::max(max_index, v);
  }
  cfg.output_size = max_index + 1;
  if (!cfg.weights.empty() && static_cast<int64_t>(cfg.weights.size()) < cfg.output_size) {
    return InvalidInput("TfIdfVectorizer has " + std::to_string(cfg.weights.size()) +
                        " weights for " + std::to_string(cfg.output_size) + " outputs");
  }
  auto finish = [&](auto& pool) -> Result<KernelPtr> {
    using Key = typename std::decay_t<decltype(pool)>::value_type;
    NgramTrie<Key> trie;
    ASSIGN_OR_RETURN(int64_t grams, BuildTrie(pool, counts, cfg.min_gram, cfg.max_gram, trie));
    if (grams > static_cast<int64_t>(cfg.ngram_indexes.size())) {
      return InvalidInput("TfIdfVectorizer pool has " + std::to_string(grams) + " n-grams but " +
                          std::to_string(cfg.ngram_indexes.size()) + " ngram_indexes");
    }
    return KernelPtr(new TfIdfKernel<Key>(std::move(cfg), std::move(trie)));
  };
  if (!pool_s.empty()) return finish(pool_s);
  return finish(pool_i);
}

}  // namespace serveml::engine
