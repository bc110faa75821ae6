#include "importers/importers.h"

namespace serveml::importers {

Result<ImportResult> ConvertToOnnx(const std::string& /*bytes*/, const std::string& framework) {
  if (framework == "sklearn") {
    return Unsupported(
        "scikit-learn pickles are not supported by this server version yet; convert the model "
        "with skl2onnx and upload the .onnx file");
  }
  if (framework == "xgboost" || framework == "lightgbm") {
    return Unsupported(framework +
                       " models are not supported by this server version yet; convert the model "
                       "to ONNX (onnxmltools) and upload the .onnx file");
  }
  return Unsupported("unknown model framework '" + framework + "'");
}

}  // namespace serveml::importers
