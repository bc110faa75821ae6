// Importers: model files from other frameworks -> ONNX(-ML) ModelProto bytes, the
// canonical form the engine runs and users can download. Importers read files as data and
// never execute anything from them (pickles go through a restricted reader).
//
// Lifecycle: stateless functions; thread safe.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"

namespace serveml::importers {

struct ImportResult {
  std::string onnx;                        // serialized ModelProto
  std::string model_type;                  // e.g. "RandomForestClassifier", "XGBClassifier"
  std::string framework_version;           // version recorded in the file, if any
  std::vector<std::string> feature_names;  // empty when the file has none
};

// Converts `bytes` of `framework` ("sklearn", "xgboost", "lightgbm") to ONNX. Errors:
// InvalidInput for malformed/hostile files (naming what was refused), Unsupported for an
// estimator or option outside the supported set (naming it and what to do instead).
Result<ImportResult> ConvertToOnnx(const std::string& bytes, const std::string& framework);

}  // namespace serveml::importers
