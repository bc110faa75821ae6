#include "api/predict_codec.h"

#include <simdjson.h>

#include <cmath>
#include <limits>

#include "core/json_writer.h"

namespace serveml::api {

namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;

// Collects the scalar leaves of a nested JSON array, checking it is rectangular.
struct Collector {
  std::vector<double> values;
  std::vector<std::string> strings;
  bool want_strings = false;
  std::vector<int64_t> shape;  // filled from the first element at each depth
  std::string error;

  static std::string PathString(const std::vector<int64_t>& path) {
    std::string s = "data";
    for (int64_t i : path) s += "[" + std::to_string(i) + "]";
    return s;
  }

  // Depth of nesting following first elements (0 for a scalar).
  static size_t Depth(element e) {
    size_t d = 0;
    while (e.type() == element_type::ARRAY) {
      auto arr = e.get_array().value_unsafe();
      ++d;
      if (arr.size() == 0) break;
      e = arr.at(0).value_unsafe();
    }
    return d;
  }

  bool Leaf(element e, std::vector<int64_t>& path) {
    switch (e.type()) {
      case element_type::DOUBLE:
        values.push_back(e.get_double().value_unsafe());
        return true;
      case element_type::INT64:
        values.push_back(static_cast<double>(e.get_int64().value_unsafe()));
        return true;
      case element_type::UINT64:
        values.push_back(static_cast<double>(e.get_uint64().value_unsafe()));
        return true;
      case element_type::BOOL:
        values.push_back(e.get_bool().value_unsafe() ? 1.0 : 0.0);
        return true;
      case element_type::NULL_VALUE:
        values.push_back(std::numeric_limits<double>::quiet_NaN());
        return true;
      case element_type::STRING:
        if (want_strings) {
          strings.emplace_back(e.get_string().value_unsafe());
          return true;
        }
        error = PathString(path) + " is not a number";
        return false;
      default:
        error = PathString(path) +
                (e.type() == element_type::OBJECT ? " is an object" : " is a list") +
                ", expected a number";
        return false;
    }
  }

