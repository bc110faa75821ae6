// The allow-list of globals a model pickle may reference. Every entry is emulated as data by
// the reader (reader.cc); nothing is imported or called.
//
// Thread safe (pure functions).
#pragma once

#include <string>
#include <string_view>

namespace serveml::importers::pickle {

enum class GlobalKind {
  kRefused,               // anything not listed: the file is rejected
  kClass,                 // a scikit-learn (or other inert) class: REDUCE/NEWOBJ build an Object
  kReconstruct,           // numpy (_core|core).multiarray._reconstruct(ndarray, shape, dtype)
  kNdArrayType,           // numpy.ndarray / numpy.memmap as an argument of _reconstruct
  kDType,                 // numpy.dtype(typestr, align, copy)
  kScalar,                // numpy (_core|core).multiarray.scalar(dtype, bytes)
  kFromBuffer,            // numpy (_core|core).numeric._frombuffer(buf, dtype, shape, order)
  kCodecsEncode,          // _codecs.encode(str, 'latin1') -> bytes (protocol 2 bytes)
  kCopyregReconstructor,  // copyreg._reconstructor(cls, object, None)
  kBuiltinSet,            // builtins.set / frozenset
  kBuiltinBytes,          // builtins.bytes / bytearray
  kBuiltinObject,         // builtins.object (argument of copyreg._reconstructor)
  kSlice,                 // builtins.slice
  kOrderedDict,           // collections.OrderedDict
  kNumpyType,             // numpy scalar types used as values (numpy.float64 as a dtype param)
  kOpaqueCtor,            // numpy.random pickle helpers, Cython __pyx_unpickle_*: inert Object
  kJoblibWrapper,         // joblib.numpy_pickle.NumpyArrayWrapper
};

// Classifies `module`.`name`. Accepts the private module paths scikit-learn actually
// pickles (sklearn.linear_model._logistic, sklearn.tree._tree, sklearn._loss.*, ...) and
// Python 2 spellings of builtins (__builtin__, copy_reg) that protocol 2 writes.
GlobalKind ClassifyGlobal(std::string_view module, std::string_view name);

// The error message for a refused global, e.g. "refused to load 'os.system': model files
// may only reference scikit-learn and numpy classes".
std::string RefusedGlobalMessage(std::string_view module, std::string_view name);

}  // namespace serveml::importers::pickle
