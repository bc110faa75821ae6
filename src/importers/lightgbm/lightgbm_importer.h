// LightGBM importer: a text model (`Booster.save_model("m.txt")`, header + "Tree=" blocks)
// becomes an ONNX-ML graph: TreeEnsembleRegressor over float64 features with the thresholds
// and leaf values as doubles (LightGBM's `x <= threshold` in double), followed by the
// objective's transform.
//
// Missing values follow Tree::NumericalDecision exactly: missing type NaN sends NaN to the
// default child; None treats NaN as 0.0; Zero sends NaN and |x| <= 1e-35f to the default
// child (expanded into extra branch nodes when the threshold does not already do so).
//
// Outputs: binary / multiclass / multiclassova give `label` (int64 [N], the class index;
// class names live outside the booster file) and `probabilities` (ZipMap, [N, C]; binary has
// 2 columns) as LGBMClassifier.predict / predict_proba; everything else gives `variable`
// (float32 [N, 1] or [N, K]) as Booster.predict.
//
// Lifecycle: a stateless function; thread safe.
#pragma once

#include <string>

#include "core/status.h"
#include "importers/importers.h"
#include "importers/limits.h"

namespace serveml::importers::lightgbm {

// Errors: InvalidInput for malformed/hostile text or inconsistent trees (naming the tree and
// field), Unsupported for categorical splits, linear trees and objectives outside the
// supported set (naming them and what to do instead).
//
// Limits: the parsed lines, trees and emitted tree nodes are charged to an allocation budget
// of min(alloc_factor * file size + alloc_slack, max_alloc_bytes) ("allocation budget" in
// the message); a tree whose num_leaves is more than its leaf_value line can hold is refused
// before anything is sized from it ("declared length"); more than 2^23 nodes after
// expanding zero-as-missing splits is Unsupported.
Result<ImportResult> Convert(const std::string& text, const BoostingLimits& limits = {});

}  // namespace serveml::importers::lightgbm
