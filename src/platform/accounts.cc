#include "platform/accounts.h"

#include <algorithm>
#include <cctype>

#include "core/clock.h"
#include "core/crypto.h"

#include <nlohmann/json.hpp>

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
// The exp claim of a JWT whose signature was already verified; 0 if absent.
int64_t TokenExpiry(std::string_view token) {
  size_t a = token.find('.');
  size_t b = token.find('.', a + 1);
  if (a == std::string_view::npos || b == std::string_view::npos) return 0;
  std::string payload;
  if (!Base64UrlDecode(token.substr(a + 1, b - a - 1), &payload)) return 0;
  auto j = nlohmann::json::parse(payload, nullptr, false);
  if (!j.is_object() || !j.contains("exp") || !j["exp"].is_number_integer()) return 0;
  return j["exp"].get<int64_t>();
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

Accounts::Accounts(store::MetadataStore* store, TokenSigner signer, int64_t token_ttl_seconds)
    : store_(store), signer_(std::move(signer)), token_ttl_seconds_(token_ttl_seconds) {}

Result<RegisterResult> Accounts::Register(const std::string& email, const std::string& username,
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
  ASSIGN_OR_RETURN(u.password_hash, HashPassword(password));
  u.created_at = NowUnixMicros();
  RETURN_IF_ERROR(store_->CreateUser(u));
  RegisterResult r;
  r.access_token = signer_.Issue(u.id, token_ttl_seconds_, NowUnixSeconds());
  r.user = std::move(u);
  return r;
}

Result<std::string> Accounts::Login(const std::string& email, const std::string& password) {
  auto user = store_->GetUserByEmail(NormalizeEmail(email));
  if (!user.ok()) {
    if (user.status().code() != Code::kNotFound) return user.status();
    VerifyPasswordDummy(password);  // same cost as a real check: no account enumeration
    return Unauthorized("incorrect email or password");
  }
  if (!VerifyPassword(user->password_hash, password)) {
    return Unauthorized("incorrect email or password");
  }
  return signer_.Issue(user->id, token_ttl_seconds_, NowUnixSeconds());
}

Result<Principal> Accounts::Authenticate(std::string_view header) {
  if (header.empty()) return Unauthorized("missing Authorization header (use 'Bearer <token>')");
  constexpr std::string_view kBearer = "bearer ";
  if (header.size() <= kBearer.size() ||
      !std::equal(kBearer.begin(), kBearer.end(), header.begin(),
                  [](char a, char b) { return a == std::tolower(static_cast<unsigned char>(b)); })) {
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
    }
    auto key = store_->GetApiKeyByHash(hash);
    if (!key.ok()) {
      if (key.status().code() == Code::kNotFound) return Unauthorized("invalid API key");
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
  ASSIGN_OR_RETURN(std::string user_id, signer_.Verify(cred, now));
  Principal p;
  p.user_id = user_id;
  // Cached until the token's own expiry (Verify just checked it is in the future).
  if (int64_t exp = TokenExpiry(cred); exp > now) {
    std::unique_lock lock(token_cache_mu_);
    if (token_cache_.size() > 50000) token_cache_.clear();
    token_cache_[std::string(cred)] = CachedToken{std::move(user_id), exp};
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
