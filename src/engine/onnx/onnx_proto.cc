#include "engine/onnx/onnx_proto.h"

#include <cstring>

#include "engine/onnx/wire.h"

namespace serveml::engine::onnx {
namespace {

// A nested message: its bytes and where they start in the outer buffer.
struct Sub {
  std::string_view bytes;
  size_t base;
};

Status ReadSub(WireReader& r, WireType type, Sub* sub) {
  std::string_view v;
  RETURN_IF_ERROR(r.ReadView(type, &v));
  sub->bytes = v;
  sub->base = r.offset() - v.size();
  return Status::Ok();
}

Status TooDeep(const WireReader& r) {
  return MalformedAt(r.offset(), "nesting deeper than " + std::to_string(kMaxNestingDepth));
}

// Repeated varint-encoded integers, packed or not. `Cast` converts the raw 64-bit value.
template <typename T>
Status ReadRepeatedVarint(WireReader& r, WireType type, std::vector<T>* out) {
  if (type == WireType::kVarint) {
    uint64_t v = 0;
    RETURN_IF_ERROR(r.ReadVarint(&v));
    out->push_back(static_cast<T>(v));
    return Status::Ok();
  }
  Sub sub;
  RETURN_IF_ERROR(ReadSub(r, type, &sub));
  WireReader pr(sub.bytes, sub.base);
  // Count the varints first (one terminating byte each) so the allocation is exact.
  size_t count = 0;
  for (char c : sub.bytes) count += (static_cast<uint8_t>(c) & 0x80) == 0;
  out->reserve(out->size() + count);
  while (!pr.done()) {
    uint64_t v = 0;
    RETURN_IF_ERROR(pr.ReadVarint(&v));
    out->push_back(static_cast<T>(v));
  }
  return Status::Ok();
}

// Repeated fixed-width values (float = fixed32, double = fixed64), packed or not.
template <typename T>
Status ReadRepeatedFixed(WireReader& r, WireType type, std::vector<T>* out) {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8);
  constexpr WireType kScalar = sizeof(T) == 4 ? WireType::kFixed32 : WireType::kFixed64;
  if (type == kScalar) {
    T v;
    if constexpr (sizeof(T) == 4) {
      uint32_t u = 0;
      RETURN_IF_ERROR(r.ReadFixed32(&u));
      std::memcpy(&v, &u, 4);
    } else {
      uint64_t u = 0;
      RETURN_IF_ERROR(r.ReadFixed64(&u));
      std::memcpy(&v, &u, 8);
    }
    out->push_back(v);
    return Status::Ok();
  }
  Sub sub;
  RETURN_IF_ERROR(ReadSub(r, type, &sub));
  if (sub.bytes.size() % sizeof(T) != 0) {
    return MalformedAt(sub.base, "packed fixed-width field length is not a multiple of " +
                                     std::to_string(sizeof(T)));
  }
  size_t n = sub.bytes.size() / sizeof(T);
  size_t old = out->size();
  out->resize(old + n);
  if (n) std::memcpy(out->data() + old, sub.bytes.data(), sub.bytes.size());
  return Status::Ok();
}

Status ParseStringStringEntry(Sub sub, std::pair<std::string, std::string>* out) {
  WireReader r(sub.bytes, sub.base);
  while (!r.done()) {
    uint32_t field;
    WireType type;
    RETURN_IF_ERROR(r.ReadTag(&field, &type));
    switch (field) {
      case 1:
        RETURN_IF_ERROR(r.ReadString(type, &out->first));
        break;
      case 2:
        RETURN_IF_ERROR(r.ReadString(type, &out->second));
        break;
      default:
        RETURN_IF_ERROR(r.Skip(type));
    }
  }
  return Status::Ok();
}

Status ParseOperatorSetId(Sub sub, std::pair<std::string, int64_t>* out) {
  WireReader r(sub.bytes, sub.base);
  while (!r.done()) {
    uint32_t field;
    WireType type;
    RETURN_IF_ERROR(r.ReadTag(&field, &type));
    switch (field) {
      case 1:
        RETURN_IF_ERROR(r.ReadString(type, &out->first));
        break;
      case 2:
        RETURN_IF_ERROR(r.ReadInt64(type, &out->second));
        break;
      default:
        RETURN_IF_ERROR(r.Skip(type));
    }
  }
  return Status::Ok();
}

Status ParseTensorInner(Sub sub, TensorProto* out) {
  WireReader r(sub.bytes, sub.base);
  while (!r.done()) {
    uint32_t field;
    WireType type;
    RETURN_IF_ERROR(r.ReadTag(&field, &type));
    switch (field) {
      case 1:
        RETURN_IF_ERROR(ReadRepeatedVarint(r, type, &out->dims));
        break;
      case 2:
        RETURN_IF_ERROR(r.ReadInt32(type, &out->data_type));
        break;
      case 3:
        out->has_segment = true;
        RETURN_IF_ERROR(r.Skip(type));
        break;
      case 4:
        RETURN_IF_ERROR(ReadRepeatedFixed(r, type, &out->float_data));
        break;
      case 5:
        RETURN_IF_ERROR(ReadRepeatedVarint(r, type, &out->int32_data));
        break;
      case 6: {
        std::string s;
        RETURN_IF_ERROR(r.ReadString(type, &s));
        out->string_data.push_back(std::move(s));
        break;
      }
      case 7:
        RETURN_IF_ERROR(ReadRepeatedVarint(r, type, &out->int64_data));
        break;
      case 8:
        RETURN_IF_ERROR(r.ReadString(type, &out->name));
        break;
      case 9:
        RETURN_IF_ERROR(r.ReadView(type, &out->raw_data));
        out->has_raw_data = true;
        break;
      case 10:
        RETURN_IF_ERROR(ReadRepeatedFixed(r, type, &out->double_data));
        break;
      case 11:
        RETURN_IF_ERROR(ReadRepeatedVarint(r, type, &out->uint64_data));
        break;
      case 14:
        RETURN_IF_ERROR(r.ReadInt32(type, &out->data_location));
        break;
      default:
        RETURN_IF_ERROR(r.Skip(type));
    }
  }
  return Status::Ok();
}

Status ParseShape(Sub sub, TypeProto* out) {
  WireReader r(sub.bytes, sub.base);
  out->has_shape = true;
  while (!r.done()) {
    uint32_t field;
    WireType type;
    RETURN_IF_ERROR(r.ReadTag(&field, &type));
    if (field != 1) {
      RETURN_IF_ERROR(r.Skip(type));
      continue;
    }
    Sub dsub;
    RETURN_IF_ERROR(ReadSub(r, type, &dsub));
    WireReader dr(dsub.bytes, dsub.base);
    TensorShapeDim dim;
    while (!dr.done()) {
      uint32_t f2;
      WireType t2;
      RETURN_IF_ERROR(dr.ReadTag(&f2, &t2));
      switch (f2) {
        case 1:
          RETURN_IF_ERROR(dr.ReadInt64(t2, &dim.value));
          dim.has_value = true;
          break;
        case 2:
          RETURN_IF_ERROR(dr.ReadString(t2, &dim.param));
          break;
        default:
          RETURN_IF_ERROR(dr.Skip(t2));
      }
    }
    out->dims.push_back(std::move(dim));
  }
  return Status::Ok();
}

Status ParseType(Sub sub, TypeProto* out, int depth);

// TypeProto.Tensor / SparseTensor: elem_type = 1, shape = 2.
Status ParseTensorType(Sub sub, TypeProto* out) {
  WireReader r(sub.bytes, sub.base);
  while (!r.done()) {
    uint32_t field;
    WireType type;
    RETURN_IF_ERROR(r.ReadTag(&field, &type));
    if (field == 1) {
      RETURN_IF_ERROR(r.ReadInt32(type, &out->elem_type));
    } else if (field == 2) {
      Sub s;
      RETURN_IF_ERROR(ReadSub(r, type, &s));
      RETURN_IF_ERROR(ParseShape(s, out));
    } else {
      RETURN_IF_ERROR(r.Skip(type));
    }
  }
  return Status::Ok();
}

// TypeProto.Sequence / Optional (elem_type = 1) and Map (key_type = 1, value_type = 2).
Status ParseCompositeType(Sub sub, TypeProto* out, int depth) {
  WireReader r(sub.bytes, sub.base);
  bool is_map = out->kind == TypeProto::Kind::kMap;
  while (!r.done()) {
    uint32_t field;
    WireType type;
    RETURN_IF_ERROR(r.ReadTag(&field, &type));
    if (is_map && field == 1) {
      RETURN_IF_ERROR(r.ReadInt32(type, &out->map_key_type));
    } else if ((is_map && field == 2) || (!is_map && field == 1)) {
      Sub s;
      RETURN_IF_ERROR(ReadSub(r, type, &s));
      auto elem = std::make_shared<TypeProto>();
      RETURN_IF_ERROR(ParseType(s, elem.get(), depth + 1));
      out->elem = std::move(elem);
    } else {
      RETURN_IF_ERROR(r.Skip(type));
    }
  }
  return Status::Ok();
}

Status ParseType(Sub sub, TypeProto* out, int depth) {
  WireReader r(sub.bytes, sub.base);
  if (depth > kMaxNestingDepth) return TooDeep(r);
  while (!r.done()) {
    uint32_t field;
    WireType type;
    RETURN_IF_ERROR(r.ReadTag(&field, &type));
    Sub s;
    switch (field) {
      case 1:
        out->kind = TypeProto::Kind::kTensor;
        RETURN_IF_ERROR(ReadSub(r, type, &s));
        RETURN_IF_ERROR(ParseTensorType(s, out));
        break;
      case 8:
        out->kind = TypeProto::Kind::kSparseTensor;
        RETURN_IF_ERROR(ReadSub(r, type, &s));
        RETURN_IF_ERROR(ParseTensorType(s, out));
        break;
      case 4:
      case 5:
      case 9:
        out->kind = field == 4   ? TypeProto::Kind::kSequence
                    : field == 5 ? TypeProto::Kind::kMap
                                 : TypeProto::Kind::kOptional;
        RETURN_IF_ERROR(ReadSub(r, type, &s));
        RETURN_IF_ERROR(ParseCompositeType(s, out, depth));
        break;
      case 7:
        out->kind = TypeProto::Kind::kOpaque;
        RETURN_IF_ERROR(r.Skip(type));
        break;
      default:
        RETURN_IF_ERROR(r.Skip(type));
    }
  }
  return Status::Ok();
}

Status ParseValueInfo(Sub sub, ValueInfoProto* out) {
  WireReader r(sub.bytes, sub.base);
  while (!r.done()) {
    uint32_t field;
    WireType type;
    RETURN_IF_ERROR(r.ReadTag(&field, &type));
    if (field == 1) {
      RETURN_IF_ERROR(r.ReadString(type, &out->name));
    } else if (field == 2) {
      Sub s;
      RETURN_IF_ERROR(ReadSub(r, type, &s));
      out->has_type = true;
      RETURN_IF_ERROR(ParseType(s, &out->type, 0));
    } else {
      RETURN_IF_ERROR(r.Skip(type));
    }
  }
  return Status::Ok();
}

Status ParseGraphInner(Sub sub, GraphProto* out, int depth);

Status ParseAttribute(Sub sub, AttributeProto* out, int depth) {
  WireReader r(sub.bytes, sub.base);
  bool has_f = false, has_i = false, has_s = false;
  while (!r.done()) {
    uint32_t field;
    WireType type;
    RETURN_IF_ERROR(r.ReadTag(&field, &type));
    Sub s;
    switch (field) {
      case 1:
        RETURN_IF_ERROR(r.ReadString(type, &out->name));
        break;
      case 21:
        RETURN_IF_ERROR(r.ReadString(type, &out->ref_attr_name));
        break;
      case 20:
        RETURN_IF_ERROR(r.ReadInt32(type, &out->type));
        break;
      case 2:
        RETURN_IF_ERROR(r.ReadFloat(type, &out->f));
        has_f = true;
        break;
      case 3:
        RETURN_IF_ERROR(r.ReadInt64(type, &out->i));
        has_i = true;
        break;
      case 4:
        RETURN_IF_ERROR(r.ReadString(type, &out->s));
        has_s = true;
        break;
      case 5: {
        RETURN_IF_ERROR(ReadSub(r, type, &s));
        auto t = std::make_shared<TensorProto>();
        RETURN_IF_ERROR(ParseTensorInner(s, t.get()));
        out->t = std::move(t);
        break;
      }
      case 6: {
        RETURN_IF_ERROR(ReadSub(r, type, &s));
        auto g = std::make_shared<GraphProto>();
        RETURN_IF_ERROR(ParseGraphInner(s, g.get(), depth + 1));
        out->g = std::move(g);
        break;
      }
      case 7:
        RETURN_IF_ERROR(ReadRepeatedFixed(r, type, &out->floats));
        break;
      case 8:
        RETURN_IF_ERROR(ReadRepeatedVarint(r, type, &out->ints));
        break;
      case 9: {
        std::string str;
        RETURN_IF_ERROR(r.ReadString(type, &str));
        out->strings.push_back(std::move(str));
        break;
      }
      case 10: {
        RETURN_IF_ERROR(ReadSub(r, type, &s));
        TensorProto t;
        RETURN_IF_ERROR(ParseTensorInner(s, &t));
        out->tensors.push_back(std::move(t));
        break;
      }
      case 11: {
        RETURN_IF_ERROR(ReadSub(r, type, &s));
        auto g = std::make_shared<GraphProto>();
        RETURN_IF_ERROR(ParseGraphInner(s, g.get(), depth + 1));
        out->graphs.push_back(std::move(g));
        break;
      }
      case 22:
        if (out->type == AttributeProto::kUndefined) out->type = AttributeProto::kSparseTensor;
        RETURN_IF_ERROR(r.Skip(type));
        break;
      case 23:
        if (out->type == AttributeProto::kUndefined) out->type = AttributeProto::kSparseTensors;
        RETURN_IF_ERROR(r.Skip(type));
        break;
      case 14:
        if (out->type == AttributeProto::kUndefined) out->type = AttributeProto::kTypeProto;
        RETURN_IF_ERROR(r.Skip(type));
        break;
      case 15:
        if (out->type == AttributeProto::kUndefined) out->type = AttributeProto::kTypeProtos;
        RETURN_IF_ERROR(r.Skip(type));
        break;
      default:
        RETURN_IF_ERROR(r.Skip(type));
    }
  }
  if (out->type == AttributeProto::kUndefined) {
    // IR version 1 files omit the type; infer it from the populated field.
    if (has_f)
      out->type = AttributeProto::kFloat;
    else if (has_i)
      out->type = AttributeProto::kInt;
    else if (has_s)
      out->type = AttributeProto::kString;
    else if (out->t)
      out->type = AttributeProto::kTensor;
    else if (out->g)
      out->type = AttributeProto::kGraph;
    else if (!out->floats.empty())
      out->type = AttributeProto::kFloats;
    else if (!out->ints.empty())
      out->type = AttributeProto::kInts;
    else if (!out->strings.empty())
      out->type = AttributeProto::kStrings;
    else if (!out->tensors.empty())
      out->type = AttributeProto::kTensors;
    else if (!out->graphs.empty())
      out->type = AttributeProto::kGraphs;
  }
  return Status::Ok();
}

Status ParseNode(Sub sub, NodeProto* out, int depth) {
  WireReader r(sub.bytes, sub.base);
  while (!r.done()) {
    uint32_t field;
    WireType type;
    RETURN_IF_ERROR(r.ReadTag(&field, &type));
    switch (field) {
      case 1: {
        std::string s;
        RETURN_IF_ERROR(r.ReadString(type, &s));
        out->input.push_back(std::move(s));
        break;
      }
      case 2: {
        std::string s;
        RETURN_IF_ERROR(r.ReadString(type, &s));
        out->output.push_back(std::move(s));
        break;
      }
      case 3:
        RETURN_IF_ERROR(r.ReadString(type, &out->name));
        break;
      case 4:
        RETURN_IF_ERROR(r.ReadString(type, &out->op_type));
        break;
      case 7:
        RETURN_IF_ERROR(r.ReadString(type, &out->domain));
        break;
      case 5: {
        Sub s;
        RETURN_IF_ERROR(ReadSub(r, type, &s));
        AttributeProto a;
        RETURN_IF_ERROR(ParseAttribute(s, &a, depth));
        out->attribute.push_back(std::move(a));
        break;
      }
      default:
        RETURN_IF_ERROR(r.Skip(type));
    }
  }
  return Status::Ok();
}

Status ParseGraphInner(Sub sub, GraphProto* out, int depth) {
  WireReader r(sub.bytes, sub.base);
  if (depth > kMaxNestingDepth) return TooDeep(r);
  while (!r.done()) {
    uint32_t field;
    WireType type;
    RETURN_IF_ERROR(r.ReadTag(&field, &type));
    Sub s;
    switch (field) {
      case 1: {
        RETURN_IF_ERROR(ReadSub(r, type, &s));
        NodeProto n;
        RETURN_IF_ERROR(ParseNode(s, &n, depth));
        out->node.push_back(std::move(n));
        break;
      }
      case 2:
        RETURN_IF_ERROR(r.ReadString(type, &out->name));
        break;
      case 5: {
        RETURN_IF_ERROR(ReadSub(r, type, &s));
        TensorProto t;
        RETURN_IF_ERROR(ParseTensorInner(s, &t));
        out->initializer.push_back(std::move(t));
        break;
      }
      case 15:
        ++out->sparse_initializer_count;
        RETURN_IF_ERROR(r.Skip(type));
        break;
      case 10:
        RETURN_IF_ERROR(r.ReadString(type, &out->doc_string));
        break;
      case 11:
      case 12:
      case 13: {
        RETURN_IF_ERROR(ReadSub(r, type, &s));
        ValueInfoProto v;
        RETURN_IF_ERROR(ParseValueInfo(s, &v));
        (field == 11   ? out->input
         : field == 12 ? out->output
                       : out->value_info)
            .push_back(std::move(v));
        break;
      }
      default:
        RETURN_IF_ERROR(r.Skip(type));
    }
  }
  return Status::Ok();
}

}  // namespace