  bool Walk(element e, size_t depth, size_t max_depth, std::vector<int64_t>& path) {
    if (depth == max_depth) return Leaf(e, path);
    if (e.type() != element_type::ARRAY) {
      error = PathString(path) + " is not a list (rows must all have the same nesting)";
      return false;
    }
    auto arr = e.get_array().value_unsafe();
    int64_t n = static_cast<int64_t>(arr.size());
    if (shape.size() <= depth) {
      shape.push_back(n);
    } else if (shape[depth] != n) {
      error = PathString(path) + " has " + std::to_string(n) + " values, expected " +
              std::to_string(shape[depth]) + " (rows must all have the same length)";
      return false;
    }
    int64_t i = 0;
    for (element child : arr) {
      path.push_back(i++);
      if (!Walk(child, depth + 1, max_depth, path)) return false;
      path.pop_back();
    }
    return true;
  }
};

Status ConvertInto(const std::vector<double>& src, size_t offset, size_t stride, size_t count,
                   DType dtype, Tensor* dst, size_t dst_offset, std::string_view what) {
  for (size_t i = 0; i < count; ++i) {
    double v = src[offset + i * stride];
    size_t j = dst_offset + i;
    switch (dtype) {
      case DType::kFloat32:
        dst->data<float>()[j] = static_cast<float>(v);
        break;
      case DType::kFloat64:
        dst->data<double>()[j] = v;
        break;
      case DType::kInt64:
      case DType::kInt32: {
        if (!std::isfinite(v) || v != std::floor(v)) {
          return InvalidInput(std::string(what) + " must contain integers");
        }
        // [-2^63, 2^63) for int64, the int32 range for int32.
        const double lo = dtype == DType::kInt64 ? -9223372036854775808.0 : -2147483648.0;
        if (v < lo || v >= -lo) {
          return InvalidInput(std::string(what) + " contains an integer out of range for " +
                              std::string(DTypeName(dtype)));
        }
        if (dtype == DType::kInt64)
          dst->data<int64_t>()[j] = static_cast<int64_t>(v);
        else
          dst->data<int32_t>()[j] = static_cast<int32_t>(v);
        break;
      }
      case DType::kBool:
        dst->data<bool>()[j] = v != 0.0;
        break;
      case DType::kUInt8:
      case DType::kInt8: {
        const bool u8 = dtype == DType::kUInt8;
        if (!std::isfinite(v) || v != std::floor(v) || v < (u8 ? 0 : -128) ||
            v > (u8 ? 255 : 127)) {
          return InvalidInput(std::string(what) + " must contain " +
                              (u8 ? "integers in [0, 255]" : "integers in [-128, 127]"));
        }
        if (u8)
          dst->data<uint8_t>()[j] = static_cast<uint8_t>(v);
        else
          dst->data<int8_t>()[j] = static_cast<int8_t>(v);
        break;
      }
      default:
        return InvalidInput(std::string(what) + " has type " + std::string(DTypeName(dtype)) +
                            ", which JSON predictions do not support yet");
    }
  }
  return Status::Ok();
}

DType InputDType(const engine::TensorInfo& info) {
  return info.dtype == DType::kUndefined ? DType::kFloat32 : info.dtype;
}

std::string ExpectedRowShape(const engine::TensorInfo& info) {
  std::string s = "[";
  for (size_t i = 1; i < info.shape.size(); ++i) {
    if (i > 1) s += ", ";
    s += info.shape[i] < 0 ? "?" : std::to_string(info.shape[i]);
  }
  return s + "]";
}

// Rows of named features -> tensors.
Result<PredictInput> ParseNamedRows(const std::vector<element>& rows,
                                    const runtime::ModelSignature& sig, bool single,
                                    const PredictLimits& limits) {
  const auto& names = sig.feature_names;
  if (names.empty()) {
    return InvalidInput(
        "this model has no feature names; send 'data' as a list of numbers in input order");
  }
  size_t nf = names.size();
  int64_t n = static_cast<int64_t>(rows.size());
  if (n > 0 && static_cast<int64_t>(nf) > limits.max_values / n) {
    return InvalidInput("the request has " + std::to_string(n) + " rows of " + std::to_string(nf) +
                        " features: over the limit of " + std::to_string(limits.max_values) +
                        " values per request (rows x features); send smaller batches");
  }
  std::vector<double> vals(static_cast<size_t>(n) * nf, std::numeric_limits<double>::quiet_NaN());
  std::vector<std::string> svals;
  bool any_string_input = false;
  for (const auto& in : sig.inputs) any_string_input |= in.dtype == DType::kString;
  if (any_string_input) svals.resize(vals.size());
  for (int64_t r = 0; r < n; ++r) {
    auto obj = rows[static_cast<size_t>(r)].get_object();
    if (obj.error()) return InvalidInput("data[" + std::to_string(r) + "] is not an object");
    size_t seen = 0;
    std::vector<bool> have(nf, false);
    for (auto field : obj.value_unsafe()) {
      std::string_view key = field.key;
      size_t idx = nf;
      for (size_t f = 0; f < nf; ++f) {
        if (names[f] == key) {
          idx = f;
          break;
        }
      }
      std::string where = single ? "data." + std::string(key)
                                 : "data[" + std::to_string(r) + "]." + std::string(key);
      if (idx == nf) {
        std::string expected;
        for (size_t f = 0; f < nf && f < 20; ++f) expected += (f ? ", " : "") + names[f];
        return InvalidInput("unknown feature '" + std::string(key) + "'; expected: " + expected);
      }
      have[idx] = true;
      ++seen;
      element v = field.value;
      size_t pos = static_cast<size_t>(r) * nf + idx;
      switch (v.type()) {
        case element_type::DOUBLE:
          vals[pos] = v.get_double().value_unsafe();
          break;
        case element_type::INT64:
          vals[pos] = static_cast<double>(v.get_int64().value_unsafe());
          break;
        case element_type::UINT64:
          vals[pos] = static_cast<double>(v.get_uint64().value_unsafe());
          break;
        case element_type::BOOL:
          vals[pos] = v.get_bool().value_unsafe() ? 1 : 0;
          break;
        case element_type::NULL_VALUE:
          break;
        case element_type::STRING:
          if (any_string_input) {
            svals[pos] = std::string(v.get_string().value_unsafe());
            break;
          }
          [[fallthrough]];
        default:
          return InvalidInput(where + " is not a number");
      }
    }
    if (seen != nf) {
      for (size_t f = 0; f < nf; ++f) {
        if (!have[f]) return InvalidInput("missing feature '" + names[f] + "'");
      }
    }
  }
  PredictInput out;
  out.batch = n;
  out.single = single;
  if (sig.features_are_inputs) {
    for (size_t f = 0; f < nf; ++f) {
      const auto& in = sig.inputs[f];
      std::vector<int64_t> shape = {n};
      if (in.shape.size() == 2) shape.push_back(1);
      Tensor t(InputDType(in), shape);
      if (t.dtype() == DType::kString) {
        for (int64_t r = 0; r < n; ++r) t.strings()[static_cast<size_t>(r)] = svals[r * nf + f];
      } else {
        RETURN_IF_ERROR(ConvertInto(vals, f, nf, static_cast<size_t>(n), t.dtype(), &t, 0,
                                    "feature '" + names[f] + "'"));
      }
      out.tensors.push_back(std::move(t));
    }
  } else {
    const auto& in = sig.inputs[0];
    Tensor t(InputDType(in), {n, static_cast<int64_t>(nf)});
    RETURN_IF_ERROR(ConvertInto(vals, 0, 1, vals.size(), t.dtype(), &t, 0, "data"));
    out.tensors.push_back(std::move(t));
  }
  return out;
}

// Writes row `r` (or the whole tensor when r < 0) of `t` as nested JSON lists. A row of an
// [N, 1] tensor is written as a scalar.
void WriteValue(JsonWriter& w, const Tensor& t, size_t start, size_t dim) {
  const auto& shape = t.shape();
  if (dim == shape.size()) {
    switch (t.dtype()) {
      case DType::kFloat32:
        w.Float(t.data<float>()[start]);
        break;
      case DType::kFloat64:
        w.Double(t.data<double>()[start]);
        break;
      case DType::kInt64:
        w.Int(t.data<int64_t>()[start]);
        break;
      case DType::kInt32:
        w.Int(t.data<int32_t>()[start]);
        break;
      case DType::kInt16:
        w.Int(t.data<int16_t>()[start]);
        break;
      case DType::kInt8:
        w.Int(t.data<int8_t>()[start]);
        break;
      case DType::kUInt8:
        w.Int(t.data<uint8_t>()[start]);
        break;
      case DType::kUInt16:
        w.Int(t.data<uint16_t>()[start]);
        break;
      case DType::kUInt32:
        w.Int(t.data<uint32_t>()[start]);
        break;
      case DType::kUInt64:
        w.Int(static_cast<int64_t>(t.data<uint64_t>()[start]));
        break;
      case DType::kBool:
        w.Bool(t.data<bool>()[start]);
        break;
      case DType::kString:
        w.String(t.strings()[start]);
        break;
      default:
        w.Null();
    }
    return;
  }
  size_t inner = 1;
  for (size_t d = dim + 1; d < shape.size(); ++d) inner *= static_cast<size_t>(shape[d]);
  w.BeginArray();
  for (int64_t i = 0; i < shape[dim]; ++i)
    WriteValue(w, t, start + static_cast<size_t>(i) * inner, dim + 1);
  w.EndArray();
}

// Row r of a batch-major tensor; a trailing dimension of 1 on a 2-D tensor is squeezed.
void WriteRow(JsonWriter& w, const Tensor& t, int64_t r) {
  if (t.rank() == 0) {
    WriteValue(w, t, 0, 0);
    return;
  }
  size_t inner = 1;
  for (size_t d = 1; d < t.rank(); ++d) inner *= static_cast<size_t>(t.dim(d));
  if (t.rank() == 2 && t.dim(1) == 1) {
    WriteValue(w, t, static_cast<size_t>(r), 2);
    return;
  }
  WriteValue(w, t, static_cast<size_t>(r) * inner, 1);
}

bool BatchMajor(const Tensor& t, int64_t batch) { return t.rank() >= 1 && t.dim(0) == batch; }

void WriteRows(JsonWriter& w, const Tensor& t, bool single, int64_t batch) {
  if (!BatchMajor(t, batch)) {
    WriteValue(w, t, 0, 0);
    return;
  }
  if (single) {
    WriteRow(w, t, 0);
    return;
  }
  w.BeginArray();
  for (int64_t r = 0; r < batch; ++r) WriteRow(w, t, r);
  w.EndArray();
}

}  // namespace

