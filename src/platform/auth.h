// Authentication primitives: password hashing (Argon2id), signed session tokens (JWT,
// HS256), API keys, and validation of registration fields.
//
// Thread safety: every free function is thread safe; a TokenSigner is immutable after
// construction, so one instance may be shared by all threads.
// Secrets: nothing here logs a password, token or key, and callers must not either.
// Times are Unix seconds (UTC).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace serveml::platform {

// --- Passwords -------------------------------------------------------------------------

// Argon2id cost. Defaults are libsodium's INTERACTIVE limits (2 passes, 64 MiB, ~0.1 s per
// hash on a server core); tests use ForTesting() to stay fast. Changing the cost only
// affects new hashes: VerifyPassword reads the parameters from the encoded string.
struct PasswordHashParams {
  uint64_t ops_limit = 2;               // crypto_pwhash_OPSLIMIT_INTERACTIVE
  size_t mem_limit = size_t{64} << 20;  // crypto_pwhash_MEMLIMIT_INTERACTIVE, bytes
  // The cheapest parameters libsodium accepts. Never use outside tests.
  static constexpr PasswordHashParams ForTesting() { return {1, size_t{8} << 10}; }
};

// Argon2id-hashes `password` with a fresh random salt; returns the self-describing
// encoded string ("$argon2id$v=19$m=...,t=...,p=1$salt$hash", < 128 bytes).
// Unavailable if the memory for the hash cannot be allocated.
Result<std::string> HashPassword(std::string_view password,
                                 const PasswordHashParams& params = PasswordHashParams());

// True if `password` matches `encoded` (as produced by HashPassword). False for a wrong
// password and for a malformed or empty encoded string.
bool VerifyPassword(std::string_view encoded, std::string_view password);

// Spends about as long as VerifyPassword against a real hash. Call it when a login names an
// unknown account so response time does not reveal which emails are registered.
void VerifyPasswordDummy(std::string_view password);

// True if `encoded` was made with other parameters than `params` (re-hash on next login).
bool PasswordNeedsRehash(std::string_view encoded,
                         const PasswordHashParams& params = PasswordHashParams());

// --- Session tokens --------------------------------------------------------------------

// Issues and verifies HS256 JWTs under a 32-byte key kept in a file.
// Immutable after construction; thread safe.
class TokenSigner {
 public:
  static constexpr size_t kKeyBytes = 32;

  // Reads the key from `key_path`, or generates a random one there on first start. The
  // file is written atomically (temp file, fsync, link into place, so it is never seen
  // half-written, and two processes starting at once agree on one key) with mode 0600. An
  // existing key file (symlinks are followed) readable by group or others is chmod-ed to
  // 0600 with a warning; if that is impossible (read-only mount) it is refused.
  // Errors: Internal if the file exists but is not exactly kKeyBytes bytes, has loose
  // permissions that cannot be fixed, or cannot be read/written.
  static Result<TokenSigner> LoadOrCreate(const std::string& key_path);
  // A signer over the given raw key (at least kKeyBytes bytes), e.g. derived from a master
  // key. InvalidInput if the key is too short.
  static Result<TokenSigner> FromKey(std::string_view key);

  // A compact JWT: header {"alg":"HS256","typ":"JWT"}, claims {sub, iat, exp, jti, gen}
  // where iat = now_seconds, exp = now_seconds + ttl_seconds, jti is 128 random bits (hex)
  // and gen the user's token generation (store::User::token_generation).
  std::string Issue(const std::string& user_id, int64_t ttl_seconds, int64_t now_seconds,
                    int64_t generation = 0) const;

  struct Claims {
    std::string subject;     // user id
    int64_t generation = 0;  // 0 when absent (tokens issued before generations existed)
    int64_t expires_at = 0;  // exp
  };
  // As Verify, returning the claims the server uses.
  Result<Claims> VerifyClaims(std::string_view token, int64_t now_seconds) const;

  // Returns the token's subject (user id) if the token is well formed, signed with this
  // key using HS256 (any other "alg", including "none", is rejected) and now_seconds < exp.
  // Every failure is Unauthorized with a short reason ("token expired", "invalid token
  // signature", "malformed token", "unsupported token algorithm").
  Result<std::string> Verify(std::string_view token, int64_t now_seconds) const;

 private:
  explicit TokenSigner(std::string key) : key_(std::move(key)) {}
  std::string key_;  // raw HMAC key
};

// --- API keys --------------------------------------------------------------------------

inline constexpr std::string_view kApiKeyPrefix = "sk-";
inline constexpr size_t kApiKeyRandomChars = 40;  // base62: ~238 bits of entropy
inline constexpr size_t kApiKeyDisplayPrefixChars = 7;

// "sk-" followed by 40 uniformly random base62 characters from the OS CSPRNG.
std::string GenerateApiKey();
// Lower-case hex sha256 of the full key: what the store keeps (MetadataStore::ApiKey).
// A plain hash is enough: the key is 238 random bits, so there is nothing to brute force.
std::string HashApiKey(std::string_view key);
// The first 7 characters ("sk-AbCd"), shown in listings to tell keys apart.
std::string ApiKeyPrefix(std::string_view key);
// True if `s` has the shape of a key from GenerateApiKey (lets the auth middleware tell an
// API key from a JWT bearer token without a lookup).
bool LooksLikeApiKey(std::string_view s);

// --- Registration fields ---------------------------------------------------------------

// A practical address check: one '@', a non-empty local part (<= 64 bytes) of printable
// ASCII without spaces or specials, a dotted domain of letters, digits and '-', total
// <= 254 bytes. ValidationError with a message naming the field otherwise.
Status ValidateEmail(std::string_view email);
// ASCII lower-case form under which emails are stored and looked up.
std::string NormalizeEmail(std::string_view email);
// 3..50 characters of [A-Za-z0-9_.-].
Status ValidateUsername(std::string_view username);
// At least 8 characters (UTF-8 code points) and at most 128 bytes.
Status ValidatePassword(std::string_view password);

}  // namespace serveml::platform
