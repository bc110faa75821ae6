// libFuzzer target: the XGBoost (JSON and UBJSON) and LightGBM (text) importers on arbitrary
// bytes. Every input goes through both importers; errors are the expected outcome, any
// crash, hang, sanitizer report or runaway allocation is a bug.
#include <cstddef>
#include <cstdint>
#include <string>

#include "importers/importers.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  (void)serveml::importers::ConvertToOnnx(bytes, "xgboost");
  (void)serveml::importers::ConvertToOnnx(bytes, "lightgbm");
  return 0;
}