Result<PredictInput> ParsePredictRequest(std::string_view body, const runtime::ModelSignature& sig,
                                         const PredictLimits& limits) {
  thread_local simdjson::dom::parser parser;
  simdjson::padded_string padded(body);
  auto doc = parser.parse(padded);
  if (doc.error()) {
    return InvalidInput(std::string("request body is not valid JSON: ") +
                        simdjson::error_message(doc.error()));
  }
  auto root = doc.value_unsafe();
  if (root.type() != element_type::OBJECT) {
    return InvalidInput("request body must be a JSON object with a 'data' field");
  }
  auto data_r = root["data"];
  if (data_r.error()) return InvalidInput("request body must have a 'data' field");
  element data = data_r.value_unsafe();

  if (data.type() == element_type::OBJECT) {
    return ParseNamedRows({data}, sig, true, limits);
  }
  if (data.type() == element_type::ARRAY) {
    auto arr = data.get_array().value_unsafe();
    if (arr.size() == 0) return InvalidInput("data is empty: send at least one row");
    if (arr.at(0).value_unsafe().type() == element_type::OBJECT) {
      std::vector<element> rows;
      for (element e : arr) rows.push_back(e);
      return ParseNamedRows(rows, sig, false, limits);
    }
  }

  // Positional data.
  PredictInput out;
  if (sig.inputs.size() > 1 && !sig.features_are_inputs) {
    return InvalidInput("this model has " + std::to_string(sig.inputs.size()) +
                        " inputs; send 'data' as an object keyed by input name or use the "
                        "KServe V2 endpoint");
  }
  const auto& in0 = sig.inputs[0];
  size_t rank =
      sig.features_are_inputs ? 2 : (in0.has_shape && !in0.shape.empty() ? in0.shape.size() : 2);
  size_t depth = Collector::Depth(data);
  Collector c;
  c.want_strings = !sig.features_are_inputs && in0.dtype == DType::kString;
  std::vector<int64_t> path;
  if (depth == rank) {
    out.single = false;
  } else if (depth + 1 == rank) {
    out.single = true;
  } else {
    std::string want = rank == 2 ? "a list of feature values, or a list of such rows"
                                 : "values nested " + std::to_string(rank - 1) +
                                       " deep for one input, or " + std::to_string(rank) +
                                       " deep for a batch";
    return InvalidInput("data is nested " + std::to_string(depth) + " deep; this model expects " +
                        want);
  }
  if (!c.Walk(data, 0, depth, path)) return InvalidInput(c.error);
  std::vector<int64_t> shape = c.shape;
  if (out.single) shape.insert(shape.begin(), 1);
  if (shape.empty()) shape.push_back(1);
  out.batch = shape[0];
  if (out.batch == 0) return InvalidInput("data is empty: send at least one row");

  if (sig.features_are_inputs) {
    int64_t nf = static_cast<int64_t>(sig.inputs.size());
    if (shape.size() != 2 || shape[1] != nf) {
      return InvalidInput("expected " + std::to_string(nf) + " features per row, got " +
                          std::to_string(shape.size() == 2 ? shape[1] : 0));
    }
    for (int64_t f = 0; f < nf; ++f) {
      const auto& in = sig.inputs[static_cast<size_t>(f)];
      std::vector<int64_t> s = {out.batch};
      if (in.shape.size() == 2) s.push_back(1);
      Tensor t(InputDType(in), s);
      RETURN_IF_ERROR(ConvertInto(c.values, static_cast<size_t>(f), static_cast<size_t>(nf),
                                  static_cast<size_t>(out.batch), t.dtype(), &t, 0,
                                  "input '" + in.name + "'"));
      out.tensors.push_back(std::move(t));
    }
    return out;
  }

  // Check against the declared static dims.
  if (in0.has_shape) {
    for (size_t d = 1; d < in0.shape.size() && d < shape.size(); ++d) {
      if (in0.shape[d] >= 0 && in0.shape[d] != shape[d]) {
        if (in0.shape.size() == 2) {
          return InvalidInput("expected " + std::to_string(in0.shape[1]) +
                              " features per row, got " + std::to_string(shape[1]));
        }
        std::vector<int64_t> got(shape.begin() + 1, shape.end());
        return InvalidInput("expected each input of shape " + ExpectedRowShape(in0) + ", got " +
                            ShapeToString(got));
      }
    }
    if (in0.shape[0] >= 0 && in0.shape[0] != shape[0]) {
      return InvalidInput("this model takes batches of exactly " + std::to_string(in0.shape[0]) +
                          " rows, got " + std::to_string(shape[0]));
    }
  }
  Tensor t(InputDType(in0), shape);
  if (t.dtype() == DType::kString) {
    if (c.strings.size() != static_cast<size_t>(t.numel())) {
      return InvalidInput("input '" + in0.name + "' takes strings");
    }
    t.strings() = std::move(c.strings);
  } else {
    RETURN_IF_ERROR(ConvertInto(c.values, 0, 1, c.values.size(), t.dtype(), &t, 0, "data"));
  }
  out.tensors.push_back(std::move(t));
  return out;
}

