#include "platform/auth.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/crypto.h"
#include "core/log.h"

namespace serveml::platform {

static_assert(PasswordHashParams().ops_limit == crypto_pwhash_argon2id_OPSLIMIT_INTERACTIVE);
static_assert(PasswordHashParams().mem_limit == crypto_pwhash_argon2id_MEMLIMIT_INTERACTIVE);
static_assert(PasswordHashParams::ForTesting().ops_limit == crypto_pwhash_argon2id_OPSLIMIT_MIN);
static_assert(PasswordHashParams::ForTesting().mem_limit == crypto_pwhash_argon2id_MEMLIMIT_MIN);

namespace {

using Json = nlohmann::json;

void EnsureCrypto() {
  static const bool ok = InitCrypto();
  (void)ok;
}

}  // namespace

// --- Passwords -------------------------------------------------------------------------

Result<std::string> HashPassword(std::string_view password, const PasswordHashParams& params) {
  EnsureCrypto();
  char out[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str_alg(out, password.data(), password.size(), params.ops_limit,
                            params.mem_limit, crypto_pwhash_ALG_ARGON2ID13) != 0) {
    return Unavailable("password hashing failed (out of memory?)");
  }
  return std::string(out);
}

bool VerifyPassword(std::string_view encoded, std::string_view password) {
  EnsureCrypto();
  if (encoded.empty() || encoded.size() >= crypto_pwhash_STRBYTES) return false;
  const std::string enc(encoded);  // NUL-terminated copy
  return crypto_pwhash_str_verify(enc.c_str(), password.data(), password.size()) == 0;
}

void VerifyPasswordDummy(std::string_view password) {
  static const std::string dummy = [] {
    Result<std::string> h = HashPassword(RandomHex(16));
    return h.ok() ? h.value() : std::string();
  }();
  (void)VerifyPassword(dummy, password);
}

bool PasswordNeedsRehash(std::string_view encoded, const PasswordHashParams& params) {
  EnsureCrypto();
  if (encoded.empty() || encoded.size() >= crypto_pwhash_STRBYTES) return true;
  const std::string enc(encoded);
  return crypto_pwhash_str_needs_rehash(enc.c_str(), params.ops_limit, params.mem_limit) != 0;
}

// --- Session tokens --------------------------------------------------------------------

namespace {

constexpr size_t kMaxTokenBytes = 4096;

Status ErrnoError(std::string_view what, const std::string& path) {
  return Internal(std::string(what) + " " + path + ": " + std::strerror(errno));
}

Status FsyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("open directory", dir);
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return ErrnoError("fsync directory", dir);
  return Status::Ok();
}

Status WriteAllAndSync(int fd, const std::string& data, const std::string& path) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t w = ::write(fd, data.data() + off, data.size() - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("write", path);
    }
    off += static_cast<size_t>(w);
  }
  if (::fsync(fd) != 0) return ErrnoError("fsync", path);
  return Status::Ok();
}

// Reads an existing key file from `fd` (owned by the caller), tightening loose permissions.
Result<std::string> ReadKeyFile(int fd, const std::string& path) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return ErrnoError("stat", path);
  if (!S_ISREG(st.st_mode)) return Internal("token key " + path + " is not a regular file");
  if ((st.st_mode & 077) != 0) {
    if (::fchmod(fd, 0600) != 0) {
      return Internal("token key " + path +
                      " is readable by other users and its mode cannot be fixed; refusing to "
                      "use it (chmod 600 it, or mount a Kubernetes Secret with defaultMode 0400)");
    }
    LOG_WARN("token key file was readable by other users; changed its mode to 0600")
        .Str("path", path);
  }
  if (st.st_size != static_cast<off_t>(TokenSigner::kKeyBytes)) {
    return Internal("token key " + path + " has " + std::to_string(st.st_size) +
                    " bytes, expected " + std::to_string(TokenSigner::kKeyBytes) +
                    "; delete it to generate a new key (this signs every user out)");
  }
  std::string key(TokenSigner::kKeyBytes, '\0');
  size_t off = 0;
  while (off < key.size()) {
    ssize_t r = ::read(fd, key.data() + off, key.size() - off);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return Internal("cannot read token key " + path);
    off += static_cast<size_t>(r);
  }
  return key;
}

