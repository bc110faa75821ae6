#include "cli/output.h"

#include <algorithm>
#include <array>
#include <nlohmann/json.hpp>
#include <vector>

namespace serveml::cli {
namespace {

using nlohmann::json;

json ParseOrDiscard(std::string_view body) {
  return json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
}

std::string StringField(const json& obj, const char* key) {
  if (!obj.is_object()) return "";
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return "";
  if (it->is_string()) return it->get<std::string>();
  return it->dump();
}

// Keeps the first `max` characters (on a UTF-8 boundary) and marks the cut with "...".
std::string Truncate(const std::string& s, size_t max) {
  if (s.size() <= max) return s;
  size_t cut = max > 3 ? max - 3 : 0;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  return s.substr(0, cut) + "...";
}

std::string OneLine(std::string_view s, size_t max) {
  std::string out;
  for (char c : s) out += (c == '\n' || c == '\r' || c == '\t') ? ' ' : c;
  return Truncate(out, max);
}

void Redact(json& j) {
  static const std::array<const char*, 5> kSecretKeys = {"access_token", "refresh_token", "token",
                                                         "api_key", "password"};
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) {
      const bool secret = std::any_of(kSecretKeys.begin(), kSecretKeys.end(),
                                      [&](const char* k) { return it.key() == k; });
      if (secret && it->is_string()) {
        *it = "<redacted>";
      } else {
        Redact(*it);
      }
    }
  } else if (j.is_array()) {
    for (auto& e : j) Redact(e);
  }
}

}  // namespace

std::string ApiErrorCode(std::string_view body) {
  json doc = ParseOrDiscard(body);
  if (!doc.is_object()) return "";
  auto err = doc.find("error");
  if (err == doc.end() || !err->is_object()) return "";
  return StringField(*err, "code");
}

std::string FormatApiError(long http_status, std::string_view body,
                           std::string_view header_request_id) {
  json doc = ParseOrDiscard(body);
  std::string request_id = StringField(doc, "request_id");
  if (request_id.empty()) request_id = std::string(header_request_id);
  const std::string suffix = request_id.empty() ? "" : " (" + request_id + ")";

  if (doc.is_object()) {
    auto err = doc.find("error");
    if (err != doc.end() && err->is_object()) {
      std::string code = StringField(*err, "code");
      if (code.empty()) code = "HTTP " + std::to_string(http_status);
      std::string out = code + ": " + StringField(*err, "message") + suffix;
      auto details = err->find("details");
      if (details != err->end() && (details->is_object() || details->is_array()) &&
          !details->empty()) {
        out += "\n  details: " + OneLine(details->dump(), 2000);
      }
      return out;
    }
    // Other JSON shapes, e.g. FastAPI's {"detail": ...} or {"message": ...}.
    for (const char* key : {"message", "detail", "error"}) {
      std::string text = StringField(doc, key);
      if (!text.empty()) {
        return "HTTP " + std::to_string(http_status) + ": " + OneLine(text, 500) + suffix;
      }
    }
  }
  std::string text = OneLine(body, 200);
  if (text.empty()) text = "(empty response)";
  return "HTTP " + std::to_string(http_status) + ": " + text + suffix;
}

Result<std::string> FormatDeploymentTable(std::string_view body) {
  json doc = ParseOrDiscard(body);
  const json* items = nullptr;
  if (doc.is_array()) {
    items = &doc;
  } else if (doc.is_object() && doc.contains("items") && doc["items"].is_array()) {
    items = &doc["items"];
  } else {
    return Internal("unexpected response from the server (no \"items\" list)");
  }
  if (items->empty()) return std::string("No deployments.\n");

  const std::array<std::string, 5> headers = {"ID", "NAME", "STATUS", "FRAMEWORK", "CREATED"};
  std::vector<std::array<std::string, 5>> rows;
  for (const json& d : *items) {
    std::string framework = StringField(d, "framework");
    if (d.is_object() && d.contains("model_metadata")) {
      std::string f = StringField(d["model_metadata"], "framework");
      if (!f.empty()) framework = f;
    }
    rows.push_back({OneLine(StringField(d, "id"), 64), OneLine(StringField(d, "name"), 32),
                    OneLine(StringField(d, "status"), 16), OneLine(framework, 16),
                    OneLine(StringField(d, "created_at"), 32)});
  }
  std::array<size_t, 5> width{};
  for (size_t c = 0; c < 5; ++c) {
    width[c] = headers[c].size();
    for (const auto& r : rows) width[c] = std::max(width[c], r[c].size());
  }
  auto line = [&](const std::array<std::string, 5>& cells) {
    std::string out;
    for (size_t c = 0; c < 5; ++c) {
      out += cells[c];
      if (c + 1 < 5) out.append(width[c] - cells[c].size() + 2, ' ');
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out + "\n";
  };
  std::string out = line(headers);
  for (const auto& r : rows) out += line(r);

  size_t total = rows.size();
  if (doc.is_object()) {
    auto it = doc.find("total");
    if (it != doc.end() && it->is_number_unsigned()) total = it->get<size_t>();
  }
  out += std::to_string(rows.size()) + " of " + std::to_string(total) +
         (total == 1 ? " deployment\n" : " deployments\n");
  return out;
}

std::string RedactSecrets(std::string_view body) {
  json doc = ParseOrDiscard(body);
  if (doc.is_discarded()) return std::string(body);
  Redact(doc);
  return doc.dump(2);
}

std::string PrettyJson(std::string_view body) {
  json doc = ParseOrDiscard(body);
  if (doc.is_discarded()) return std::string(body);
  return doc.dump(2);
}

}  // namespace serveml::cli
