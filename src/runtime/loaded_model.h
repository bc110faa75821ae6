// LoadedModel: an engine model plus everything the serving path needs to know about it:
// its input signature (feature count, named features), how to present its outputs
// (plain tensor, classifier labels + probabilities, or named outputs), and its measured
// cost, which decides whether a prediction may run inline on an I/O thread.
//
// Immutable after Load(); shared between threads via std::shared_ptr; Predict() is
// thread safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "engine/engine.h"

namespace serveml::runtime {

// How the model's outputs are answered.
enum class OutputKind {
  kSingle,      // one output: `predictions` holds it row by row
  kClassifier,  // label output + probability output: `predictions` + `probabilities`
  kMulti,       // anything else: `outputs: {name: value}`
};

struct ModelSignature {
  // Inputs in graph order.
  std::vector<engine::TensorInfo> inputs;
  std::vector<engine::TensorInfo> outputs;
  // Feature names accepted in `data` objects. For a model with one 2-D input these name
  // its columns (from metadata_props "feature_names"); for a model whose inputs are all
  // one column wide ([N,1] or [N]) they are the input names. Empty if neither holds.
  std::vector<std::string> feature_names;
  bool features_are_inputs = false;  // true: each feature name is a separate graph input
  OutputKind output_kind = OutputKind::kSingle;
  int label_output = -1;  // kClassifier: index into outputs
  int prob_output = -1;   // kClassifier: index into outputs
  // Class labels in probability column order, when known (ZipMap keys).
  std::vector<std::string> classes;
  bool classes_are_ints = false;
};

class LoadedModel {
 public:
  // Parses and validates `bytes` in `format` ("onnx", or "sklearn"/"xgboost"/"lightgbm",
  // which the importers first convert to ONNX), analyses its signature, runs one generated
  // probe input and measures its latency. Errors carry an actionable message.
  static Result<std::shared_ptr<LoadedModel>> Load(const std::string& bytes,
                                                   const std::string& format);
  // What an importer knew about a converted model that its ONNX does not say.
  struct ImportInfo {
    std::string model_type;                  // e.g. "RandomForestClassifier"
    std::vector<std::string> feature_names;  // as the signature had them (may be empty)
  };
  // Loads ONNX bytes that an importer produced earlier (possibly in another process) as
  // Load(original, format) would have: same signature and model type. converted_onnx()
  // stays empty (the caller has the bytes).
  static Result<std::shared_ptr<LoadedModel>> LoadConverted(const std::string& onnx,
                                                            const ImportInfo& info);

  const ModelSignature& signature() const { return signature_; }
  const engine::ModelInfo& info() const { return model_->info(); }
  // Median latency of the probe run at batch 1, microseconds.
  int64_t probe_micros() const { return probe_micros_; }
  // True when a batch-1 run is cheap enough to execute on an I/O thread.
  bool cheap() const { return probe_micros_ < 200; }
  // Approximate resident bytes (artifact size), for the memory budget.
  int64_t size_bytes() const { return size_bytes_; }
  // The ONNX form of a converted model (empty when the upload was ONNX already).
  const std::string& converted_onnx() const { return converted_onnx_; }
  // The source estimator's class for converted models ("RandomForestClassifier"), else
  // the ONNX graph name.
  const std::string& model_type() const { return model_type_; }

  // Runs the model. Thread safe.
  Result<std::vector<Tensor>> Run(std::span<const Tensor> inputs) const {
    return model_->Run(inputs);
  }
  // Runs the model within a deadline and a memory bound (engine::RunOptions).
  Result<std::vector<Tensor>> Run(std::span<const Tensor> inputs,
                                  const engine::RunOptions& options) const {
    return model_->Run(inputs, options);
  }

  // Model metadata as a JSON object: input_shape, output_shape, inputs[], outputs[],
  // classes?, feature_names?, opsets, producer.
  std::string MetadataJson() const;

 private:
  std::shared_ptr<engine::Model> model_;
  ModelSignature signature_;
  int64_t probe_micros_ = 0;
  int64_t size_bytes_ = 0;
  std::string converted_onnx_;
  std::string model_type_;
};

// Builds a probe input for one graph input: batch `batch` on dynamic dims, 1 on other
// unknown dims, zeros (or empty strings) as values.
Tensor MakeProbeTensor(const engine::TensorInfo& info, int64_t batch);

}  // namespace serveml::runtime
