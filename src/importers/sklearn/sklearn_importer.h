// scikit-learn pickles and joblib files -> ONNX-ML. The file is read as data by the
// restricted pickle reader (importers/pickle/reader.h) and each fitted estimator is
// translated from its attributes (importers/sklearn/convert.h); nothing is executed.
//
// Lifecycle: stateless; thread safe.
#pragma once

#include <string>

#include "core/status.h"
#include "importers/importers.h"

namespace serveml::importers::sklearn {

// The graph reads input "input" float32 [N, n_features_in_] and answers
//  - classifiers: "label" (int64 or string [N], labels as trained) and, when the estimator
//    has predict_proba, "probabilities" (float32 [N, n_classes], columns in classes_ order);
//  - regressors: "variable" float32 [N, n_targets];
//  - transformers: "variable" float32 [N, n_output_features].
// Errors: InvalidInput for malformed or hostile files (naming the refused global, the bad
// opcode or the inconsistent attribute); Unsupported naming an estimator or option outside
// the supported set, with what to do instead. Errors on files from a scikit-learn release
// outside the tested range (1.3-1.7) say so.
Result<ImportResult> ImportSklearn(const std::string& bytes);

}  // namespace serveml::importers::sklearn
