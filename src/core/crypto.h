// Hashing and randomness (libsodium). Thread safe; InitCrypto() must run once at startup
// before any other function here (it is cheap and idempotent).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace serveml {

// Initializes libsodium. Returns false if the library cannot start (then nothing works).
bool InitCrypto();

// Incremental SHA-256.
class Sha256 {
 public:
  Sha256();
  void Update(const void* data, size_t len);
  // Lower-case hex digest. Call once.
  std::string FinishHex();

 private:
  alignas(16) unsigned char state_[128];  // crypto_hash_sha256_state, opaque
};

std::string Sha256Hex(std::string_view data);
// HMAC-SHA256 of `data` under `key`, raw 32 bytes.
std::string HmacSha256(std::string_view key, std::string_view data);
// Constant-time equality.
bool ConstantTimeEquals(std::string_view a, std::string_view b);
// `n` random bytes from the OS CSPRNG.
std::string RandomBytes(size_t n);
// 2*n lower-case hex chars of randomness.
std::string RandomHex(size_t n_bytes);
// Random version-4 UUID, "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx".
std::string NewUuid();
// URL-safe base64 without padding (JWT's encoding) and its inverse (false on bad input).
std::string Base64UrlEncode(std::string_view data);
bool Base64UrlDecode(std::string_view in, std::string* out);

}  // namespace serveml
