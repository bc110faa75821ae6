#include "engine/engine.h"

namespace serveml::engine {

Result<std::shared_ptr<Model>> Model::LoadOnnx(const std::string& /*bytes*/) {
  return Unsupported("engine not built yet");
}

}  // namespace serveml::engine
