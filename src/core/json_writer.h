// JsonWriter: appends compact JSON to a std::string. No DOM, no allocation beyond the
// output string; numbers are written with std::to_chars (shortest round-trip form).
// Used on the prediction hot path and for log lines. Not thread safe (one per response).
//
// The writer inserts commas itself: call Key() then a value inside objects, values alone
// inside arrays.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace serveml {

// Appends `s` to `out` as a quoted, escaped JSON string.
void AppendJsonString(std::string& out, std::string_view s);
// Appends a double: shortest round-trip form; NaN and infinities become null (JSON has none).
void AppendJsonNumber(std::string& out, double v);
// Appends a float in its own shortest round-trip form (so 0.1f prints as 0.1).
void AppendJsonNumber(std::string& out, float v);
void AppendJsonInt(std::string& out, int64_t v);

class JsonWriter {
 public:
  explicit JsonWriter(std::string& out) : out_(out) {}

  JsonWriter& BeginObject() { Sep(); out_ += '{'; stack_.push_back(true); return *this; }
  JsonWriter& EndObject() { out_ += '}'; stack_.pop_back(); return *this; }
  JsonWriter& BeginArray() { Sep(); out_ += '['; stack_.push_back(true); return *this; }
  JsonWriter& EndArray() { out_ += ']'; stack_.pop_back(); return *this; }
  JsonWriter& Key(std::string_view k) {
    Sep();
    AppendJsonString(out_, k);
    out_ += ':';
    after_key_ = true;
    return *this;
  }
  JsonWriter& String(std::string_view v) { Sep(); AppendJsonString(out_, v); return *this; }
  JsonWriter& Double(double v) { Sep(); AppendJsonNumber(out_, v); return *this; }
  JsonWriter& Float(float v) { Sep(); AppendJsonNumber(out_, v); return *this; }
  JsonWriter& Int(int64_t v) { Sep(); AppendJsonInt(out_, v); return *this; }
  JsonWriter& Bool(bool v) { Sep(); out_ += v ? "true" : "false"; return *this; }
  JsonWriter& Null() { Sep(); out_ += "null"; return *this; }
  // Inserts already-serialized JSON as one value.
  JsonWriter& Raw(std::string_view json) { Sep(); out_ += json; return *this; }

 private:
  void Sep() {
    if (after_key_) { after_key_ = false; return; }
    if (stack_.empty()) return;
    if (stack_.back()) stack_.back() = false;
    else out_ += ',';
  }
  std::string& out_;
  std::vector<bool> stack_;  // per open container: "next element is the first"
  bool after_key_ = false;
};

}  // namespace serveml
