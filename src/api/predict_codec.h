// JSON <-> tensors for POST /api/v1/predict/{id}: the request's `data` is parsed straight
// into input tensors shaped for the model's signature, and outputs are written back in the
// REST v1 shapes (prediction/predictions, probabilities, outputs).
//
// Stateless and thread safe (each thread reuses its own parser buffers).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "runtime/loaded_model.h"

namespace serveml::api {

struct PredictInput {
  std::vector<Tensor> tensors;  // in the order of signature.inputs
  int64_t batch = 0;            // rows
  bool single = false;          // the request sent one row (not a batch)
};

// Bounds of what one request may make the parser allocate, beyond the body's own bytes.
struct PredictLimits {
  // Rows x features of named-feature requests (missing features become NaN, so this is
  // not bounded by the body): checked before allocating. 2^24 values = 128 MiB as float64.
  int64_t max_values = int64_t{1} << 24;
};

// Parses a request body {"data": ...}. InvalidInput with a message naming the problem
// (wrong feature count, non-numeric value, empty batch, ragged rows, unknown feature, or
// rows x features over limits.max_values).
Result<PredictInput> ParsePredictRequest(std::string_view body,
                                         const runtime::ModelSignature& signature,
                                         const PredictLimits& limits = PredictLimits());

// Writes the response body. `outputs` are the model's outputs in signature order.
Result<std::string> WritePredictResponse(const runtime::ModelSignature& signature,
                                         const std::vector<Tensor>& outputs, bool single,
                                         int64_t batch, std::string_view model_version,
                                         double response_time_ms);

}  // namespace serveml::api
