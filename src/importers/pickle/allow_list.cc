#include "importers/pickle/allow_list.h"

#include <array>
#include <cctype>

namespace serveml::importers::pickle {
namespace {

bool StartsWith(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

bool IsIdentifier(std::string_view s) {
  if (s.empty() || !(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  }
  return true;
}

bool IsDottedPath(std::string_view s) {
  size_t start = 0;
  while (true) {
    size_t dot = s.find('.', start);
    if (!IsIdentifier(s.substr(start, dot == std::string_view::npos ? dot : dot - start))) {
      return false;
    }
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

// A class name as scikit-learn spells its classes: CamelCase, possibly with one leading
// underscore for private helpers (_BinMapper, _CalibratedClassifier).
bool IsClassName(std::string_view name) {
  if (!IsIdentifier(name)) return false;
  std::string_view rest = name[0] == '_' ? name.substr(1) : name;
  return !rest.empty() && std::isupper(static_cast<unsigned char>(rest[0]));
}

bool IsNumpyCore(std::string_view module, std::string_view sub) {
  // numpy 1.x writes numpy.core.<sub>, numpy 2.x numpy._core.<sub>.
  return (StartsWith(module, "numpy.core.") && module.substr(11) == sub) ||
         (StartsWith(module, "numpy._core.") && module.substr(12) == sub);
}

constexpr std::array kNumpyTypes = {
    "float64", "float32", "float16",  "int64",  "int32",  "int16",   "int8",
    "uint64",  "uint32",  "uint16",   "uint8",  "bool_",  "object_", "str_",
    "bytes_",  "intp",    "longlong", "double", "single", "bool",
};
constexpr std::array kBuiltinTypes = {"float", "int",  "str",   "bool",
                                      "list",  "dict", "tuple", "type"};

bool In(std::string_view name, const auto& list) {
  for (std::string_view n : list) {
    if (n == name) return true;
  }
  return false;
}

}  // namespace

GlobalKind ClassifyGlobal(std::string_view module, std::string_view name) {
  if (!IsDottedPath(module) || !IsIdentifier(name)) return GlobalKind::kRefused;

  // numpy arrays, dtypes and scalars.
  if (module == "numpy") {
    if (name == "ndarray" || name == "memmap") return GlobalKind::kNdArrayType;
    if (name == "dtype") return GlobalKind::kDType;
    if (In(name, kNumpyTypes)) return GlobalKind::kNumpyType;
    return GlobalKind::kRefused;
  }
  if (IsNumpyCore(module, "multiarray")) {
    if (name == "_reconstruct") return GlobalKind::kReconstruct;
    if (name == "scalar") return GlobalKind::kScalar;
    return GlobalKind::kRefused;
  }
  if (IsNumpyCore(module, "numeric") && name == "_frombuffer") return GlobalKind::kFromBuffer;
  if (module == "numpy.dtypes" && IsClassName(name) && name.find("DType") != name.npos) {
    return GlobalKind::kNumpyType;
  }

  // numpy random state (estimators keep their random_state parameter).
  if (module == "numpy.random._pickle" || module == "numpy.random.mtrand") {
    if (name == "__randomstate_ctor" || name == "__bit_generator_ctor" ||
        name == "__generator_ctor") {
      return GlobalKind::kOpaqueCtor;
    }
    if (name == "RandomState") return GlobalKind::kClass;
    return GlobalKind::kRefused;
  }
  if (module == "numpy.random._mt19937" || module == "numpy.random._pcg64" ||
      module == "numpy.random._philox" || module == "numpy.random._sfc64" ||
      module == "numpy.random.bit_generator" || module == "numpy.random._generator") {
    if (IsClassName(name)) return GlobalKind::kClass;
    if (StartsWith(name, "__pyx_unpickle_")) return GlobalKind::kOpaqueCtor;
    return GlobalKind::kRefused;
  }

  // scikit-learn: classes by module path, Cython reconstructors, the trees' newObj.
  if (StartsWith(module, "sklearn.")) {
    if (IsClassName(name)) return GlobalKind::kClass;
    if (StartsWith(name, "__pyx_unpickle_")) return GlobalKind::kOpaqueCtor;
    if (name == "newObj") return GlobalKind::kCopyregReconstructor;
    return GlobalKind::kRefused;
  }
  // Cython modules that pickle under their bare name (sklearn._loss._loss -> "_loss").
  if (module == "_loss") {
    if (StartsWith(name, "Cy")) return GlobalKind::kClass;
    if (StartsWith(name, "__pyx_unpickle_Cy")) return GlobalKind::kOpaqueCtor;
    return GlobalKind::kRefused;
  }

  // pandas.Index (column selectors such as df.columns[...] kept by ColumnTransformer):
  // _new_Index(Index, {'data': ndarray, 'name': ...}) read as data.
  if (module == "pandas.core.indexes.base") {
    if (name == "_new_Index" || name == "Index") return GlobalKind::kClass;
    return GlobalKind::kRefused;
  }

  if (module == "joblib.numpy_pickle" || module == "sklearn.externals.joblib.numpy_pickle") {
    if (name == "NumpyArrayWrapper") return GlobalKind::kJoblibWrapper;
    return GlobalKind::kRefused;
  }

  // A few builtins, emulated.
  if (module == "builtins" || module == "__builtin__") {
    if (name == "set" || name == "frozenset") return GlobalKind::kBuiltinSet;
    if (name == "bytes" || name == "bytearray") return GlobalKind::kBuiltinBytes;
    if (name == "object") return GlobalKind::kBuiltinObject;
    if (name == "slice") return GlobalKind::kSlice;
    if (In(name, kBuiltinTypes)) return GlobalKind::kNumpyType;
    return GlobalKind::kRefused;
  }
  if (module == "_codecs" && name == "encode") return GlobalKind::kCodecsEncode;
  if ((module == "copyreg" || module == "copy_reg") && name == "_reconstructor") {
    return GlobalKind::kCopyregReconstructor;
  }
  if (module == "collections" && name == "OrderedDict") return GlobalKind::kOrderedDict;
  return GlobalKind::kRefused;
}

std::string RefusedGlobalMessage(std::string_view module, std::string_view name) {
  std::string path;
  for (char c : std::string(module) + "." + std::string(name)) {
    // Keep the message printable whatever bytes the file put there.
    path +=
        (static_cast<unsigned char>(c) >= 0x20 && static_cast<unsigned char>(c) < 0x7f) ? c : '?';
    if (path.size() > 200) {
      path += "...";
      break;
    }
  }
  return "refused to load '" + path +
         "': model files may only reference scikit-learn and numpy classes (the file was "
         "read as data; nothing in it was run)";
}

}  // namespace serveml::importers::pickle
