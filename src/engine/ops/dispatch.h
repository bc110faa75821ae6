// Element-type dispatch for kernels: Dispatch<float, double>(dtype, f) calls f(T{}) for the
// C++ type T whose DType equals dtype, or returns InvalidInput naming the unsupported type.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"
#include "core/tensor.h"

namespace serveml::engine {

// Storage type for float16 elements (bits only; convert with float16.h).
struct Half {
  uint16_t bits;
};

template <typename T>
struct EngineDType {
  static constexpr DType value = DTypeOf<T>::value;
};
template <>
struct EngineDType<Half> {
  static constexpr DType value = DType::kFloat16;
};
template <>
struct EngineDType<std::string> {
  static constexpr DType value = DType::kString;
};

inline Status UnsupportedType(DType t, std::string_view op) {
  std::string m = "element type ";
  m += DTypeName(t);
  m += " is not supported by ";
  m += op;
  return InvalidInput(std::move(m));
}

template <typename... Ts, typename F>
Status Dispatch(DType t, std::string_view op, F&& f) {
  Status st;
  bool matched = false;
  ((!matched && t == EngineDType<Ts>::value ? (matched = true, st = f(Ts{}), 0) : 0), ...);
  if (!matched) return UnsupportedType(t, op);
  return st;
}

// Common type lists, spelled out at call sites as template arguments:
#define SERVEML_FLOAT_TYPES float, double
#define SERVEML_INT_TYPES int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
#define SERVEML_NUMERIC_TYPES SERVEML_FLOAT_TYPES, SERVEML_INT_TYPES

}  // namespace serveml::engine
