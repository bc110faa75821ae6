#include "importers/importers.h"

#include "importers/lightgbm/lightgbm_importer.h"
#include "importers/sklearn/sklearn_importer.h"
#include "importers/xgboost/xgboost_importer.h"

namespace serveml::importers {

Result<ImportResult> ConvertToOnnx(const std::string& bytes, const std::string& framework) {
  if (framework == "sklearn") return sklearn::ImportSklearn(bytes);
  if (framework == "xgboost") return xgboost::Convert(bytes);
  if (framework == "lightgbm") return lightgbm::Convert(bytes);
  return Unsupported("unknown model framework '" + framework + "'");
}

}  // namespace serveml::importers
