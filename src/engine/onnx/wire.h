// Protocol Buffers wire format, decoded and encoded by hand (no libprotobuf).
//
// WireReader walks one message's bytes with strict bounds checks: every read is checked
// against the remaining bytes, varints are at most 10 bytes, lengths never exceed what is
// left, and groups (wire types 3/4) are rejected. It never allocates. It does not own the
// bytes it reads; views it returns point into the caller's buffer.
//
// WireWriter appends encoded fields to a std::string it owns.
//
// Thread safety: instances are not shared; distinct instances are independent.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace serveml::engine::onnx {

enum class WireType : uint8_t {
  kVarint = 0,
  kFixed64 = 1,
  kLengthDelimited = 2,
  kStartGroup = 3,
  kEndGroup = 4,
  kFixed32 = 5,
};

class WireReader {
 public:
  // `base_offset` is the position of `bytes` inside the outermost buffer, used only to
  // make error messages point at the right byte.
  explicit WireReader(std::string_view bytes, size_t base_offset = 0)
      : data_(bytes), base_(base_offset) {}

  bool done() const { return pos_ >= data_.size(); }
  size_t remaining() const { return data_.size() - pos_; }
  // Absolute offset of the next unread byte (for messages).
  size_t offset() const { return base_ + pos_; }

  // Reads a field key. Field number 0, numbers above 2^29-1 and wire types 3, 4, 6, 7
  // are errors.
  Status ReadTag(uint32_t* field, WireType* type);
  Status ReadVarint(uint64_t* v);
  Status ReadFixed32(uint32_t* v);
  Status ReadFixed64(uint64_t* v);
  // A length-delimited payload; the view points into the reader's buffer.
  Status ReadBytes(std::string_view* v);
  // Skips one field value of the given wire type.
  Status Skip(WireType type);

  // Typed helpers for scalar fields (checking the wire type first).
  Status ReadInt64(WireType type, int64_t* v);
  Status ReadInt32(WireType type, int32_t* v);
  Status ReadFloat(WireType type, float* v);
  Status ReadDouble(WireType type, double* v);
  Status ReadString(WireType type, std::string* v);
  Status ReadView(WireType type, std::string_view* v);

 private:
  Status Error(const char* what) const;

  std::string_view data_;
  size_t base_;
  size_t pos_ = 0;
};

// "malformed protobuf: <what> at byte N".
Status MalformedAt(size_t offset, std::string_view what);

// zigzag decoding (sint32/sint64); ONNX itself does not use it but it is part of the format.
inline int64_t ZigZagDecode64(uint64_t v) {
  return static_cast<int64_t>((v >> 1) ^ (~(v & 1) + 1));
}
inline uint64_t ZigZagEncode64(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}

class WireWriter {
 public:
  void Tag(uint32_t field, WireType type) {
    Varint((static_cast<uint64_t>(field) << 3) | static_cast<uint64_t>(type));
  }
  void Varint(uint64_t v) {
    while (v >= 0x80) {
      out_.push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    out_.push_back(static_cast<char>(v));
  }
  void Fixed32(uint32_t v);
  void Fixed64(uint64_t v);

  void VarintField(uint32_t field, uint64_t v) {
    Tag(field, WireType::kVarint);
    Varint(v);
  }
  void Int64Field(uint32_t field, int64_t v) { VarintField(field, static_cast<uint64_t>(v)); }
  void FloatField(uint32_t field, float v);
  void DoubleField(uint32_t field, double v);
  void BytesField(uint32_t field, std::string_view v) {
    Tag(field, WireType::kLengthDelimited);
    Varint(v.size());
    out_.append(v);
  }

  const std::string& str() const& { return out_; }
  std::string&& str() && { return std::move(out_); }

 private:
  std::string out_;
};

}  // namespace serveml::engine::onnx
