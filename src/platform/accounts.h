// Accounts: registration, login, bearer authentication (JWT access tokens and `sk-` API
// keys) and API key management.
//
// Thread safety: all methods are thread safe. Register/Login hash passwords (Argon2id,
// tens of milliseconds and 64 MiB each) and touch the database: call them off the I/O
// threads. Authenticate() is fast for JWTs (one HMAC) and for API keys seen before (an
// in-memory cache); an unseen API key costs one database read.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/status.h"
#include "platform/auth.h"
#include "platform/login_throttle.h"
#include "store/metadata_store.h"

namespace serveml::platform {

// Who is calling.
struct Principal {
  std::string user_id;
  bool via_api_key = false;
  std::string api_key_id;
  std::vector<std::string> scopes;  // API keys only; tokens may do everything
  // True if the caller may use `scope` ("predict", "manage").
  bool Can(std::string_view scope) const;
};

struct RegisterResult {
  store::User user;
  std::string access_token;
};

struct CreatedApiKey {
  store::ApiKey key;
  std::string plaintext;  // shown to the user once, never stored
};

// Abuse limits of the account routes (docs/operations.md).
struct AccountsOptions {
  bool registration_open = true;                    // --registration open|closed
  int64_t registrations_per_hour_per_address = 20;  // --registrations-per-hour (0 = off)
  LoginThrottleOptions login;                       // --login-free-failures, ...
  // Loopback clients are not throttled (benchmarks and local tests); off by default.
  bool exempt_loopback = false;
  PasswordHashParams password_hash;
};

class Accounts {
 public:
  // `store` must outlive this object. Tokens live `token_ttl_seconds`.
  Accounts(store::MetadataStore* store, TokenSigner signer, int64_t token_ttl_seconds,
           AccountsOptions options = AccountsOptions());

  // Creates an account and signs it in. Forbidden when registration is closed;
  // RateLimited (with *retry_after set) when `client_addr` registered too often.
  Result<RegisterResult> Register(const std::string& email, const std::string& username,
                                  const std::string& password, const std::string& full_name,
                                  const std::string& client_addr = "",
                                  int64_t* retry_after = nullptr);
  // Creates an account whatever the registration setting (`serveml admin create-user`).
  Result<store::User> CreateUser(const std::string& email, const std::string& username,
                                 const std::string& password, const std::string& full_name);
  // Returns an access token. Unauthorized on unknown email or wrong password (one message
  // for both, so accounts cannot be enumerated). RateLimited, with *retry_after set and
  // without checking the password, while (email, client_addr) or client_addr is throttled.
  Result<std::string> Login(const std::string& email, const std::string& password,
                            const std::string& client_addr = "", int64_t* retry_after = nullptr);
  // Revokes every session token of the user (logout everywhere). API keys stay valid.
  Status Logout(const std::string& user_id);
  // Checks the current password, stores the new one, revokes every session token issued
  // before and returns a fresh one. Unauthorized if `current` is wrong.
  Result<std::string> ChangePassword(const std::string& user_id, const std::string& current,
                                     const std::string& new_password);
  // Parses an Authorization header value ("Bearer <jwt|sk-...>"). Unauthorized if missing
  // or invalid, or for a token of an earlier generation (signed out, password changed) or
  // of a user that no longer exists. An unknown `sk-` key is remembered for a minute, so
  // repeating it costs no database read.
  Result<Principal> Authenticate(std::string_view authorization_header);
  Result<store::User> GetUser(const std::string& user_id);

  // Valid scopes: "predict" (predictions only) and "manage" (everything).
  Result<CreatedApiKey> CreateApiKey(const std::string& user_id, const std::string& name,
                                     const std::vector<std::string>& scopes);
  Result<std::vector<store::ApiKey>> ListApiKeys(const std::string& user_id);
  Status RevokeApiKey(const std::string& user_id, const std::string& key_id);

  int64_t token_ttl_seconds() const { return token_ttl_seconds_; }

 private:
  store::MetadataStore* store_;
  TokenSigner signer_;
  int64_t token_ttl_seconds_;

  struct CachedKey {
    Principal principal;
    int64_t expires_at;  // unix seconds; re-read from the store after this
  };
  std::mutex key_cache_mu_;
  std::unordered_map<std::string, CachedKey> key_cache_;   // key hash -> principal
  std::unordered_map<std::string, int64_t> unknown_keys_;  // key hash -> until (unix s)

  // The current token generation of users seen since start (read on first use).
  Result<int64_t> TokenGeneration(const std::string& user_id);
  void PurgeSessionCaches(const std::string& user_id, int64_t generation);
  bool Exempt(const std::string& client_addr) const;
  std::shared_mutex gen_mu_;
  std::unordered_map<std::string, int64_t> generations_;

  AccountsOptions options_;
  LoginThrottle login_throttle_;
  WindowCounter registrations_;

  // Tokens already verified (signature checked once): token -> (user id, expiry). Read
  // under a shared lock on the prediction hot path; cleared when it grows too large.
  struct CachedToken {
    std::string user_id;
    int64_t expires_at;  // the token's own exp claim
  };
  // Entries of a user whose generation changed are purged (PurgeSessionCaches).
  std::shared_mutex token_cache_mu_;
  std::unordered_map<std::string, CachedToken> token_cache_;
};

// Splits "predict manage" or "predict,manage" into scopes.
std::vector<std::string> SplitScopes(std::string_view s);

}  // namespace serveml::platform
