#include "http/address.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace serveml::http {

namespace {

constexpr std::array<uint8_t, 12> kV4MappedPrefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool AllDigits(std::string_view s) {
  if (s.empty() || s.size() > 5) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// inet_pton on a non-terminated view.
bool Pton(int family, std::string_view text, void* out) {
  char buf[64];
  if (text.empty() || text.size() >= sizeof(buf)) return false;
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  return inet_pton(family, buf, out) == 1;
}

// A bare address: no brackets, port or zone.
bool ParseBare(std::string_view text, IpAddress* out) {
  IpAddress a;
  if (text.find(':') == std::string_view::npos) {
    if (!Pton(AF_INET, text, a.bytes.data() + 12)) return false;
    std::memcpy(a.bytes.data(), kV4MappedPrefix.data(), kV4MappedPrefix.size());
  } else {
    if (!Pton(AF_INET6, text, a.bytes.data())) return false;
  }
  *out = a;
  return true;
}

}  // namespace

bool IpAddress::is_v4() const {
  return std::memcmp(bytes.data(), kV4MappedPrefix.data(), kV4MappedPrefix.size()) == 0;
}

std::string IpAddress::ToString() const {
  char buf[INET6_ADDRSTRLEN];
  const char* r = is_v4() ? inet_ntop(AF_INET, bytes.data() + 12, buf, sizeof(buf))
                          : inet_ntop(AF_INET6, bytes.data(), buf, sizeof(buf));
  return r != nullptr ? std::string(r) : std::string();
}

bool ParseIpAddress(std::string_view text, IpAddress* out) {
  text = Trim(text);
  if (text.empty()) return false;
  if (text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) return false;
    std::string_view rest = text.substr(close + 1);
    if (!rest.empty() && !(rest.front() == ':' && AllDigits(rest.substr(1)))) return false;
    text = text.substr(1, close - 1);
  } else {
    size_t colon = text.find(':');
    // Exactly one colon: "v4:port" (an IPv6 address has at least two).
    if (colon != std::string_view::npos && text.find(':', colon + 1) == std::string_view::npos) {
      if (!AllDigits(text.substr(colon + 1))) return false;
      text = text.substr(0, colon);
      if (text.find('.') == std::string_view::npos) return false;
    }
  }
  size_t zone = text.find('%');
  if (zone != std::string_view::npos) {
    if (text.find(':') == std::string_view::npos || zone + 1 == text.size()) return false;
    text = text.substr(0, zone);
  }
  return ParseBare(text, out);
}

bool IsLoopback(const IpAddress& addr) {
  if (addr.is_v4()) return addr.bytes[12] == 127;
  for (size_t i = 0; i < 15; ++i) {
    if (addr.bytes[i] != 0) return false;
  }
  return addr.bytes[15] == 1;
}

bool IsLoopback(std::string_view addr) {
  IpAddress a;
  return ParseIpAddress(addr, &a) && IsLoopback(a);
}

std::string CanonicalIp(std::string_view addr) {
  IpAddress a;
  return ParseIpAddress(addr, &a) ? a.ToString() : std::string();
}

IpAddress ClientNetwork(const IpAddress& addr) {
  if (addr.is_v4() || IsLoopback(addr)) return addr;
  IpAddress net = addr;
  for (size_t i = 8; i < 16; ++i) net.bytes[i] = 0;
  return net;
}

std::string ClientNetworkKey(std::string_view addr) {
  IpAddress a;
  if (!ParseIpAddress(addr, &a)) return std::string(addr);
  if (a.is_v4() || IsLoopback(a)) return a.ToString();
  return ClientNetwork(a).ToString() + "/64";
}

bool CidrSet::Add(std::string_view cidr) {
  cidr = Trim(cidr);
  std::string_view addr = cidr;
  unsigned prefix = 0;
  bool has_prefix = false;
  size_t slash = cidr.find('/');
  if (slash != std::string_view::npos) {
    std::string_view len = cidr.substr(slash + 1);
    if (len.empty() || len.size() > 3) return false;
    has_prefix = true;
    auto r = std::from_chars(len.data(), len.data() + len.size(), prefix);
    if (r.ec != std::errc() || r.ptr != len.data() + len.size()) return false;
    addr = cidr.substr(0, slash);
  }
  Net n;
  // Only bare addresses here: "v4:port" or "[v6]" make no sense in a network list.
  if (addr.empty() || addr.front() == '[' || !ParseBare(addr, &n.base)) return false;
  bool v4_text = addr.find(':') == std::string_view::npos;
  unsigned max_len = v4_text ? 32 : 128;
  if (!has_prefix) prefix = max_len;
  if (prefix > max_len) return false;
  n.prefix = static_cast<uint8_t>(v4_text ? prefix + 96 : prefix);
  for (unsigned bit = n.prefix; bit < 128; ++bit) {
    n.base.bytes[bit / 8] &= static_cast<uint8_t>(~(0x80u >> (bit % 8)));
  }
  nets_.push_back(n);
  return true;
}

bool CidrSet::AddAll(const std::vector<std::string>& cidrs, std::string* bad) {
  for (const std::string& c : cidrs) {
    if (!Add(c)) {
      if (bad != nullptr) *bad = c;
      return false;
    }
  }
  return true;
}

bool CidrSet::Contains(const IpAddress& addr) const {
  for (const Net& n : nets_) {
    size_t full = n.prefix / 8;
    if (std::memcmp(addr.bytes.data(), n.base.bytes.data(), full) != 0) continue;
    int rest = n.prefix % 8;
    if (rest != 0) {
      uint8_t mask = static_cast<uint8_t>(0xff00u >> rest);
      if ((addr.bytes[full] & mask) != n.base.bytes[full]) continue;
    }
    return true;
  }
  return false;
}

bool CidrSet::Contains(std::string_view addr) const {
  IpAddress a;
  return ParseIpAddress(addr, &a) && Contains(a);
}

std::string ClientAddressFor(std::string_view peer, std::string_view x_forwarded_for,
                             const CidrSet& trusted) {
  IpAddress current;
  if (!ParseIpAddress(peer, &current)) return std::string(peer);
  if (!trusted.Contains(current)) return current.ToString();
  // Walk the entries right to left; `current` is the last trusted hop passed.
  std::string_view rest = x_forwarded_for;
  while (!Trim(rest).empty()) {
    size_t comma = rest.rfind(',');
    std::string_view entry = comma == std::string_view::npos ? rest : rest.substr(comma + 1);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(0, comma);
    if (Trim(entry).empty()) continue;  // "a, , b"
    IpAddress hop;
    if (!ParseIpAddress(entry, &hop)) break;
    current = hop;
    if (!trusted.Contains(hop)) break;
  }
  return current.ToString();
}

}  // namespace serveml::http
