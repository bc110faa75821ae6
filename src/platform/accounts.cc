#include "platform/accounts.h"

#include <algorithm>
#include <cctype>

#include "core/clock.h"
#include "core/crypto.h"

namespace serveml::platform {

namespace {
std::string JoinScopes(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) {
    if (!s.empty()) s += ' ';
    s += x;
  }
  return s;
}

}  // namespace

bool Principal::Can(std::string_view scope) const {
  if (!via_api_key) return true;
  for (const auto& s : scopes) {
    if (s == scope || s == "manage") return true;
  }
  return false;
}

std::vector<std::string> SplitScopes(std::string_view s) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == ' ' || c == ',') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

Accounts::Accounts(store::MetadataStore* store, TokenSigner signer, int64_t token_ttl_seconds,
                   AccountsOptions options)
    : store_(store),
      signer_(std::move(signer)),
      token_ttl_seconds_(token_ttl_seconds),
      options_(options),
      login_throttle_(options.login),
      registrations_(options.registrations_per_hour_per_address, 3600) {}

bool Accounts::Exempt(const std::string& client_addr) const {
  if (!options_.exempt_loopback || client_addr.empty()) return false;
  return client_addr.rfind("127.", 0) == 0 || client_addr == "::1" ||
         client_addr.rfind("::ffff:127.", 0) == 0;
}

Result<RegisterResult> Accounts::Register(const std::string& email, const std::string& username,
                                          const std::string& password, const std::string& full_name,
                                          const std::string& client_addr, int64_t* retry_after) {
  if (!options_.registration_open) {
    return Forbidden("registration is closed on this server; ask an administrator for an account");
  }
  RETURN_IF_ERROR(ValidateEmail(email));
  RETURN_IF_ERROR(ValidateUsername(username));
  RETURN_IF_ERROR(ValidatePassword(password));
  if (!Exempt(client_addr)) {
    if (int64_t wait = registrations_.TryAdd(client_addr, NowUnixSeconds()); wait > 0) {
      if (retry_after) *retry_after = wait;
      return Status(Code::kRateLimited, "too many registrations from this address (" +
                                            std::to_string(registrations_.limit()) +
                                            " per hour); retry in " + std::to_string(wait) + " s");
    }
  }
  ASSIGN_OR_RETURN(store::User u, CreateUser(email, username, password, full_name));
  RegisterResult r;
  r.access_token = signer_.Issue(u.id, token_ttl_seconds_, NowUnixSeconds(), u.token_generation);
  r.user = std::move(u);
  return r;
}

Result<store::User> Accounts::CreateUser(const std::string& email, const std::string& username,
                                         const std::string& password,
                                         const std::string& full_name) {
  RETURN_IF_ERROR(ValidateEmail(email));
  RETURN_IF_ERROR(ValidateUsername(username));
  RETURN_IF_ERROR(ValidatePassword(password));
  if (full_name.size() > 200) return ValidationError("full_name must be at most 200 characters");
  store::User u;
  u.id = NewUuid();
  u.email = NormalizeEmail(email);
  u.username = username;
  u.full_name = full_name;
  ASSIGN_OR_RETURN(u.password_hash, HashPassword(password, options_.password_hash));
  u.created_at = NowUnixMicros();
  RETURN_IF_ERROR(store_->CreateUser(u));
  return u;
}

Result<std::string> Accounts::Login(const std::string& email, const std::string& password,
                                    const std::string& client_addr, int64_t* retry_after) {
  const std::string account = NormalizeEmail(email);
  const bool exempt = Exempt(client_addr);
  const int64_t now = NowUnixSeconds();
  if (!exempt) {
    if (int64_t wait = login_throttle_.RetryAfter(account, client_addr, now); wait > 0) {
      if (retry_after) *retry_after = wait;
      return Status(Code::kRateLimited,
                    "too many failed logins; retry in " + std::to_string(wait) + " s");
    }
  }
  auto user = store_->GetUserByEmail(account);
  if (!user.ok()) {
    if (user.status().code() != Code::kNotFound) return user.status();
    VerifyPasswordDummy(password);  // same cost as a real check: no account enumeration
    if (!exempt) login_throttle_.RecordFailure(account, client_addr, now);
    return Unauthorized("incorrect email or password");
  }
  if (!VerifyPassword(user->password_hash, password)) {
    if (!exempt) login_throttle_.RecordFailure(account, client_addr, now);
    return Unauthorized("incorrect email or password");
  }
  if (!exempt) login_throttle_.RecordSuccess(account, client_addr);
  return signer_.Issue(user->id, token_ttl_seconds_, NowUnixSeconds(), user->token_generation);
}