// Writes a fresh key to `path` without ever exposing a partial file: temp file (0600),
// fsync, link(2) into place (fails if someone else won the race), fsync the directory.
// Returns the key, or Conflict if the file appeared meanwhile.
Result<std::string> CreateKeyFile(const std::string& path) {
  const std::string dir = std::filesystem::path(path).parent_path().string();
  const std::string dir_or_dot = dir.empty() ? "." : dir;
  std::error_code ec;
  std::filesystem::create_directories(dir_or_dot, ec);
  if (ec) return Internal("cannot create directory " + dir_or_dot + ": " + ec.message());

  std::string key = RandomBytes(TokenSigner::kKeyBytes);
  const std::string tmp = path + ".tmp-" + RandomHex(8);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoError("create", tmp);
  Status st = ::fchmod(fd, 0600) == 0 ? WriteAllAndSync(fd, key, tmp) : ErrnoError("chmod", tmp);
  if (::close(fd) != 0 && st.ok()) st = ErrnoError("close", tmp);
  if (!st.ok()) {
    ::unlink(tmp.c_str());
    return st;
  }
  int rc = ::link(tmp.c_str(), path.c_str());
  int link_errno = errno;
  ::unlink(tmp.c_str());
  if (rc != 0) {
    if (link_errno == EEXIST) return Conflict("key file appeared concurrently");
    errno = link_errno;
    return ErrnoError("link key file to", path);
  }
  RETURN_IF_ERROR(FsyncDir(dir_or_dot));
  LOG_INFO("generated a new token signing key").Str("path", path);
  return key;
}

bool IsIntegral(const Json& j) { return j.is_number_integer() || j.is_number_unsigned(); }

}  // namespace

Result<TokenSigner> TokenSigner::LoadOrCreate(const std::string& key_path) {
  EnsureCrypto();
  for (int attempt = 0; attempt < 3; ++attempt) {
    // Symlinks are followed on purpose: Kubernetes mounts Secret files through them.
    int fd = ::open(key_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      Result<std::string> key = ReadKeyFile(fd, key_path);
      ::close(fd);
      if (!key.ok()) return key.status();
      return TokenSigner(std::move(key).value());
    }
    if (errno != ENOENT) return ErrnoError("open token key", key_path);
    Result<std::string> key = CreateKeyFile(key_path);
    if (key.ok()) return TokenSigner(std::move(key).value());
    if (key.status().code() != Code::kConflict) return key.status();
    // Another process created it first: loop and read theirs.
  }
  return Internal("could not load or create token key " + key_path);
}

Result<TokenSigner> TokenSigner::FromKey(std::string_view key) {
  if (key.size() < kKeyBytes) {
    return InvalidInput("token key must have at least " + std::to_string(kKeyBytes) + " bytes");
  }
  return TokenSigner(std::string(key));
}

std::string TokenSigner::Issue(const std::string& user_id, int64_t ttl_seconds, int64_t now_seconds,
                               int64_t generation) const {
  static const std::string kHeader = Base64UrlEncode(R"({"alg":"HS256","typ":"JWT"})");
  nlohmann::ordered_json claims;
  claims["sub"] = user_id;
  claims["iat"] = now_seconds;
  claims["exp"] = now_seconds + ttl_seconds;
  claims["jti"] = RandomHex(16);
  claims["gen"] = generation;
  // replace: an invalid UTF-8 user id must not throw (it would not verify as the same id).
  std::string signing_input =
      kHeader + "." + Base64UrlEncode(claims.dump(-1, ' ', false, Json::error_handler_t::replace));
  std::string sig = Base64UrlEncode(HmacSha256(key_, signing_input));
  return signing_input + "." + sig;
}

Result<std::string> TokenSigner::Verify(std::string_view token, int64_t now_seconds) const {
  ASSIGN_OR_RETURN(Claims c, VerifyClaims(token, now_seconds));
  return std::move(c.subject);
}

Result<TokenSigner::Claims> TokenSigner::VerifyClaims(std::string_view token,
                                                      int64_t now_seconds) const {
  const Status malformed = Unauthorized("malformed token");
  if (token.empty() || token.size() > kMaxTokenBytes) return malformed;
  const size_t p1 = token.find('.');
  if (p1 == std::string_view::npos) return malformed;
  const size_t p2 = token.find('.', p1 + 1);
  if (p2 == std::string_view::npos || token.find('.', p2 + 1) != std::string_view::npos) {
    return malformed;
  }
  const std::string_view header_b64 = token.substr(0, p1);
  const std::string_view payload_b64 = token.substr(p1 + 1, p2 - p1 - 1);
  const std::string_view sig_b64 = token.substr(p2 + 1);

  try {
    std::string header_raw;
    if (header_b64.empty() || !Base64UrlDecode(header_b64, &header_raw)) return malformed;
    const Json header = Json::parse(header_raw, nullptr, /*allow_exceptions=*/false);
    if (!header.is_object()) return malformed;
    auto alg = header.find("alg");
    if (alg == header.end() || !alg->is_string() || alg->get<std::string>() != "HS256") {
      return Unauthorized("unsupported token algorithm");
    }
    if (header.contains("crit")) return Unauthorized("unsupported token algorithm");
    auto typ = header.find("typ");
    if (typ != header.end() && (!typ->is_string() || typ->get<std::string>() != "JWT")) {
      return malformed;
    }

    // Compare the encoded signatures: there is exactly one canonical encoding of the MAC, so
    // this also rejects alternative encodings of a valid signature.
    const std::string expected = Base64UrlEncode(HmacSha256(key_, token.substr(0, p2)));
    if (!ConstantTimeEquals(expected, sig_b64)) return Unauthorized("invalid token signature");

    std::string payload_raw;
    if (!Base64UrlDecode(payload_b64, &payload_raw)) return malformed;
    const Json claims = Json::parse(payload_raw, nullptr, /*allow_exceptions=*/false);
    if (!claims.is_object()) return malformed;
    auto sub = claims.find("sub");
    auto exp = claims.find("exp");
    if (sub == claims.end() || !sub->is_string() || sub->get<std::string>().empty() ||
        exp == claims.end() || !IsIntegral(*exp)) {
      return malformed;
    }
    if (now_seconds >= exp->get<int64_t>()) return Unauthorized("token expired");
    auto nbf = claims.find("nbf");
    if (nbf != claims.end()) {
      if (!IsIntegral(*nbf)) return malformed;
      if (now_seconds < nbf->get<int64_t>()) return Unauthorized("token not yet valid");
    }
    Claims out;
    out.subject = sub->get<std::string>();
    out.expires_at = exp->get<int64_t>();
    auto gen = claims.find("gen");
    if (gen != claims.end()) {
      if (!IsIntegral(*gen)) return malformed;
      out.generation = gen->get<int64_t>();
    }
    return out;
  } catch (...) {
    return malformed;
  }
}

