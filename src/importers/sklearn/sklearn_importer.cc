#include "importers/sklearn/sklearn_importer.h"

#include <charconv>

#include "importers/pickle/reader.h"
#include "importers/sklearn/convert.h"

namespace serveml::importers::sklearn {
namespace {

constexpr const char* kTestedVersions = "1.3 to 1.7";

// True when "1.5.2" (or "1.7.dev0") is within the tested range.
bool VersionTested(const std::string& v) {
  int major = 0, minor = 0;
  auto r = std::from_chars(v.data(), v.data() + v.size(), major);
  if (r.ec != std::errc() || r.ptr == v.data() + v.size() || *r.ptr != '.') return false;
  auto r2 = std::from_chars(r.ptr + 1, v.data() + v.size(), minor);
  if (r2.ec != std::errc()) return false;
  return major == 1 && minor >= 3 && minor <= 7;
}

Status WithVersionNote(const Status& st, const std::string& version) {
  if (st.ok() || version.empty() || VersionTested(version)) return st;
  return Status(st.code(), st.message() + " (this file was written by scikit-learn " + version +
                               "; ServeML reads files from scikit-learn " + kTestedVersions +
                               ": re-save the model with one of those, or export it to ONNX)");
}

Result<ImportResult> Convert(const pickle::PickleTree& tree, std::string* version) {
  const pickle::Value* root = tree.root;
  if (root->kind != pickle::Kind::kObject || root->cls.rfind("sklearn.", 0) != 0) {
    return InvalidInput("the file holds a " + root->TypeName() +
                        ", not a scikit-learn estimator; pickle the fitted estimator itself");
  }
  if (root->state && root->state->kind == pickle::Kind::kDict) {
    const pickle::Value* v = root->state->Get("_sklearn_version");
    if (v && v->is_str()) *version = v->s;
  }
  ASSIGN_OR_RETURN(int64_t width, InputWidth(root));
  if (width <= 0 || width > (int64_t{1} << 24)) {
    return InvalidInput("the estimator declares " + std::to_string(width) + " input features");
  }
  Ctx ctx;
  ctx.g.SetGraphName("sklearn");
  ctx.f64 = ReadsFloat64(root);
  ctx.g.AddInput("input", ctx.f64 ? DType::kFloat64 : DType::kFloat32, {-1, width});
  for (const char* reserved : {"input", "label", "probabilities", "variable"})
    ctx.g.Unique(reserved);
  ASSIGN_OR_RETURN(Emitted out, Emit(ctx, root, "input", width));
  switch (out.kind) {
    case Emitted::Kind::kClassifier: {
      const bool strs = out.labels.strings;
      ctx.g.AddNode("Identity", {out.label}, {"label"});
      ctx.g.AddOutput("label", strs ? DType::kString : DType::kInt64, {-1});
      if (!out.proba.empty()) {
        ctx.g.AddNode("Identity", {out.proba}, {"probabilities"});
        ctx.g.AddOutput("probabilities", DType::kFloat32,
                        {-1, static_cast<int64_t>(out.labels.size())});
      }
      // Comma-separated, with ',' and '\' inside a label escaped by a backslash.
      std::string classes;
      for (size_t i = 0; i < out.labels.size(); ++i) {
        if (i) classes += ",";
        if (!strs) {
          classes += std::to_string(out.labels.ints[i]);
          continue;
        }
        for (char c : out.labels.strs[i]) {
          if (c == ',' || c == '\\') classes += '\\';
          classes += c;
        }
      }
      ctx.g.SetMetadata("classes", classes);
      break;
    }
    case Emitted::Kind::kRegressor:
    case Emitted::Kind::kTransform:
      ctx.g.AddNode("Identity", {out.out}, {"variable"});
      ctx.g.AddOutput("variable", DType::kFloat32, {-1, out.width});
      break;
  }
  ImportResult r;
  r.model_type = ModelTypeName(root);
  r.framework_version = *version;
  r.feature_names = FeatureNames(root);
  if (static_cast<int64_t>(r.feature_names.size()) != width) r.feature_names.clear();
  ctx.g.SetProducer("serveml-sklearn-importer", SERVEML_VERSION);
  ctx.g.SetMetadata("model_type", r.model_type);
  if (!version->empty()) ctx.g.SetMetadata("sklearn_version", *version);
  if (!r.feature_names.empty()) {
    std::string names;
    for (size_t i = 0; i < r.feature_names.size(); ++i)
      names += (i ? "," : "") + r.feature_names[i];
    ctx.g.SetMetadata("feature_names", names);
  }
  r.onnx = ctx.g.Serialize();
  return r;
}

}  // namespace

Result<ImportResult> ImportSklearn(const std::string& bytes) {
  ASSIGN_OR_RETURN(pickle::PickleTree tree, pickle::ReadPickle(bytes));
  std::string version;
  auto r = Convert(tree, &version);
  if (!r.ok()) return WithVersionNote(r.status(), version);
  return r;
}

}  // namespace serveml::importers::sklearn
