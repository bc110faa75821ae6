#include "runtime/loaded_model.h"

#include <algorithm>
#include <sstream>

#include "core/clock.h"
#include "core/json_writer.h"
#include "importers/importers.h"

namespace serveml::runtime {
namespace {

bool IsLabelType(DType t) {
  return t == DType::kInt64 || t == DType::kInt32 || t == DType::kString;
}
bool IsFloatType(DType t) { return t == DType::kFloat32 || t == DType::kFloat64; }

std::vector<std::string> SplitFeatureNames(const std::string& s) {
  // Accepts "a,b,c" or a JSON-ish list ["a","b"].
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == ',') {
      out.push_back(cur);
      cur.clear();
    } else if (c != '[' && c != ']' && c != '"' && c != ' ') {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

void WriteShape(JsonWriter& w, const engine::TensorInfo& t) {
  if (!t.has_shape) {
    w.Null();
    return;
  }
  w.BeginArray();
  for (int64_t d : t.shape) {
    if (d < 0)
      w.Null();
    else
      w.Int(d);
  }
  w.EndArray();
}

void WriteTensorInfos(JsonWriter& w, const std::vector<engine::TensorInfo>& v) {
  w.BeginArray();
  for (const auto& t : v) {
    w.BeginObject();
    w.Key("name").String(t.name);
    w.Key("dtype").String(t.is_zipmap ? "float32" : DTypeName(t.dtype));
    w.Key("shape");
    WriteShape(w, t);
    if (t.is_zipmap) w.Key("zipmap").Bool(true);
    w.EndObject();
  }
  w.EndArray();
}

}  // namespace

Tensor MakeProbeTensor(const engine::TensorInfo& info, int64_t batch) {
  std::vector<int64_t> shape;
  if (!info.has_shape) {
    shape = {batch};
  } else {
    for (size_t i = 0; i < info.shape.size(); ++i) {
      int64_t d = info.shape[i];
      shape.push_back(d >= 0 ? d : (i == 0 ? batch : 1));
    }
  }
  return Tensor(info.dtype == DType::kUndefined ? DType::kFloat32 : info.dtype, shape);
}

Result<std::shared_ptr<LoadedModel>> LoadedModel::Load(const std::string& bytes,
                                                       const std::string& format) {
  if (format == "onnx") return LoadConverted(bytes, ImportInfo{});
  ASSIGN_OR_RETURN(importers::ImportResult imported, importers::ConvertToOnnx(bytes, format));
  ImportInfo info{std::move(imported.model_type), std::move(imported.feature_names)};
  ASSIGN_OR_RETURN(auto lm, LoadConverted(imported.onnx, info));
  lm->converted_onnx_ = std::move(imported.onnx);
  return lm;
}

Result<std::shared_ptr<LoadedModel>> LoadedModel::LoadConverted(const std::string& onnx,
                                                                const ImportInfo& info) {
  auto lm = std::make_shared<LoadedModel>();
  lm->model_type_ = info.model_type;
  const std::vector<std::string>& imported_features = info.feature_names;
  ASSIGN_OR_RETURN(lm->model_, engine::Model::LoadOnnx(onnx));
  if (lm->model_type_.empty()) {
    lm->model_type_ =
        lm->model_->info().graph_name.empty() ? "onnx-graph" : lm->model_->info().graph_name;
  }
  lm->size_bytes_ = static_cast<int64_t>(onnx.size());
  ModelSignature& sig = lm->signature_;
  sig.inputs = lm->model_->inputs();
  sig.outputs = lm->model_->outputs();
  if (sig.inputs.empty()) return InvalidInput("the model has no inputs");
  if (sig.outputs.empty()) return InvalidInput("the model has no outputs");

  // Feature names.
  const auto& props = lm->model_->info().metadata_props;
  if (sig.inputs.size() == 1) {
    auto it = props.find("feature_names");
    const auto& in = sig.inputs[0];
    if ((it != props.end() || !imported_features.empty()) && in.has_shape && in.shape.size() == 2) {
      auto names = !imported_features.empty() ? imported_features : SplitFeatureNames(it->second);
      if (in.shape[1] < 0 || static_cast<int64_t>(names.size()) == in.shape[1]) {
        sig.feature_names = std::move(names);
      }
    }
  } else {
    bool all_columns = true;
    for (const auto& in : sig.inputs) {
      bool column =
          in.has_shape && ((in.shape.size() == 2 && in.shape[1] == 1) || in.shape.size() == 1);
      all_columns = all_columns && column;
    }
    if (all_columns) {
      for (const auto& in : sig.inputs) sig.feature_names.push_back(in.name);
      sig.features_are_inputs = true;
    }
  }

  // Output presentation.
  if (sig.outputs.size() == 1) {
    sig.output_kind = OutputKind::kSingle;
  } else if (sig.outputs.size() == 2) {
    for (int i = 0; i < 2; ++i) {
      const auto& a = sig.outputs[i];
      const auto& b = sig.outputs[1 - i];
      bool a_labels = IsLabelType(a.dtype) && !a.is_zipmap && (!a.has_shape || a.shape.size() <= 2);
      bool b_probs = b.is_zipmap || (IsFloatType(b.dtype) && (!b.has_shape || b.shape.size() == 2));
      if (a_labels && b_probs) {
        sig.output_kind = OutputKind::kClassifier;
        sig.label_output = i;
        sig.prob_output = 1 - i;
        if (b.is_zipmap) {
          sig.classes = b.zipmap_keys;
          sig.classes_are_ints = b.zipmap_int_keys;
        } else if (auto it = props.find("classes"); it != props.end()) {
          // Importers record the class labels in column order ("0,1,2" / "cat,dog"), a ','
          // or '\\' inside a label escaped by a backslash ("a\\,b,c" = ["a,b", "c"]).
          sig.classes.clear();
          std::string cur;
          bool escaped = false;
          for (char c : it->second) {
            if (escaped) {
              cur += c;
              escaped = false;
            } else if (c == '\\') {
              escaped = true;
            } else if (c == ',') {
              sig.classes.push_back(cur);
              cur.clear();
            } else {
              cur += c;
            }
          }
          sig.classes.push_back(cur);
          sig.classes_are_ints = a.dtype != DType::kString;
        }
        break;
      }
    }
    if (sig.output_kind != OutputKind::kClassifier) sig.output_kind = OutputKind::kMulti;
  } else {
    sig.output_kind = OutputKind::kMulti;
  }

  // Probe: one generated batch-1 input, run a few times; the median is the cost figure.
  std::vector<Tensor> probe;
  for (const auto& in : sig.inputs) probe.push_back(MakeProbeTensor(in, 1));
  std::vector<int64_t> times;
  for (int i = 0; i < 5; ++i) {
    int64_t t0 = MonotonicNanos();
    auto out = lm->model_->Run(probe);
    if (!out.ok()) {
      return Status(out.status().code(),
                    "the model failed on a generated probe input: " + out.status().message());
    }
    times.push_back((MonotonicNanos() - t0) / 1000);
    if (i == 0 && sig.output_kind == OutputKind::kClassifier && sig.classes.empty()) {
      // No ZipMap: class labels are not declared; the prob column count is all we know.
    }
  }
  std::sort(times.begin(), times.end());
  lm->probe_micros_ = times[times.size() / 2];
  return lm;
}

std::string LoadedModel::MetadataJson() const {
  std::string out;
  JsonWriter w(out);
  w.BeginObject();
  w.Key("input_shape");
  WriteShape(w, signature_.inputs[0]);
  w.Key("output_shape");
  const auto& main_out = signature_.output_kind == OutputKind::kClassifier
                             ? signature_.outputs[signature_.label_output]
                             : signature_.outputs[0];
  WriteShape(w, main_out);
  w.Key("inputs");
  WriteTensorInfos(w, signature_.inputs);
  w.Key("outputs");
  WriteTensorInfos(w, signature_.outputs);
  if (signature_.output_kind == OutputKind::kClassifier && !signature_.classes.empty()) {
    w.Key("classes").BeginArray();
    for (const auto& c : signature_.classes) {
      if (signature_.classes_are_ints)
        w.Raw(c);
      else
        w.String(c);
    }
    w.EndArray();
  }
  if (!signature_.feature_names.empty()) {
    w.Key("feature_names").BeginArray();
    for (const auto& f : signature_.feature_names) w.String(f);
    w.EndArray();
  }
  w.Key("output_kind")
      .String(signature_.output_kind == OutputKind::kSingle       ? "single"
              : signature_.output_kind == OutputKind::kClassifier ? "classifier"
                                                                  : "multi");
  const auto& inf = model_->info();
  w.Key("producer")
      .String(inf.producer_name + (inf.producer_version.empty() ? "" : " " + inf.producer_version));
  w.Key("opsets").BeginObject();
  for (const auto& [domain, v] : inf.opsets) w.Key(domain.empty() ? "ai.onnx" : domain).Int(v);
  w.EndObject();
  w.Key("probe_latency_us").Int(probe_micros_);
  w.EndObject();
  return out;
}

}  // namespace serveml::runtime