// --- API keys --------------------------------------------------------------------------

namespace {
constexpr std::string_view kBase62 =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

bool IsBase62(char c) {
  return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}
}  // namespace

std::string GenerateApiKey() {
  EnsureCrypto();
  std::string key(kApiKeyPrefix);
  key.reserve(kApiKeyPrefix.size() + kApiKeyRandomChars);
  for (size_t i = 0; i < kApiKeyRandomChars; ++i) {
    key += kBase62[randombytes_uniform(static_cast<uint32_t>(kBase62.size()))];  // unbiased
  }
  return key;
}

std::string HashApiKey(std::string_view key) { return Sha256Hex(key); }

std::string ApiKeyPrefix(std::string_view key) {
  return std::string(key.substr(0, kApiKeyDisplayPrefixChars));
}

bool LooksLikeApiKey(std::string_view s) {
  if (s.size() != kApiKeyPrefix.size() + kApiKeyRandomChars) return false;
  if (s.substr(0, kApiKeyPrefix.size()) != kApiKeyPrefix) return false;
  for (char c : s.substr(kApiKeyPrefix.size())) {
    if (!IsBase62(c)) return false;
  }
  return true;
}

// --- Registration fields ---------------------------------------------------------------

namespace {

bool IsAlnum(char c) {
  return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

bool ValidLocalPart(std::string_view local) {
  if (local.empty() || local.size() > 64) return false;
  if (local.front() == '.' || local.back() == '.') return false;
  if (local.find("..") != std::string_view::npos) return false;
  static constexpr std::string_view kSpecials = "\"(),:;<>@[\\]";
  for (char c : local) {
    if (c < 0x21 || c > 0x7e) return false;  // control, space, non-ASCII
    if (kSpecials.find(c) != std::string_view::npos) return false;
  }
  return true;
}

bool ValidDomain(std::string_view domain) {
  if (domain.empty() || domain.size() > 253) return false;
  int labels = 0;
  size_t start = 0;
  while (start <= domain.size()) {
    size_t dot = domain.find('.', start);
    std::string_view label =
        domain.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (label.empty() || label.size() > 63) return false;
    if (label.front() == '-' || label.back() == '-') return false;
    for (char c : label) {
      if (!IsAlnum(c) && c != '-') return false;
    }
    ++labels;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return labels >= 2;
}

}  // namespace

Status ValidateEmail(std::string_view email) {
  if (email.empty()) return ValidationError("email is required");
  if (email.size() > 254) return ValidationError("email must be at most 254 characters");
  const size_t at = email.find('@');
  if (at == std::string_view::npos || email.find('@', at + 1) != std::string_view::npos ||
      !ValidLocalPart(email.substr(0, at)) || !ValidDomain(email.substr(at + 1))) {
    return ValidationError("email is not a valid address");
  }
  return Status::Ok();
}

std::string NormalizeEmail(std::string_view email) {
  std::string out(email);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

Status ValidateUsername(std::string_view username) {
  if (username.size() < 3 || username.size() > 50) {
    return ValidationError("username must be 3 to 50 characters long");
  }
  for (char c : username) {
    if (!IsAlnum(c) && c != '_' && c != '.' && c != '-') {
      return ValidationError("username may only contain letters, digits, '_', '.' and '-'");
    }
  }
  return Status::Ok();
}

Status ValidatePassword(std::string_view password) {
  size_t code_points = 0;
  for (unsigned char c : password) {
    if ((c & 0xC0) != 0x80) ++code_points;  // count UTF-8 lead bytes
  }
  if (code_points < 8) return ValidationError("password must be at least 8 characters");
  if (password.size() > 128) return ValidationError("password must be at most 128 bytes");
  return Status::Ok();
}

}  // namespace serveml::platform