Result<int64_t> Accounts::TokenGeneration(const std::string& user_id) {
  {
    std::shared_lock lock(gen_mu_);
    if (auto it = generations_.find(user_id); it != generations_.end()) return it->second;
  }
  auto u = store_->GetUserById(user_id);
  if (!u.ok()) {
    if (u.status().code() == Code::kNotFound) return Unauthorized("user no longer exists");
    return u.status();
  }
  std::unique_lock lock(gen_mu_);
  if (generations_.size() > 1'000'000) generations_.clear();
  auto [it, inserted] = generations_.emplace(user_id, u->token_generation);
  return it->second;
}

void Accounts::PurgeSessionCaches(const std::string& user_id, int64_t generation) {
  std::unique_lock gen_lock(gen_mu_);
  generations_[user_id] = generation;
  std::unique_lock lock(token_cache_mu_);
  for (auto it = token_cache_.begin(); it != token_cache_.end();) {
    it = it->second.user_id == user_id ? token_cache_.erase(it) : std::next(it);
  }
}

Status Accounts::Logout(const std::string& user_id) {
  ASSIGN_OR_RETURN(int64_t gen, store_->RevokeTokens(user_id, std::nullopt));
  PurgeSessionCaches(user_id, gen);
  return Status::Ok();
}

Result<std::string> Accounts::ChangePassword(const std::string& user_id, const std::string& current,
                                             const std::string& new_password) {
  RETURN_IF_ERROR(ValidatePassword(new_password));
  auto u = store_->GetUserById(user_id);
  if (!u.ok()) {
    if (u.status().code() == Code::kNotFound) return Unauthorized("user no longer exists");
    return u.status();
  }
  if (!VerifyPassword(u->password_hash, current)) {
    return Unauthorized("the current password is not correct");
  }
  ASSIGN_OR_RETURN(std::string hash, HashPassword(new_password, options_.password_hash));
  ASSIGN_OR_RETURN(int64_t gen, store_->RevokeTokens(user_id, hash));
  PurgeSessionCaches(user_id, gen);
  return signer_.Issue(user_id, token_ttl_seconds_, NowUnixSeconds(), gen);
}

