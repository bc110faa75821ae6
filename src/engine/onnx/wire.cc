#include "engine/onnx/wire.h"

#include <cstring>

namespace serveml::engine::onnx {

Status MalformedAt(size_t offset, std::string_view what) {
  std::string m = "malformed protobuf: ";
  m += what;
  m += " at byte ";
  m += std::to_string(offset);
  return InvalidInput(std::move(m));
}

Status WireReader::Error(const char* what) const { return MalformedAt(offset(), what); }

Status WireReader::ReadVarint(uint64_t* v) {
  uint64_t result = 0;
  for (int i = 0; i < 10; ++i) {
    if (pos_ >= data_.size()) return Error("truncated varint");
    uint8_t b = static_cast<uint8_t>(data_[pos_++]);
    if (i == 9 && b > 1) return Error("varint longer than 64 bits");
    result |= static_cast<uint64_t>(b & 0x7f) << (7 * i);
    if ((b & 0x80) == 0) {
      *v = result;
      return Status::Ok();
    }
  }
  return Error("varint longer than 10 bytes");
}

Status WireReader::ReadTag(uint32_t* field, WireType* type) {
  uint64_t key = 0;
  RETURN_IF_ERROR(ReadVarint(&key));
  uint64_t f = key >> 3;
  uint32_t t = static_cast<uint32_t>(key & 7);
  if (f == 0 || f > 0x1fffffff) return Error("invalid field number");
  if (t == 3 || t == 4) return Error("groups (wire type 3/4) are not supported");
  if (t > 5) return Error("invalid wire type");
  *field = static_cast<uint32_t>(f);
  *type = static_cast<WireType>(t);
  return Status::Ok();
}

Status WireReader::ReadFixed32(uint32_t* v) {
  if (remaining() < 4) return Error("truncated fixed32");
  std::memcpy(v, data_.data() + pos_, 4);
  pos_ += 4;
  return Status::Ok();
}

Status WireReader::ReadFixed64(uint64_t* v) {
  if (remaining() < 8) return Error("truncated fixed64");
  std::memcpy(v, data_.data() + pos_, 8);
  pos_ += 8;
  return Status::Ok();
}

Status WireReader::ReadBytes(std::string_view* v) {
  uint64_t len = 0;
  RETURN_IF_ERROR(ReadVarint(&len));
  if (len > remaining()) return Error("length exceeds remaining bytes");
  *v = data_.substr(pos_, static_cast<size_t>(len));
  pos_ += static_cast<size_t>(len);
  return Status::Ok();
}

Status WireReader::Skip(WireType type) {
  switch (type) {
    case WireType::kVarint: {
      uint64_t v;
      return ReadVarint(&v);
    }
    case WireType::kFixed64: {
      uint64_t v;
      return ReadFixed64(&v);
    }
    case WireType::kFixed32: {
      uint32_t v;
      return ReadFixed32(&v);
    }
    case WireType::kLengthDelimited: {
      std::string_view v;
      return ReadBytes(&v);
    }
    default:
      return Error("cannot skip group");
  }
}

Status WireReader::ReadInt64(WireType type, int64_t* v) {
  if (type != WireType::kVarint) return Error("expected a varint field");
  uint64_t u = 0;
  RETURN_IF_ERROR(ReadVarint(&u));
  *v = static_cast<int64_t>(u);
  return Status::Ok();
}

Status WireReader::ReadInt32(WireType type, int32_t* v) {
  int64_t w = 0;
  RETURN_IF_ERROR(ReadInt64(type, &w));
  *v = static_cast<int32_t>(w);  // protobuf semantics: truncate to 32 bits
  return Status::Ok();
}

Status WireReader::ReadFloat(WireType type, float* v) {
  if (type != WireType::kFixed32) return Error("expected a fixed32 (float) field");
  uint32_t u = 0;
  RETURN_IF_ERROR(ReadFixed32(&u));
  std::memcpy(v, &u, 4);
  return Status::Ok();
}

Status WireReader::ReadDouble(WireType type, double* v) {
  if (type != WireType::kFixed64) return Error("expected a fixed64 (double) field");
  uint64_t u = 0;
  RETURN_IF_ERROR(ReadFixed64(&u));
  std::memcpy(v, &u, 8);
  return Status::Ok();
}

Status WireReader::ReadView(WireType type, std::string_view* v) {
  if (type != WireType::kLengthDelimited) return Error("expected a length-delimited field");
  return ReadBytes(v);
}

Status WireReader::ReadString(WireType type, std::string* v) {
  std::string_view s;
  RETURN_IF_ERROR(ReadView(type, &s));
  v->assign(s.data(), s.size());
  return Status::Ok();
}

void WireWriter::Fixed32(uint32_t v) {
  char b[4];
  std::memcpy(b, &v, 4);
  out_.append(b, 4);
}

void WireWriter::Fixed64(uint64_t v) {
  char b[8];
  std::memcpy(b, &v, 8);
  out_.append(b, 8);
}

void WireWriter::FloatField(uint32_t field, float v) {
  Tag(field, WireType::kFixed32);
  uint32_t u;
  std::memcpy(&u, &v, 4);
  Fixed32(u);
}

void WireWriter::DoubleField(uint32_t field, double v) {
  Tag(field, WireType::kFixed64);
  uint64_t u;
  std::memcpy(&u, &v, 8);
  Fixed64(u);
}

}  // namespace serveml::engine::onnx
