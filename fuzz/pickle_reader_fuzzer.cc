// libFuzzer target: the restricted pickle reader and the scikit-learn translation on
// arbitrary bytes. Any crash, hang, sanitizer report or runaway allocation is a bug; errors
// are the expected outcome for almost every input.
#include <cstddef>
#include <cstdint>
#include <string>

#include "importers/pickle/reader.h"
#include "importers/sklearn/sklearn_importer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  serveml::importers::pickle::ReaderLimits limits;
  limits.alloc_slack = 16u << 20;  // keep the fuzzer's RSS low
  limits.max_inflated_bytes = 64u << 20;
  auto tree = serveml::importers::pickle::ReadPickle(bytes, limits);
  if (tree.ok()) {
    auto converted = serveml::importers::sklearn::ImportSklearn(bytes);
    (void)converted;
  }
  return 0;
}