Result<Principal> Accounts::Authenticate(std::string_view header) {
  if (header.empty()) return Unauthorized("missing Authorization header (use 'Bearer <token>')");
  constexpr std::string_view kBearer = "bearer ";
  if (header.size() <= kBearer.size() ||
      !std::equal(kBearer.begin(), kBearer.end(), header.begin(), [](char a, char b) {
        return a == std::tolower(static_cast<unsigned char>(b));
      })) {
    return Unauthorized("the Authorization header must be 'Bearer <token>'");
  }
  std::string_view cred = header.substr(kBearer.size());
  while (!cred.empty() && cred.front() == ' ') cred.remove_prefix(1);
  while (!cred.empty() && cred.back() == ' ') cred.remove_suffix(1);

  if (cred.rfind("sk-", 0) == 0) {
    std::string hash = HashApiKey(cred);
    int64_t now = NowUnixSeconds();
    {
      std::lock_guard lock(key_cache_mu_);
      auto it = key_cache_.find(hash);
      if (it != key_cache_.end() && it->second.expires_at > now) return it->second.principal;
      auto un = unknown_keys_.find(hash);
      if (un != unknown_keys_.end() && un->second > now) return Unauthorized("invalid API key");
    }
    if (!LooksLikeApiKey(cred)) return Unauthorized("invalid API key");
    auto key = store_->GetApiKeyByHash(hash);
    if (!key.ok()) {
      if (key.status().code() == Code::kNotFound) {
        std::lock_guard lock(key_cache_mu_);
        if (unknown_keys_.size() > 100000) unknown_keys_.clear();
        unknown_keys_[hash] = now + 60;
        return Unauthorized("invalid API key");
      }
      return key.status();
    }
    if (key->revoked) return Unauthorized("this API key has been revoked");
    Principal p;
    p.user_id = key->user_id;
    p.via_api_key = true;
    p.api_key_id = key->id;
    p.scopes = SplitScopes(key->scopes);
    (void)store_->TouchApiKey(key->id, NowUnixMicros());
    std::lock_guard lock(key_cache_mu_);
    if (key_cache_.size() > 100000) key_cache_.clear();
    key_cache_[hash] = CachedKey{p, now + 30};
    return p;
  }

  int64_t now = NowUnixSeconds();
  {
    std::shared_lock lock(token_cache_mu_);
    auto it = token_cache_.find(std::string(cred));
    if (it != token_cache_.end() && it->second.expires_at > now) {
      Principal p;
      p.user_id = it->second.user_id;
      return p;
    }
  }
  ASSIGN_OR_RETURN(TokenSigner::Claims claims, signer_.VerifyClaims(cred, now));
  ASSIGN_OR_RETURN(int64_t generation, TokenGeneration(claims.subject));
  if (claims.generation != generation) {
    return Unauthorized("this token was revoked (signed out or password changed); log in again");
  }
  Principal p;
  p.user_id = claims.subject;
  // Cached until the token's own expiry (VerifyClaims just checked it is in the future), or
  // until the user's tokens are revoked.
  if (claims.expires_at > now) {
    // Under gen_mu_ (shared): a revocation (which takes it exclusively) cannot slip between
    // the generation check and the insert and leave a revoked token cached.
    std::shared_lock gen_lock(gen_mu_);
    auto g = generations_.find(p.user_id);
    if (g != generations_.end() && g->second == claims.generation) {
      std::unique_lock lock(token_cache_mu_);
      if (token_cache_.size() > 50000) token_cache_.clear();
      token_cache_[std::string(cred)] = CachedToken{std::move(claims.subject), claims.expires_at};
    }
  }
  return p;
}

Result<store::User> Accounts::GetUser(const std::string& user_id) {
  return store_->GetUserById(user_id);
}

Result<CreatedApiKey> Accounts::CreateApiKey(const std::string& user_id, const std::string& name,
                                             const std::vector<std::string>& scopes) {
  if (name.empty() || name.size() > 100) {
    return ValidationError("name is required and must be at most 100 characters");
  }
  std::vector<std::string> sc = scopes.empty() ? std::vector<std::string>{"predict"} : scopes;
  for (const auto& s : sc) {
    if (s != "predict" && s != "manage") {
      return ValidationError("unknown scope '" + s + "'; valid scopes are 'predict' and 'manage'");
    }
  }
  CreatedApiKey out;
  out.plaintext = GenerateApiKey();
  out.key.id = NewUuid();
  out.key.user_id = user_id;
  out.key.name = name;
  out.key.prefix = ApiKeyPrefix(out.plaintext);
  out.key.key_hash = HashApiKey(out.plaintext);
  out.key.scopes = JoinScopes(sc);
  out.key.created_at = NowUnixMicros();
  RETURN_IF_ERROR(store_->CreateApiKey(out.key));
  return out;
}

Result<std::vector<store::ApiKey>> Accounts::ListApiKeys(const std::string& user_id) {
  return store_->ListApiKeys(user_id);
}

Status Accounts::RevokeApiKey(const std::string& user_id, const std::string& key_id) {
  RETURN_IF_ERROR(store_->RevokeApiKey(user_id, key_id));
  std::lock_guard lock(key_cache_mu_);
  key_cache_.clear();
  return Status::Ok();
}

}  // namespace serveml::platform
