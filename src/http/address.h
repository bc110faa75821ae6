// Client IP addresses: parsing, loopback test, CIDR sets and the X-Forwarded-For rule used
// to find the client behind trusted reverse proxies. No Beast/Asio here: other layers
// (login throttling, rate limits) use these on Request::client_addr.
//
// Every address is handled in a 16-byte form where IPv4 a.b.c.d is the IPv4-mapped IPv6
// address ::ffff:a.b.c.d, so "10.0.0.0/8" also matches a dual-stack socket's
// "::ffff:10.1.2.3", and the canonical text of either spelling is "10.1.2.3".
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace serveml::http {

struct IpAddress {
  std::array<uint8_t, 16> bytes{};  // IPv4 is stored IPv4-mapped (::ffff:a.b.c.d)

  bool is_v4() const;  // true for IPv4-mapped addresses
  // Canonical text: dotted quad for IPv4 (also when it came IPv4-mapped), RFC 5952 for IPv6.
  std::string ToString() const;
  friend bool operator==(const IpAddress& a, const IpAddress& b) { return a.bytes == b.bytes; }
};

// Parses a bare IPv4 or IPv6 address ("10.0.0.1", "::1", "::ffff:10.0.0.1"). Also accepts,
// as found in forwarding headers, surrounding spaces, "[v6]", "[v6]:port", "v4:port" and an
// IPv6 zone suffix ("fe80::1%eth0", the zone is dropped). False for anything else
// (host names, empty text, "1.2.3", leading zeros inet_pton refuses).
bool ParseIpAddress(std::string_view text, IpAddress* out);

// True for 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104. False for text that is not an IP.
bool IsLoopback(std::string_view addr);
bool IsLoopback(const IpAddress& addr);

// The canonical text of an address (see IpAddress::ToString), or "" if it does not parse.
std::string CanonicalIp(std::string_view addr);

// What per-client limits count on: an IPv4 address (or any loopback address) itself, an
// IPv6 address's /64 network — one subscriber usually holds a whole /64 and can rotate
// through it at will. ClientNetwork zeroes the low 64 bits of a non-loopback IPv6 address;
// ClientNetworkKey gives its text ("2001:db8:1:2::/64", "192.0.2.7", "::1"), or the input
// unchanged when it is not an IP address.
IpAddress ClientNetwork(const IpAddress& addr);
std::string ClientNetworkKey(std::string_view addr);

// A set of networks ("10.0.0.0/8", "2001:db8::/32") and single addresses ("192.0.2.7",
// "::1"). Contains() is a linear scan: meant for short lists (trusted proxies, allow lists).
// Read-only use is thread safe.
class CidrSet {
 public:
  // Adds one network or address. False (set unchanged) on bad syntax or a prefix length
  // over 32 (IPv4) / 128 (IPv6). Host bits beyond the prefix are ignored ("10.0.0.1/8" is
  // 10.0.0.0/8).
  bool Add(std::string_view cidr);
  // Adds every entry; on the first bad one returns false and sets *bad to it (if non-null).
  // Entries before it stay added.
  bool AddAll(const std::vector<std::string>& cidrs, std::string* bad = nullptr);

  bool Contains(const IpAddress& addr) const;
  // False for text that is not an IP address.
  bool Contains(std::string_view addr) const;
  bool empty() const { return nets_.empty(); }
  size_t size() const { return nets_.size(); }

 private:
  struct Net {
    IpAddress base;      // host bits zero
    uint8_t prefix = 0;  // over the 128-bit (IPv4-mapped) form
  };
  std::vector<Net> nets_;
};

// The client address of a request that arrived from `peer` (the socket's address) with the
// given X-Forwarded-For value (all such headers joined with ","; may be empty):
//  - peer not in `trusted` (or not an IP): canonical peer (or `peer` as given if unparsable);
//  - otherwise the right-most X-Forwarded-For entry that is not itself in `trusted`;
//  - if every entry is trusted, the left-most one; if walking from the right meets an entry
//    that is not an IP address before an untrusted one, the last trusted address passed
//    (the hop nearest to us that is known to be real).
// The result is canonical text (see IpAddress::ToString).
std::string ClientAddressFor(std::string_view peer, std::string_view x_forwarded_for,
                             const CidrSet& trusted);

}  // namespace serveml::http
