// A tiny pickle writer for tests: emits opcodes by hand so tests can build exactly the
// streams they need (valid, hostile or malformed) without Python.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace serveml::importers::pickle::testing {

class P {
 public:
  P() { s_ += "\x80\x04"; }  // PROTO 4
  explicit P(int proto) { s_ += '\x80', s_ += static_cast<char>(proto); }
  static P Raw() {
    P p;
    p.s_.clear();
    return p;
  }

  P& op(char c) {
    s_ += c;
    return *this;
  }
  P& op(uint8_t c) {
    s_ += static_cast<char>(c);
    return *this;
  }
  P& bytes(const std::string& b) {
    s_ += b;
    return *this;
  }
  P& u32(uint32_t v) {
    for (int i = 0; i < 4; ++i) s_ += static_cast<char>((v >> (8 * i)) & 0xFF);
    return *this;
  }
  P& u64(uint64_t v) {
    for (int i = 0; i < 8; ++i) s_ += static_cast<char>((v >> (8 * i)) & 0xFF);
    return *this;
  }

  P& none() { return op('N'); }
  P& boolean(bool b) { return op(static_cast<uint8_t>(b ? 0x88 : 0x89)); }
  P& i(int32_t v) {  // BININT
    op('J');
    return u32(static_cast<uint32_t>(v));
  }
  P& f(double d) {  // BINFLOAT (big-endian)
    uint64_t u;
    std::memcpy(&u, &d, 8);
    op('G');
    for (int k = 7; k >= 0; --k) s_ += static_cast<char>((u >> (8 * k)) & 0xFF);
    return *this;
  }
  P& str(const std::string& v) {  // SHORT_BINUNICODE / BINUNICODE
    if (v.size() < 256) {
      op(static_cast<uint8_t>(0x8c));
      s_ += static_cast<char>(v.size());
    } else {
      op('X');
      u32(static_cast<uint32_t>(v.size()));
    }
    s_ += v;
    return *this;
  }
  P& bin(const std::string& v) {  // BINBYTES
    op('B');
    u32(static_cast<uint32_t>(v.size()));
    s_ += v;
    return *this;
  }
  P& global(const std::string& module, const std::string& name) {
    op('c');
    s_ += module + "\n" + name + "\n";
    return *this;
  }
  P& stack_global(const std::string& module, const std::string& name) {
    str(module).str(name);
    return op(static_cast<uint8_t>(0x93));
  }
  P& mark() { return op('('); }
  P& tuple() { return op('t'); }
  P& tuple1() { return op(static_cast<uint8_t>(0x85)); }
  P& tuple2() { return op(static_cast<uint8_t>(0x86)); }
  P& tuple3() { return op(static_cast<uint8_t>(0x87)); }
  P& empty_tuple() { return op(')'); }
  P& empty_dict() { return op('}'); }
  P& empty_list() { return op(']'); }
  P& setitem() { return op('s'); }
  P& setitems() { return op('u'); }
  P& appends() { return op('e'); }
  P& reduce() { return op('R'); }
  P& build() { return op('b'); }
  P& newobj() { return op(static_cast<uint8_t>(0x81)); }
  P& memoize() { return op(static_cast<uint8_t>(0x94)); }
  P& stop() { return op('.'); }

  // numpy dtype via numpy.dtype(typestr, False, True) + BUILD state.
  P& dtype(const std::string& typestr, const std::string& order = "<") {
    global("numpy", "dtype").str(typestr).boolean(false).boolean(true).tuple3().reduce();
    return mark().i(3).str(order).none().none().none().i(-1).i(-1).i(0).tuple().build();
  }
  // A C- or Fortran-ordered array: _reconstruct(ndarray, (0,), b'b') + BUILD.
  P& array(const std::string& typestr, std::vector<int32_t> shape, const std::string& raw,
           bool fortran = false, const std::string& order = "<") {
    global("numpy._core.multiarray", "_reconstruct").global("numpy", "ndarray");
    i(0).tuple1().bin("b").tuple3().reduce();
    mark().i(1).mark();
    for (int32_t d : shape) i(d);
    tuple();
    dtype(typestr, order).boolean(fortran).bin(raw).tuple().build();
    return *this;
  }
  // A sklearn object: NEWOBJ(cls, ()) + BUILD({...}); the caller writes the dict items
  // between begin_object and end_object (key, value pairs).
  P& begin_object(const std::string& module, const std::string& name) {
    global(module, name).empty_tuple().newobj();
    return empty_dict().mark();
  }
  P& end_object() { return setitems().build(); }

  const std::string& data() const { return s_; }
  std::string done() { return stop().s_; }

 private:
  std::string s_;
};

inline std::string Doubles(std::vector<double> v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(double));
}

}  // namespace serveml::importers::pickle::testing
