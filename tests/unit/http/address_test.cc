#include "http/address.h"

#include <gtest/gtest.h>

namespace serveml::http {
namespace {

TEST(AddressTest, ParseAndCanonicalText) {
  EXPECT_EQ(CanonicalIp("10.0.0.1"), "10.0.0.1");
  EXPECT_EQ(CanonicalIp(" 10.0.0.1 "), "10.0.0.1");
  EXPECT_EQ(CanonicalIp("::ffff:10.0.0.1"), "10.0.0.1");  // mapped IPv4 is IPv4
  EXPECT_EQ(CanonicalIp("2001:DB8:0:0:0:0:0:1"), "2001:db8::1");
  EXPECT_EQ(CanonicalIp("[2001:db8::1]"), "2001:db8::1");
  EXPECT_EQ(CanonicalIp("[2001:db8::1]:8443"), "2001:db8::1");
  EXPECT_EQ(CanonicalIp("192.0.2.1:55000"), "192.0.2.1");
  EXPECT_EQ(CanonicalIp("fe80::1%eth0"), "fe80::1");
  for (const char* bad : {"", " ", "example.com", "1.2.3", "1.2.3.4.5", "256.1.1.1", "::g", "[::1",
                          "[::1]x", "1.2.3.4:port", "unknown", "1.2.3.4%eth0"}) {
    EXPECT_EQ(CanonicalIp(bad), "") << bad;
  }
  IpAddress a, b;
  ASSERT_TRUE(ParseIpAddress("127.0.0.1", &a));
  ASSERT_TRUE(ParseIpAddress("::ffff:127.0.0.1", &b));
  EXPECT_TRUE(a == b);
  EXPECT_TRUE(a.is_v4());
  ASSERT_TRUE(ParseIpAddress("::1", &b));
  EXPECT_FALSE(b.is_v4());
}

TEST(AddressTest, Loopback) {
  EXPECT_TRUE(IsLoopback("127.0.0.1"));
  EXPECT_TRUE(IsLoopback("127.255.3.4"));
  EXPECT_TRUE(IsLoopback("::1"));
  EXPECT_TRUE(IsLoopback("::ffff:127.0.0.1"));
  EXPECT_FALSE(IsLoopback("128.0.0.1"));
  EXPECT_FALSE(IsLoopback("10.0.0.1"));
  EXPECT_FALSE(IsLoopback("::2"));
  EXPECT_FALSE(IsLoopback("::"));
  EXPECT_FALSE(IsLoopback("localhost"));  // names are not resolved
  EXPECT_FALSE(IsLoopback(""));
}

TEST(AddressTest, CidrSetIpv4) {
  CidrSet s;
  EXPECT_TRUE(s.Add("10.0.0.0/8"));
  EXPECT_TRUE(s.Add("192.168.1.0/24"));
  EXPECT_TRUE(s.Add("203.0.113.7"));
  EXPECT_TRUE(s.Add("172.16.0.0/12"));
  EXPECT_TRUE(s.Contains("10.255.1.2"));
  EXPECT_TRUE(s.Contains("::ffff:10.1.2.3"));  // a dual-stack socket's spelling
  EXPECT_TRUE(s.Contains("192.168.1.200"));
  EXPECT_FALSE(s.Contains("192.168.2.1"));
  EXPECT_TRUE(s.Contains("203.0.113.7"));
  EXPECT_FALSE(s.Contains("203.0.113.8"));
  EXPECT_TRUE(s.Contains("172.31.255.255"));
  EXPECT_FALSE(s.Contains("172.32.0.0"));
  EXPECT_FALSE(s.Contains("11.0.0.1"));
  EXPECT_FALSE(s.Contains("not-an-ip"));
  // An IPv4 network does not swallow IPv6 addresses with the same low bits.
  EXPECT_FALSE(s.Contains("::a00:1"));

  CidrSet all;
  EXPECT_TRUE(all.Add("0.0.0.0/0"));
  EXPECT_TRUE(all.Contains("8.8.8.8"));
  EXPECT_FALSE(all.Contains("2001:db8::1"));

  CidrSet host_bits;
  EXPECT_TRUE(host_bits.Add("10.1.2.3/16"));  // host bits ignored
  EXPECT_TRUE(host_bits.Contains("10.1.99.99"));
  EXPECT_FALSE(host_bits.Contains("10.2.0.0"));
}

TEST(AddressTest, CidrSetIpv6AndErrors) {
  CidrSet s;
  EXPECT_TRUE(s.Add("2001:db8::/32"));
  EXPECT_TRUE(s.Add("::1"));
  EXPECT_TRUE(s.Add("fd00:1234:5600::/41"));
  EXPECT_TRUE(s.Contains("2001:db8:ffff::1"));
  EXPECT_TRUE(s.Contains("[2001:db8::5]:443"));
  EXPECT_FALSE(s.Contains("2001:db9::1"));
  EXPECT_TRUE(s.Contains("::1"));
  EXPECT_FALSE(s.Contains("::2"));
  EXPECT_TRUE(s.Contains("fd00:1234:567f:ffff::1"));  // 41 bits: 0x56 then top bit of 0x7f = 0
  EXPECT_FALSE(s.Contains("fd00:1234:5680::1"));      // 0x80 flips bit 41
  EXPECT_FALSE(s.Contains("10.0.0.1"));

  CidrSet bad;
  for (const char* e : {"", "10.0.0.0/33", "2001:db8::/129", "10.0.0.0/", "10.0.0.0/x",
                        "10.0.0.0/-1", "host.example", "[::1]", "10.0.0.0/8/8", "1.2.3.4:80"}) {
    EXPECT_FALSE(bad.Add(e)) << e;
  }
  EXPECT_TRUE(bad.empty());
  std::string which;
  EXPECT_FALSE(bad.AddAll({"10.0.0.0/8", "nope", "::1"}, &which));
  EXPECT_EQ(which, "nope");
  EXPECT_EQ(bad.size(), 1u);
}

TEST(AddressTest, ClientAddressBehindTrustedProxies) {
  CidrSet trusted;
  ASSERT_TRUE(trusted.Add("10.0.0.0/8"));
  ASSERT_TRUE(trusted.Add("2001:db8:1::/48"));

  // An untrusted peer: X-Forwarded-For is ignored whatever it says.
  EXPECT_EQ(ClientAddressFor("198.51.100.1", "1.1.1.1", trusted), "198.51.100.1");
  EXPECT_EQ(ClientAddressFor("::ffff:198.51.100.1", "", trusted), "198.51.100.1");
  // A trusted peer: the right-most entry that is not a trusted proxy.
  EXPECT_EQ(ClientAddressFor("10.0.0.5", "203.0.113.9", trusted), "203.0.113.9");
  EXPECT_EQ(ClientAddressFor("10.0.0.5", "6.6.6.6, 203.0.113.9, 10.0.0.7", trusted),
            "203.0.113.9");  // the left part is whatever the client claimed
  EXPECT_EQ(ClientAddressFor("10.0.0.5", "6.6.6.6,203.0.113.9", trusted), "203.0.113.9");
  // IPv6 hops, bracketed and with a port.
  EXPECT_EQ(ClientAddressFor("2001:db8:1::10", "2001:db8:2::1, [2001:db8:1::20]:80", trusted),
            "2001:db8:2::1");
  EXPECT_EQ(ClientAddressFor("10.0.0.5", "[2001:db8:2::abcd]:1234", trusted), "2001:db8:2::abcd");
  // No header, or only trusted entries: the nearest / left-most known hop.
  EXPECT_EQ(ClientAddressFor("10.0.0.5", "", trusted), "10.0.0.5");
  EXPECT_EQ(ClientAddressFor("10.0.0.5", "  ", trusted), "10.0.0.5");
  EXPECT_EQ(ClientAddressFor("10.0.0.5", "10.0.0.9, 10.0.0.8", trusted), "10.0.0.9");
  // Garbage before an untrusted hop: stop at the last trusted hop we could verify.
  EXPECT_EQ(ClientAddressFor("10.0.0.5", "1.2.3.4, garbage, 10.0.0.8", trusted), "10.0.0.8");
  EXPECT_EQ(ClientAddressFor("10.0.0.5", "unknown", trusted), "10.0.0.5");
  // Empty list entries are skipped.
  EXPECT_EQ(ClientAddressFor("10.0.0.5", "203.0.113.9, ,", trusted), "203.0.113.9");
  // Nothing trusted: always the peer.
  EXPECT_EQ(ClientAddressFor("10.0.0.5", "1.1.1.1", CidrSet()), "10.0.0.5");
}

TEST(AddressTest, ClientNetworkIsTheAddressForIpv4AndTheSlash64ForIpv6) {
  EXPECT_EQ(ClientNetworkKey("192.0.2.7"), "192.0.2.7");
  EXPECT_EQ(ClientNetworkKey("::ffff:192.0.2.7"), "192.0.2.7");
  EXPECT_EQ(ClientNetworkKey("2001:db8:1:2:a:b:c:d"), "2001:db8:1:2::/64");
  EXPECT_EQ(ClientNetworkKey("2001:db8:1:2::ffff"), "2001:db8:1:2::/64");
  EXPECT_NE(ClientNetworkKey("2001:db8:1:3::1"), ClientNetworkKey("2001:db8:1:2::1"));
  EXPECT_EQ(ClientNetworkKey("2001:db8:1:2::"), "2001:db8:1:2::/64");
  EXPECT_EQ(ClientNetworkKey("::1"), "::1");  // loopback stays itself (exemptions match it)
  EXPECT_EQ(ClientNetworkKey("not an address"), "not an address");
  IpAddress a, b;
  ASSERT_TRUE(ParseIpAddress("2001:db8::1", &a));
  ASSERT_TRUE(ParseIpAddress("2001:db8::ffff:1", &b));
  EXPECT_EQ(ClientNetwork(a), ClientNetwork(b));
}

}  // namespace
}  // namespace serveml::http
