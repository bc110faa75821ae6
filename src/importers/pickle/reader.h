// The restricted pickle reader: pickle protocols 2-5 and joblib files (plain or compressed
// with zlib, gzip, bz2, xz or lzma) -> an inert PickleTree. It never imports or calls
// anything: GLOBAL/STACK_GLOBAL resolve only against an allow-list of scikit-learn and numpy
// names (allow_list.h), and each allowed reconstructor (numpy's _reconstruct, dtype, scalar,
// _frombuffer, _codecs.encode, copyreg._reconstructor, ...) is emulated as data. Any other
// global rejects the file with an error naming it.
//
// Lifecycle: stateless functions; thread safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"
#include "importers/pickle/value.h"

namespace serveml::importers::pickle {

// Bounds that stop hostile files from exhausting memory or time. The defaults are generous
// for real scikit-learn models (a 1 GB forest loads) and tight for everything else.
struct ReaderLimits {
  int max_depth = 256;         // container nesting
  size_t max_stack = 1 << 20;  // values on the unpickler stack (plus marks)
  size_t max_memo = 1 << 22;   // memo entries
  // Total bytes the tree may hold (strings, bytes, array data, ~64 bytes per value):
  // alloc_factor * input size + alloc_slack.
  size_t alloc_factor = 8;
  size_t alloc_slack = 64u << 20;
  // Decompressed size of a compressed joblib file: at most this many times the input...
  size_t max_inflate_ratio = 200;
  // ...and never more than this.
  size_t max_inflated_bytes = size_t{4} << 30;
};

// Reads one pickle stream (the whole of `bytes`; trailing bytes after STOP are an error)
// or a joblib file (raw array data following NumpyArrayWrapper records; compressed files
// are detected by their magic bytes and decompressed first). Errors: InvalidInput naming
// the offending opcode or byte offset for malformed or truncated input, the refused global
// for a disallowed one ("refused to load 'os.system': ..."), or the limit hit.
Result<PickleTree> ReadPickle(std::string_view bytes, const ReaderLimits& limits = {});

// Returns the decompressed bytes when `bytes` starts with a zlib, gzip, bz2, xz or lzma
// header, or the input unchanged otherwise. Sets *compression to "zlib", "gzip", "bz2",
// "xz", "lzma" or "" accordingly. Errors: InvalidInput for corrupt streams or when the
// output would exceed the limits.
Result<std::string> MaybeDecompress(std::string_view bytes, const ReaderLimits& limits,
                                    std::string* compression);

}  // namespace serveml::importers::pickle
