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
#include "importers/limits.h"
#include "importers/pickle/value.h"

namespace serveml::importers::pickle {

// Bounds that stop hostile files from exhausting memory or time. The defaults are generous
// for real scikit-learn models (a 1 GB forest loads) and tight for everything else. Each
// limit has its own error message naming it, so callers and tests can tell which one fired:
//
//   limit                     fragment in the InvalidInput message
//   max_depth                 "nesting depth limit"
//   max_stack                 "stack limit"
//   max_memo                  "memo limit"
//   alloc_* / max_alloc_bytes "allocation budget"
//   max_inflate_ratio         "decompression ratio limit"
//   max_inflated_bytes        "decompressed size limit"
//
// The allocation budget is min(alloc_factor * pickle size + alloc_slack, max_alloc_bytes),
// where the pickle size is the decompressed stream for compressed joblib files (whose
// decompressed bytes are charged to it too). Everything the reader creates is charged to it
// before it is allocated: every value (kValueCost bytes each), string and bytes payloads,
// array data and their dtype copies, every element slot of a list, tuple, set or dict (also
// when APPENDS/SETITEMS/BUILD/set()/OrderedDict()/numpy object arrays copy an existing
// container, so one large container referenced many times through DUP or the memo costs
// its size each time it is copied), dict key indexes and memo entries. Dict building is
// O(n log n) (an ordered index per dict), and nothing else is worse than linear in the
// input times the budget. The unpickler stack and MARK list are bounded by max_stack.
//
// alloc_factor and max_alloc_bytes default to SERVEML_IMPORT_ALLOC_FACTOR and
// SERVEML_IMPORT_MAX_BYTES when those are set (importers/limits.h).
struct ReaderLimits {
  int max_depth = 256;         // container nesting
  size_t max_stack = 1 << 20;  // values on the unpickler stack (plus marks)
  size_t max_memo = 1 << 22;   // memo entries
  // Total bytes the tree may hold: alloc_factor * input size + alloc_slack, at most
  // max_alloc_bytes.
  size_t alloc_factor = DefaultAllocFactor(8);
  size_t alloc_slack = 64u << 20;
  size_t max_alloc_bytes = DefaultMaxAllocBytes(size_t{4} << 30);
  // Decompressed size of a compressed joblib file: at most this many times the input, but
  // never less than min_inflate_bytes...
  size_t max_inflate_ratio = 200;
  size_t min_inflate_bytes = 64u << 20;
  // ...and never more than this.
  size_t max_inflated_bytes = size_t{4} << 30;
};

// Reads one pickle stream (the whole of `bytes`; trailing bytes after STOP are an error)
// or a joblib file (raw array data following NumpyArrayWrapper records; compressed files
// are detected by their magic bytes and decompressed first). Errors: InvalidInput naming
// the offending opcode or byte offset for malformed or truncated input, the refused global
// for a disallowed one ("refused to load 'os.system': ..."), or the limit hit (named as
// listed at ReaderLimits).
Result<PickleTree> ReadPickle(std::string_view bytes, const ReaderLimits& limits = {});

// Returns the decompressed bytes when `bytes` starts with a zlib, gzip, bz2, xz or lzma
// header, or the input unchanged otherwise. Sets *compression to "zlib", "gzip", "bz2",
// "xz", "lzma" or "" accordingly. Errors: InvalidInput for corrupt streams, or when the
// output would exceed max(min_inflate_bytes, max_inflate_ratio x the input) ("decompression ratio
// limit") or max_inflated_bytes ("decompressed size limit").
Result<std::string> MaybeDecompress(std::string_view bytes, const ReaderLimits& limits,
                                    std::string* compression);

}  // namespace serveml::importers::pickle
