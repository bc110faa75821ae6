// Diagnostics of a model loaded by Model::LoadOnnx: what shape inference and the memory
// plan found, and how its arenas behave. For tests and tools; not part of the stable API.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "engine/arena.h"
#include "engine/engine.h"
#include "engine/shape_inference.h"

namespace serveml::engine {

struct ModelPlanInfo {
  size_t values = 0;           // value slots (inputs, constants, node outputs)
  size_t typed_values = 0;     // with an inferred element type
  size_t static_values = 0;    // with a fully known shape
  size_t planned_blocks = 0;   // arena blocks the static plan needs at its peak
  size_t planned_bytes = 0;    // their total size (new arenas are pre-sized with them)
  size_t unplanned_bytes = 0;  // sum of the statically sized intermediates without reuse
};

// Null / empty / nullopt when `model` was not loaded by Model::LoadOnnx.
const ModelPlanInfo* PlanInfo(const Model& model);
// Summed over the model's live arenas (one per concurrent run so far).
TensorArena::Stats ArenaStats(const Model& model);
// The inferred type of the value named `value` (nullopt for unknown names).
std::optional<ValueType> InferredType(const Model& model, const std::string& value);

}  // namespace serveml::engine
