#include "cli/client_config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

namespace serveml::cli {
namespace {

using nlohmann::json;

std::string ErrnoText() { return std::strerror(errno); }

std::string ParentDir(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

Status WriteAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Internal("write failed: " + ErrnoText());
    }
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

// Reads the file as a JSON object; a missing file is an empty object.
Result<json> ReadJsonObject(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return json::object();
    return Internal("cannot read " + path + ": " + ErrnoText());
  }
  std::string text;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      Status st = Internal("cannot read " + path + ": " + ErrnoText());
      ::close(fd);
      return st;
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return InvalidInput(path + " is not a JSON object; fix or delete it");
  }
  return doc;
}

}  // namespace

std::string ConfigPath(const char* home) {
  if (home == nullptr || *home == '\0') return "";
  std::string h = home;
  while (h.size() > 1 && h.back() == '/') h.pop_back();
  return h + "/.serveml/config.json";
}

Result<ClientConfig> ReadConfigFile(const std::string& path) {
  ASSIGN_OR_RETURN(json doc, ReadJsonObject(path));
  ClientConfig config;
  if (auto it = doc.find("url"); it != doc.end() && it->is_string()) {
    config.url = it->get<std::string>();
  }
  if (auto it = doc.find("token"); it != doc.end() && it->is_string()) {
    config.token = it->get<std::string>();
  }
  return config;
}

Status WriteConfigFile(const std::string& path, const ClientConfig& config) {
  if (path.empty()) return InvalidInput("no config path (is $HOME set?)");
  const std::string dir = ParentDir(path);
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Internal("cannot create " + dir + ": " + ErrnoText());
  }
  if (::chmod(dir.c_str(), 0700) != 0) {
    return Internal("cannot set permissions on " + dir + ": " + ErrnoText());
  }

  // Keep keys we do not manage; a corrupt file is replaced rather than blocking login.
  auto existing = ReadJsonObject(path);
  json doc = existing.ok() ? std::move(existing).value() : json::object();
  doc["url"] = config.url;
  if (config.token.empty()) {
    doc.erase("token");
  } else {
    doc["token"] = config.token;
  }
  const std::string text = doc.dump(2) + "\n";

  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  ::unlink(tmp.c_str());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return Internal("cannot write " + tmp + ": " + ErrnoText());
  Status st = WriteAll(fd, text);
  if (st.ok() && ::fchmod(fd, 0600) != 0) st = Internal("fchmod failed: " + ErrnoText());
  if (st.ok() && ::fsync(fd) != 0) st = Internal("fsync failed: " + ErrnoText());
  if (::close(fd) != 0 && st.ok()) st = Internal("close failed: " + ErrnoText());
  if (st.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    st = Internal("cannot replace " + path + ": " + ErrnoText());
  }
  if (!st.ok()) {
    ::unlink(tmp.c_str());
    return Status(st.code(), "saving " + path + ": " + st.message());
  }
  return Status::Ok();
}

std::string NormalizeBaseUrl(std::string_view url) {
  auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!url.empty() && is_space(url.front())) url.remove_prefix(1);
  while (!url.empty() && (is_space(url.back()) || url.back() == '/')) url.remove_suffix(1);
  if (url.empty()) return std::string(kDefaultUrl);
  std::string out(url);
  if (out.find("://") == std::string::npos) out = "http://" + out;
  return out;
}

std::string RedactUrl(std::string_view url) {
  auto scheme = url.find("://");
  size_t start = scheme == std::string_view::npos ? 0 : scheme + 3;
  size_t end = url.find_first_of("/?#", start);
  std::string_view authority =
      url.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
  auto at = authority.rfind('@');
  if (at == std::string_view::npos) return std::string(url);
  return std::string(url.substr(0, start)) + "***@" + std::string(url.substr(start + at + 1));
}

Connection ResolveConnection(const std::optional<std::string>& flag_url,
                             const std::optional<std::string>& flag_token,
                             const std::optional<std::string>& env_url,
                             const std::optional<std::string>& env_token,
                             const ClientConfig& file) {
  auto given = [](const std::optional<std::string>& v) { return v && !v->empty(); };
  Connection c;
  if (given(flag_url)) {
    c.url = NormalizeBaseUrl(*flag_url);
  } else if (given(env_url)) {
    c.url = NormalizeBaseUrl(*env_url);
  } else if (!file.url.empty()) {
    c.url = NormalizeBaseUrl(file.url);
  } else {
    c.url = std::string(kDefaultUrl);
  }

  if (flag_token) {  // an explicit empty --token means "no token"
    c.token = *flag_token;
  } else if (given(env_token)) {
    c.token = *env_token;
  } else if (!file.token.empty()) {
    // The saved token belongs to the saved URL (or the default one if none was saved).
    const std::string saved_url =
        file.url.empty() ? std::string(kDefaultUrl) : NormalizeBaseUrl(file.url);
    if (saved_url == c.url) c.token = file.token;
  }
  return c;
}

}  // namespace serveml::cli