std::string_view AttributeTypeName(int32_t type) {
  switch (type) {
    case AttributeProto::kFloat:
      return "FLOAT";
    case AttributeProto::kInt:
      return "INT";
    case AttributeProto::kString:
      return "STRING";
    case AttributeProto::kTensor:
      return "TENSOR";
    case AttributeProto::kGraph:
      return "GRAPH";
    case AttributeProto::kFloats:
      return "FLOATS";
    case AttributeProto::kInts:
      return "INTS";
    case AttributeProto::kStrings:
      return "STRINGS";
    case AttributeProto::kTensors:
      return "TENSORS";
    case AttributeProto::kGraphs:
      return "GRAPHS";
    case AttributeProto::kSparseTensor:
      return "SPARSE_TENSOR";
    case AttributeProto::kSparseTensors:
      return "SPARSE_TENSORS";
    case AttributeProto::kTypeProto:
      return "TYPE_PROTO";
    case AttributeProto::kTypeProtos:
      return "TYPE_PROTOS";
    default:
      return "UNDEFINED";
  }
}

namespace {
std::string ElemName(int32_t t) {
  static constexpr const char* kNames[] = {"undefined",  "float",   "uint8",  "int8",   "uint16",
                                           "int16",      "int32",   "int64",  "string", "bool",
                                           "float16",    "double",  "uint32", "uint64", "complex64",
                                           "complex128", "bfloat16"};
  if (t >= 0 && t < static_cast<int32_t>(std::size(kNames))) return kNames[t];
  return "type" + std::to_string(t);
}
}  // namespace

