// A tiny blocking HTTP/1.1 client over raw sockets for the server tests: it lets tests send
// exactly the bytes they want (partial bodies, pipelining, garbage) and read responses.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <string_view>

namespace serveml::http::testing {

struct ClientResponse {
  int status = 0;
  std::string version;
  std::multimap<std::string, std::string> headers;  // names lower-cased
  std::string body;

  std::string Header(const std::string& lower) const {
    auto it = headers.find(lower);
    return it == headers.end() ? std::string() : it->second;
  }
  bool HasHeader(const std::string& lower) const { return headers.count(lower) > 0; }
};

class TestConn {
 public:
  TestConn() = default;
  ~TestConn() { Close(); }
  TestConn(const TestConn&) = delete;
  TestConn& operator=(const TestConn&) = delete;

  // Connects to 127.0.0.1:port; false on failure (errno_ holds the reason).
  bool Connect(uint16_t port, int recv_timeout_ms = 10000) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return false;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      errno_ = errno;
      Close();
      return false;
    }
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    timeval tv{recv_timeout_ms / 1000, (recv_timeout_ms % 1000) * 1000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return true;
  }

  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  bool Send(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        errno_ = errno;
        return false;
      }
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // Reads one response (Content-Length framed, or until close). `head_only` for HEAD.
  bool ReadResponse(ClientResponse* out, bool head_only = false) {
    *out = ClientResponse();
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill()) return false;
    }
    std::string head = buf_.substr(0, end);
    buf_.erase(0, end + 4);
    size_t eol = head.find("\r\n");
    std::string status_line = head.substr(0, eol);
    out->version = status_line.substr(0, status_line.find(' '));
    out->status = std::atoi(status_line.c_str() + status_line.find(' ') + 1);
    size_t pos = eol == std::string::npos ? head.size() : eol + 2;
    while (pos < head.size()) {
      size_t next = head.find("\r\n", pos);
      if (next == std::string::npos) next = head.size();
      std::string line = head.substr(pos, next - pos);
      size_t colon = line.find(':');
      std::string name = line.substr(0, colon);
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      size_t vstart = line.find_first_not_of(' ', colon + 1);
      out->headers.emplace(name, vstart == std::string::npos ? "" : line.substr(vstart));
      pos = next + 2;
    }
    if (out->status == 100) return true;
    if (head_only || out->status == 204 || out->status == 304) return true;
    if (out->HasHeader("content-length")) {
      size_t len = std::stoul(out->Header("content-length"));
      while (buf_.size() < len) {
        if (!Fill()) return false;
      }
      out->body = buf_.substr(0, len);
      buf_.erase(0, len);
      return true;
    }
    while (Fill()) {
    }
    out->body = std::move(buf_);
    buf_.clear();
    return true;
  }

  // True if the server closed the connection (read returns EOF or reset) within the
  // receive timeout and nothing else arrived.
  bool WaitClosed() {
    char c;
    while (true) {
      ssize_t n = ::recv(fd_, &c, 1, 0);
      if (n == 0) return true;
      if (n < 0) return errno == ECONNRESET;
      buf_.push_back(c);
    }
  }

  const std::string& pending() const { return buf_; }
  int fd() const { return fd_; }
  int error() const { return errno_; }

 private:
  bool Fill() {
    char tmp[65536];
    while (true) {
      ssize_t n = ::recv(fd_, tmp, sizeof(tmp), 0);
      if (n > 0) {
        buf_.append(tmp, static_cast<size_t>(n));
        return true;
      }
      if (n < 0 && errno == EINTR) continue;
      return false;
    }
  }

  int fd_ = -1;
  int errno_ = 0;
  std::string buf_;
};

// One request on a fresh connection.
inline bool RoundTrip(uint16_t port, const std::string& raw, ClientResponse* out) {
  TestConn c;
  return c.Connect(port) && c.Send(raw) && c.ReadResponse(out);
}

}  // namespace serveml::http::testing
