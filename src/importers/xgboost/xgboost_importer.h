// XGBoost importer: a model saved with `Booster.save_model` / `XGBModel.save_model` as JSON
// (.json) or UBJSON (.ubj; the format is detected from the bytes, not the name) becomes an
// ONNX-ML graph: TreeEnsembleRegressor over float32 features (XGBoost's `x < threshold`,
// NaN -> default_left) followed by the objective's transform.
//
// Outputs: classifiers (binary:logistic, multi:softprob, multi:softmax) give `label` (int64
// [N], the class index as XGBClassifier.predict returns it) and `probabilities` (ZipMap,
// [N, C]; binary models have 2 columns); everything else gives `variable` (float32 [N, T]) as
// Booster.predict returns it. When the file records `best_iteration` (early stopping), only
// the trees up to it are used, as XGBClassifier/XGBRegressor.predict do.
//
// Lifecycle: a stateless function; thread safe.
#pragma once

#include <string>

#include "core/status.h"
#include "importers/importers.h"
#include "importers/limits.h"

namespace serveml::importers::xgboost {

// Errors: InvalidInput for malformed/hostile bytes or inconsistent trees (naming the field),
// Unsupported for objectives, boosters (gblinear), categorical splits, multi-output trees and
// the legacy binary format, each naming what to do instead. The document tree is read under
// `limits` (json_value.h: "allocation budget", "nesting depth limit", "declared length");
// everything built after it is proportional to the trees it holds.
Result<ImportResult> Convert(const std::string& bytes, const BoostingLimits& limits = {});

}  // namespace serveml::importers::xgboost