std::string TypeProto::ToString() const {
  switch (kind) {
    case Kind::kTensor:
      return "tensor(" + ElemName(elem_type) + ")";
    case Kind::kSparseTensor:
      return "sparse_tensor(" + ElemName(elem_type) + ")";
    case Kind::kSequence:
      return "seq(" + (elem ? elem->ToString() : std::string("?")) + ")";
    case Kind::kOptional:
      return "optional(" + (elem ? elem->ToString() : std::string("?")) + ")";
    case Kind::kMap:
      return "map(" + ElemName(map_key_type) + "," + (elem ? elem->ToString() : std::string("?")) +
             ")";
    case Kind::kOpaque:
      return "opaque";
    case Kind::kUnset:
      return "unknown";
  }
  return "unknown";
}

Status ParseTensorProto(std::string_view bytes, TensorProto* out) {
  return ParseTensorInner(Sub{bytes, 0}, out);
}

Status ParseGraphProto(std::string_view bytes, GraphProto* out, int depth) {
  return ParseGraphInner(Sub{bytes, 0}, out, depth);
}

Status ParseModelProto(std::string_view bytes, ModelProto* out) {
  WireReader r(bytes, 0);
  while (!r.done()) {
    uint32_t field;
    WireType type;
    RETURN_IF_ERROR(r.ReadTag(&field, &type));
    Sub s;
    switch (field) {
      case 1:
        RETURN_IF_ERROR(r.ReadInt64(type, &out->ir_version));
        break;
      case 2:
        RETURN_IF_ERROR(r.ReadString(type, &out->producer_name));
        break;
      case 3:
        RETURN_IF_ERROR(r.ReadString(type, &out->producer_version));
        break;
      case 4:
        RETURN_IF_ERROR(r.ReadString(type, &out->domain));
        break;
      case 5:
        RETURN_IF_ERROR(r.ReadInt64(type, &out->model_version));
        break;
      case 6:
        RETURN_IF_ERROR(r.ReadString(type, &out->doc_string));
        break;
      case 7:
        RETURN_IF_ERROR(ReadSub(r, type, &s));
        out->graph = GraphProto();
        RETURN_IF_ERROR(ParseGraphInner(s, &out->graph, 0));
        out->has_graph = true;
        break;
      case 8: {
        RETURN_IF_ERROR(ReadSub(r, type, &s));
        std::pair<std::string, int64_t> op;
        RETURN_IF_ERROR(ParseOperatorSetId(s, &op));
        out->opset_import.push_back(std::move(op));
        break;
      }
      case 14: {
        RETURN_IF_ERROR(ReadSub(r, type, &s));
        std::pair<std::string, std::string> kv;
        RETURN_IF_ERROR(ParseStringStringEntry(s, &kv));
        out->metadata_props.push_back(std::move(kv));
        break;
      }
      case 25:
        ++out->function_count;
        RETURN_IF_ERROR(r.Skip(type));
        break;
      default:
        RETURN_IF_ERROR(r.Skip(type));
    }
  }
  return Status::Ok();
}

}  // namespace serveml::engine::onnx