Result<std::string> WritePredictResponse(const runtime::ModelSignature& sig,
                                         const std::vector<Tensor>& outputs, bool single,
                                         int64_t batch, std::string_view model_version,
                                         double response_time_ms) {
  std::string out;
  out.reserve(256);
  JsonWriter w(out);
  w.BeginObject();
  const char* pred_key = single ? "prediction" : "predictions";
  switch (sig.output_kind) {
    case runtime::OutputKind::kSingle:
      w.Key(pred_key);
      WriteRows(w, outputs[0], single, batch);
      break;
    case runtime::OutputKind::kClassifier: {
      const Tensor& labels = outputs[static_cast<size_t>(sig.label_output)];
      const Tensor& probs = outputs[static_cast<size_t>(sig.prob_output)];
      w.Key(pred_key);
      WriteRows(w, labels, single, batch);
      w.Key("probabilities");
      WriteRows(w, probs, single, batch);
      break;
    }
    case runtime::OutputKind::kMulti:
      w.Key("outputs").BeginObject();
      for (size_t i = 0; i < outputs.size() && i < sig.outputs.size(); ++i) {
        w.Key(sig.outputs[i].name);
        WriteRows(w, outputs[i], single, batch);
      }
      w.EndObject();
      break;
  }
  w.Key("model_version").String(model_version);
  w.Key("response_time_ms").Double(std::round(response_time_ms * 1000.0) / 1000.0);
  if (!single) w.Key("batch_size").Int(batch);
  w.EndObject();
  return out;
}

}  // namespace serveml::api
