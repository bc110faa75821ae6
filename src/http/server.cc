// Boost.Beast adapter. Only this file includes Beast/Asio.
//
// Shape: N workers, each an io_context run by one thread; one acceptor (on worker 0) hands
// accepted sockets round-robin to the workers. A Session is one connection: it reads raw
// bytes into a reused flat_buffer and drives a beast::http::basic_parser subclass that
// writes straight into the Session's reused Request (no Beast message/fields objects),
// streams multipart bodies into a MultipartParser, and writes responses as one gathered
// write of a hand-built header block plus the body. Timeouts (idle, header, body, minimum
// body rate) and drain are handled by a per-worker sweeper (one timer per worker, not one
// per read), over an intrusive list of the worker's sessions that only its own thread
// touches. Connection caps are checked by the acceptor; per-address counts live in a
// striped map touched once when a connection opens and once when it closes.
#include "http/server.h"

#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <array>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <chrono>
#include <cstring>
#include <future>
#include <limits>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <unordered_map>

#include "core/clock.h"
#include "core/json_writer.h"
#include "core/log.h"
#include "http/address.h"
#include "http/multipart.h"
#include "http/url.h"

namespace serveml::http {

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;
using Socket = net::basic_stream_socket<tcp, net::io_context::executor_type>;
using Acceptor = net::basic_socket_acceptor<tcp, net::io_context::executor_type>;
using ErrorCode = boost::system::error_code;

constexpr size_t kReadSize = 16 << 10;
constexpr size_t kBodyReadSize = 64 << 10;
constexpr int64_t kSweepMillis = 250;
constexpr int64_t kLingerMillis = 2000;
constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

int64_t SteadyMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string_view Sv(beast::string_view s) { return std::string_view(s.data(), s.size()); }

bool ValidRequestId(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::string_view ReasonPhrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 413:
      return "Payload Too Large";
    case 415:
      return "Unsupported Media Type";
    case 422:
      return "Unprocessable Entity";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      break;
  }
  beast::string_view r = bhttp::obsolete_reason(static_cast<bhttp::status>(status));
  if (r.empty() || r.front() == '<') return "Unknown";
  return Sv(r);
}

std::string DefaultErrorBody(int /*status*/, std::string_view code, std::string_view message,
                             std::string_view request_id) {
  std::string out;
  out.reserve(96 + message.size());
  JsonWriter w(out);
  w.BeginObject().Key("error").BeginObject();
  w.Key("code").String(code).Key("message").String(message);
  w.Key("details").BeginObject().EndObject();
  w.EndObject().Key("request_id").String(request_id).EndObject();
  return out;
}

void AppendInt(std::string* out, uint64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, static_cast<size_t>(r.ptr - buf));
}

// A header value or name from a handler must not smuggle in a line break.
bool SafeHeaderText(std::string_view s) {
  return s.find_first_of("\r\n") == std::string_view::npos;
}

// Headers the server computes itself; a handler's copy is dropped.
bool ReservedHeader(std::string_view name) {
  return EqualsIgnoreCase(name, "content-length") || EqualsIgnoreCase(name, "connection") ||
         EqualsIgnoreCase(name, "transfer-encoding") || EqualsIgnoreCase(name, "x-request-id") ||
         EqualsIgnoreCase(name, "content-type") || EqualsIgnoreCase(name, "date");
}

// Open connections per peer address. The acceptor (worker 0) acquires, whichever worker
// closes the connection releases; striped by address so that closes on different workers
// rarely meet on one lock. Touched once per connection open and close, never per request.
class AddressCounts {
 public:
  // Counts one more connection from `a` unless it already has `cap`; false then.
  bool TryAcquire(const IpAddress& a, int64_t cap) {
    Stripe& st = StripeOf(a);
    std::lock_guard<std::mutex> lock(st.mu);
    int64_t& n = st.counts[a];
    if (n >= cap) {
      if (n == 0) st.counts.erase(a);
      return false;
    }
    ++n;
    return true;
  }
  void Release(const IpAddress& a) {
    Stripe& st = StripeOf(a);
    std::lock_guard<std::mutex> lock(st.mu);
    auto it = st.counts.find(a);
    if (it != st.counts.end() && --it->second <= 0) st.counts.erase(it);
  }

 private:
  struct Hash {
    size_t operator()(const IpAddress& a) const {
      uint64_t hi, lo;
      std::memcpy(&hi, a.bytes.data(), 8);
      std::memcpy(&lo, a.bytes.data() + 8, 8);
      uint64_t z = (hi * 0x9e3779b97f4a7c15ull) ^ lo;
      z = (z ^ (z >> 29)) * 0xbf58476d1ce4e5b9ull;
      return static_cast<size_t>(z ^ (z >> 32));
    }
  };
  struct Stripe {
    std::mutex mu;
    std::unordered_map<IpAddress, int64_t, Hash> counts;
  };
  Stripe& StripeOf(const IpAddress& a) { return stripes_[Hash()(a) % stripes_.size()]; }

  std::array<Stripe, 16> stripes_;
};

IpAddress ToIpAddress(const net::ip::address& addr) {
  IpAddress ip;
  if (addr.is_v4()) {
    auto b = addr.to_v4().to_bytes();
    ip.bytes[10] = ip.bytes[11] = 0xff;
    std::memcpy(ip.bytes.data() + 12, b.data(), 4);
  } else {
    auto b = addr.to_v6().to_bytes();
    std::memcpy(ip.bytes.data(), b.data(), 16);
  }
  return ip;
}

// What the acceptor learned about a connection's peer.
struct Peer {
  std::string remote;     // the socket's address as Asio prints it
  std::string canonical;  // IpAddress::ToString(), "" when unknown
  IpAddress ip;
  bool trusted = false;       // one of ServerOptions::trusted_proxies
  bool addr_counted = false;  // holds a slot in Core::addr_counts
};

class Session;
struct Core;

// One I/O thread with its own io_context. Members other than `ioc` are touched only by
// that thread, except the atomics (read by Server::in_flight()/connections()).
struct Worker {
  explicit Worker(Core* c, uint64_t seed) : core(c), rng(seed) {}

  Core* core;
  // Intrusive list of open sessions; declared before `ioc` so it outlives the handlers
  // destroyed with the io_context.
  Session* sessions = nullptr;
  alignas(64) std::atomic<int64_t> in_flight{0};
  std::atomic<int64_t> open{0};
  int64_t now_ms = SteadyMillis();  // coarse clock, refreshed by the sweeper
  int64_t date_second = -1;
  std::string date_line;  // "Date: ...\r\n"
  bool draining = false;
  uint64_t rng;
  net::io_context ioc{1};
  std::optional<net::steady_timer> sweeper;
  std::thread thread;

  // Only the owning thread writes the counters; plain load/store avoids a locked RMW.
  void AddInFlight(int64_t d) {
    in_flight.store(in_flight.load(std::memory_order_relaxed) + d, std::memory_order_relaxed);
  }
  void AddOpen(int64_t d) {
    open.store(open.load(std::memory_order_relaxed) + d, std::memory_order_relaxed);
  }

  void RefreshDate() {
    int64_t unix_s = NowUnixSeconds();
    if (unix_s == date_second) return;
    date_second = unix_s;
    time_t t = static_cast<time_t>(unix_s);
    struct tm tm;
    gmtime_r(&t, &tm);
    char buf[64];
    size_t n = strftime(buf, sizeof(buf), "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
    date_line.assign(buf, n);
  }

  // "req-" + 16 hex chars from a per-thread splitmix64 stream (seeded from the OS).
  void NewRequestId(std::string* out) {
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    static constexpr char kHex[] = "0123456789abcdef";
    out->assign("req-");
    for (int i = 15; i >= 0; --i) out->push_back(kHex[(z >> (i * 4)) & 0xf]);
  }

  void Sweep();
  void CloseAll();
};

struct Core {
  Core(ServerOptions o, const Router* r) : opts(std::move(o)), router(r) {}

  ServerOptions opts;
  const Router* router;
  std::string fixed_headers;  // "Server: serveml\r\n" + default headers
  // Default headers (validated); a response header of the same name replaces one.
  std::vector<std::pair<std::string, std::string>> default_headers;
  int64_t idle_ms = 60000;
  int64_t header_ms = 10000;  // 0: no header deadline
  int64_t body_ms = 30000;    // 0: no body deadline
  int64_t rate_window_ms = 10000;
  uint64_t min_rate = 1024;  // bytes per second; 0: no rate check
  int64_t max_conns = 10000;
  CidrSet trusted;
  MultipartLimits mp_limits;
  alignas(64) std::atomic<int64_t> total_conns{0};  // accepted and not yet closed
  AddressCounts addr_counts;
  std::atomic<uint64_t> n_rejected_conns{0};
  std::atomic<uint64_t> n_timeouts{0};
  std::atomic<uint64_t> n_pre_auth{0};
  std::atomic<uint64_t> n_rejected_bodies{0};
  std::vector<std::unique_ptr<Worker>> workers;
  std::unique_ptr<Acceptor> acceptor;  // lives on workers[0]
  size_t next_worker = 0;              // acceptor thread only
  std::atomic<uint16_t> port{0};
  std::mutex stop_mu;
  bool started = false;
  bool stopped = false;

  std::string ErrorBody(int status, std::string_view code, std::string_view message,
                        std::string_view request_id) const {
    if (opts.error_body) return opts.error_body(status, code, message, request_id);
    return DefaultErrorBody(status, code, message, request_id);
  }
  static void Bump(std::atomic<uint64_t>& counter) {
    counter.fetch_add(1, std::memory_order_relaxed);
  }
  // Called by a session as it closes.
  void ReleaseConnection(const Peer& peer) {
    total_conns.fetch_sub(1, std::memory_order_relaxed);
    if (peer.addr_counted) addr_counts.Release(ClientNetwork(peer.ip));
  }
  void DoAccept();
  void OnAccept(ErrorCode ec, Socket socket, Worker* target);
  void RejectConnection(Socket socket);
  void RunWorker(Worker* w);
};

// The beast parser callbacks forward into the Session.
class RequestParser final : public bhttp::basic_parser<true> {
 public:
  explicit RequestParser(Session* s) : s_(s) {}

 private:
  void on_request_impl(bhttp::verb, beast::string_view method, beast::string_view target,
                       int version, ErrorCode& ec) override;
  void on_response_impl(int, beast::string_view, int, ErrorCode&) override {}
  void on_field_impl(bhttp::field, beast::string_view name, beast::string_view value,
                     ErrorCode& ec) override;
  void on_header_impl(ErrorCode&) override {}
  void on_body_init_impl(const boost::optional<std::uint64_t>&, ErrorCode&) override {}
  size_t on_body_impl(beast::string_view body, ErrorCode& ec) override;
  void on_chunk_header_impl(std::uint64_t, beast::string_view, ErrorCode&) override {}
  size_t on_chunk_body_impl(std::uint64_t, beast::string_view body, ErrorCode& ec) override;
  void on_finish_impl(ErrorCode& ec) override;

  Session* s_;
};

// Called exactly once per request through a Responder copy; owned by the Responder.
struct Pending {
  explicit Pending(std::shared_ptr<Session> s) : session(std::move(s)) {}
  ~Pending();
  void Call(Response r);

  std::shared_ptr<Session> session;
  std::atomic<bool> called{false};
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  enum class Phase { kIdle, kReading, kHandling, kWriting, kLingering, kClosed };

  Session(Worker* w, Socket socket, Peer peer)
      : w_(w), impl_(w->core), socket_(std::move(socket)), peer_(std::move(peer)) {
    req_.remote_addr = peer_.remote;
    req_.client_addr = peer_.canonical;
  }
  // Runs on the session's thread, or single-threaded while ~Server destroys the
  // io_contexts; a session normally unlinks itself in Close() first.
  ~Session() { Unlink(); }

  void Start() {
    // Link into the worker's list (own thread).
    next_ = w_->sessions;
    if (next_ != nullptr) next_->prev_ = this;
    w_->sessions = this;
    w_->AddOpen(1);
    BeginRequest();
  }

  // Closes the socket now; pending operations complete with an error and release the
  // session. Own thread only.
  void Close() {
    if (phase_ == Phase::kClosed) return;
    phase_ = Phase::kClosed;
    ErrorCode ignored;
    socket_.shutdown(net::socket_base::shutdown_both, ignored);
    socket_.close(ignored);
    Unlink();
    w_->AddOpen(-1);
    impl_->ReleaseConnection(peer_);
    if (counted_) {
      counted_ = false;
      w_->AddInFlight(-1);
    }
    mp_.reset();  // a handler may still be using req_ (and its uploads): leave those
  }

  Phase phase() const { return phase_; }
  int64_t deadline_ms() const { return deadline_ms_; }
  Session* next() const { return next_; }

  // Sweeper check of the header, body and minimum-rate deadlines of a request being read.
  // Answers 408 (or closes) and returns true when one is missed. Own thread only.
  bool CheckRequestDeadlines(int64_t now) {
    if (phase_ != Phase::kReading) return false;
    if (now >= request_deadline_ms_) {
      if (deadline_kind_ == DeadlineKind::kHeader) {
        std::string m = "request headers not received within ";
        AppendInt(&m, static_cast<uint64_t>(impl_->header_ms / 1000));
        m += " s";
        TimeOut(m);
      } else {
        std::string m = "request body not received within ";
        AppendInt(&m, static_cast<uint64_t>(impl_->body_ms / 1000));
        m += " s";
        TimeOut(m);
      }
      return true;
    }
    if (rate_check_ && BodyRateTooLow(now)) {
      std::string m = "request body arrived slower than ";
      AppendInt(&m, impl_->min_rate);
      m += " bytes per second";
      TimeOut(m);
      return true;
    }
    return false;
  }

  // Delivers a handler's response; any thread.
  void Deliver(Response r) {
    // in_handler_ is only meaningful (and only read) on the session's own thread.
    if (w_->ioc.get_executor().running_in_this_thread() && in_handler_) {
      stashed_ = std::move(r);
      has_stashed_ = true;
      return;
    }
    net::post(w_->ioc, [self = shared_from_this(), r = std::move(r)]() mutable {
      self->WriteResponse(std::move(r));
    });
  }

  // --- parser callbacks ---
  void OnRequestLine(std::string_view method, std::string_view target, int version) {
    req_.method.assign(method);
    req_.target.assign(target);
    version_ = version;
  }

  void OnField(std::string_view name, std::string_view value) {
    if (header_done_) return;  // chunked trailers are ignored
    if (n_headers_ == req_.headers.size()) req_.headers.emplace_back();
    auto& [k, v] = req_.headers[n_headers_++];
    k.resize(name.size());
    for (size_t i = 0; i < name.size(); ++i) {
      char c = name[i];
      k[i] = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    }
    v.assign(value);
  }

  size_t OnBody(std::string_view data, ErrorCode& ec) {
    body_bytes_ += data.size();
    deadline_ms_ = w_->now_ms + impl_->idle_ms;
    if (body_bytes_ > body_limit_) {
      body_error_ = Status(Code::kPayloadTooLarge, LimitMessage());
      ec = bhttp::error::body_limit;
      return 0;
    }
    if (mp_) {
      Status st = mp_->Feed(data.data(), data.size());
      if (!st.ok()) {
        body_error_ = std::move(st);
        ec = bhttp::error::body_limit;
        return 0;
      }
    } else {
      req_.body.append(data);
    }
    return data.size();
  }

  void OnFinish(ErrorCode& ec) {
    if (!mp_) return;
    Status st = mp_->Finish();
    if (!st.ok()) {
      body_error_ = std::move(st);
      ec = bhttp::error::body_limit;
      return;
    }
    req_.form = mp_->TakeParts();
    req_.uploads = mp_->uploads();
    mp_.reset();
  }

 private:
  void BeginRequest() {
    // Reset per-request state, keeping string capacities where the handler left them.
    req_.method.clear();
    req_.target.clear();
    req_.path.clear();
    req_.query.clear();
    // Keep a small body buffer for reuse, but do not pin a large one to an idle connection.
    if (req_.body.capacity() > kReadSize * 4) {
      std::string().swap(req_.body);
    } else {
      req_.body.clear();
    }
    req_.form.clear();
    req_.uploads.reset();
    req_.request_id.clear();
    req_.path_params.clear();
    n_headers_ = 0;
    header_done_ = false;
    version_ = 11;
    keep_alive_ = true;
    linger_ = false;
    body_bytes_ = 0;
    body_limit_ = 0;
    body_error_ = Status::Ok();
    mp_.reset();
    has_stashed_ = false;
    upload_ = false;
    route_ = nullptr;
    request_deadline_ms_ = kNever;
    rate_check_ = false;
    parser_.reset();
    parser_.emplace(this);
    parser_->header_limit(impl_->opts.max_header_bytes);
    // Limits are enforced in OnBody (with a useful message); Beast's own stays out of the way.
    parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
    if (w_->draining) {
      Close();
      return;
    }
    phase_ = buf_.size() > 0 ? Phase::kReading : Phase::kIdle;
    deadline_ms_ = w_->now_ms + impl_->idle_ms;
    if (buf_.size() > 0) {
      StartHeaderDeadline();
      Parse();
    } else {
      DoRead();
    }
  }

  void DoRead() {
    size_t want = mp_ ? kBodyReadSize : kReadSize;
    reading_ = true;
    socket_.async_read_some(
        buf_.prepare(want),
        [self = shared_from_this()](ErrorCode ec, size_t n) { self->OnRead(ec, n); });
  }

  void OnRead(ErrorCode ec, size_t n) {
    reading_ = false;
    if (phase_ == Phase::kClosed) return;
    if (ec) {
      Close();  // EOF or error; nothing useful can be answered
      return;
    }
    buf_.commit(n);
    if (phase_ == Phase::kLingering) {
      buf_.consume(buf_.size());
      DoRead();
      return;
    }
    if (phase_ == Phase::kWriting) {
      // A 408 is being written while this read was pending: the request is abandoned.
      // StartLinger() reads on once the answer is out.
      buf_.consume(buf_.size());
      return;
    }
    if (phase_ == Phase::kIdle) {
      phase_ = Phase::kReading;
      StartHeaderDeadline();
    }
    deadline_ms_ = w_->now_ms + impl_->idle_ms;
    Parse();
  }

  void Parse() {
    while (true) {
      if (buf_.size() == 0) {
        DoRead();
        return;
      }
      ErrorCode ec;
      size_t used = parser_->put(buf_.data(), ec);
      buf_.consume(used);
      if (ec == bhttp::error::need_more) {
        DoRead();
        return;
      }
      if (ec) {
        OnParseError(ec);
        return;
      }
      if (!header_done_ && parser_->is_header_done()) {
        if (!OnHeaderDone()) return;
      }
      if (parser_->is_done()) {
        Dispatch();
        return;
      }
    }
  }

  // Returns false when it has taken over (error answered, or 100 Continue being written).
  bool OnHeaderDone() {
    header_done_ = true;
    request_deadline_ms_ = kNever;  // the header deadline is met
    start_ns_ = MonotonicNanos();
    req_.headers.resize(n_headers_);
    std::string_view incoming_id = req_.Header("x-request-id");
    if (ValidRequestId(incoming_id)) {
      req_.request_id.assign(incoming_id);
    } else {
      w_->NewRequestId(&req_.request_id);
    }
    keep_alive_ = parser_->keep_alive();
    SetClientAddr();

    std::string_view path, query;
    SplitTarget(req_.target, &path, &query);
    req_.query.assign(query);
    if (!PercentDecode(path, false, &req_.path) || req_.path.empty() ||
        (req_.path[0] != '/' && req_.path != "*")) {
      SendError(400, "INVALID_INPUT", "malformed request target", /*linger=*/true);
      return false;
    }

    route_ = nullptr;
    match_ = impl_->router->MatchRoute(&req_, &route_, &allow_);

    // Beast has validated Content-Length (digits, no conflicting duplicates, not combined
    // with chunked); reading it back from the header avoids boost::optional, which trips
    // GCC's -Wmaybe-uninitialized in sanitizer builds.
    const bool chunked = parser_->chunked();
    uint64_t content_length = 0;
    if (!chunked) {
      std::string_view cl = req_.Header("content-length");
      std::from_chars(cl.data(), cl.data() + cl.size(), content_length);
    }
    const bool has_body = chunked || content_length > 0;

    // Credentials first: an unauthenticated client learns nothing about the limits and
    // makes the server read nothing.
    if (match_ == Router::MatchResult::kFound && route_->policy.authenticated &&
        impl_->opts.pre_authenticate && !PreAuthenticate(has_body)) {
      return false;
    }
    if (!has_body) return true;

    std::string_view content_type = req_.Header("content-type");
    const bool multipart = IsMultipartFormData(content_type);
    if (match_ != Router::MatchResult::kFound) {
      // Do not stream an upload to disk for a request that can only get a 404/405.
      if (multipart) {
        SendRouteError(true);
        return false;
      }
      body_limit_ = impl_->opts.max_json_body_bytes;
    } else if (multipart) {
      if (route_->policy.body != BodyKind::kUpload) {
        Core::Bump(impl_->n_rejected_bodies);
        SendError(415, "UNSUPPORTED_MEDIA_TYPE",
                  "multipart/form-data is accepted only by upload routes", true);
        return false;
      }
      upload_ = true;
      body_limit_ = impl_->opts.max_upload_bytes;
    } else {
      body_limit_ = route_->policy.body == BodyKind::kPredict ? impl_->opts.max_predict_body_bytes
                                                              : impl_->opts.max_json_body_bytes;
    }
    if (content_length > body_limit_) {
      Core::Bump(impl_->n_rejected_bodies);
      SendError(413, "PAYLOAD_TOO_LARGE", LimitMessage(), true);
      return false;
    }
    if (upload_) {
      Result<std::string> boundary = ParseBoundary(content_type);
      if (!boundary.ok()) {
        SendError(400, "INVALID_INPUT", boundary.status().message(), true);
        return false;
      }
      mp_ = std::make_unique<MultipartParser>(std::move(boundary).value(), impl_->opts.upload_dir,
                                              impl_->mp_limits);
    } else if (content_length > 0) {
      req_.body.reserve(static_cast<size_t>(content_length));
    }
    parser_->eager(true);
    StartBodyDeadlines();

    if (buf_.size() == 0 && EqualsIgnoreCase(req_.Header("expect"), "100-continue")) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      writing_continue_ = true;
      net::async_write(socket_, net::buffer(kContinue.data(), kContinue.size()),
                       [self = shared_from_this()](ErrorCode ec, size_t) {
                         self->writing_continue_ = false;
                         if (self->phase_ == Phase::kClosed) return;
                         if (ec) {
                           self->Close();
                           return;
                         }
                         self->Parse();
                       });
      return false;
    }
    return true;
  }

  // Runs pre_authenticate; on a refusal answers it and returns false.
  bool PreAuthenticate(bool has_body) {
    std::optional<PreAuthFailure> failure;
    try {
      failure = impl_->opts.pre_authenticate(req_);
    } catch (const std::exception& e) {
      LOG_ERROR("pre_authenticate threw").Str("request_id", req_.request_id).Str("error", e.what());
      SendError(500, "SERVICE_ERROR", "internal error", has_body);
      return false;
    } catch (...) {
      LOG_ERROR("pre_authenticate threw").Str("request_id", req_.request_id);
      SendError(500, "SERVICE_ERROR", "internal error", has_body);
      return false;
    }
    if (!failure) return true;
    Core::Bump(impl_->n_pre_auth);
    int status = failure->status >= 400 && failure->status <= 599 ? failure->status : 401;
    if (status == 401) {
      SendError(status, failure->code, failure->message, has_body, "WWW-Authenticate", "Bearer");
    } else {
      SendError(status, failure->code, failure->message, has_body);
    }
    return false;
  }

  // Request::client_addr: the peer, or the client behind a trusted proxy.
  void SetClientAddr() {
    if (!peer_.trusted) {
      // Usually equal already (no allocation); a handler may have moved it out.
      if (req_.client_addr != peer_.canonical) req_.client_addr = peer_.canonical;
      return;
    }
    std::string_view xff;
    std::string joined;  // only when the header is repeated
    for (size_t i = 0; i < n_headers_; ++i) {
      const auto& [k, v] = req_.headers[i];
      if (k != "x-forwarded-for") continue;
      if (xff.data() == nullptr) {
        xff = v;
      } else {
        if (joined.empty()) joined.assign(xff);
        joined.append(",").append(v);
        xff = joined;
      }
    }
    req_.client_addr = ClientAddressFor(peer_.canonical, xff, impl_->trusted);
  }

  void StartHeaderDeadline() {
    if (impl_->header_ms <= 0) return;
    request_deadline_ms_ = w_->now_ms + impl_->header_ms;
    deadline_kind_ = DeadlineKind::kHeader;
  }

  void StartBodyDeadlines() {
    if (!upload_ && impl_->body_ms > 0) {
      request_deadline_ms_ = w_->now_ms + impl_->body_ms;
      deadline_kind_ = DeadlineKind::kBody;
    }
    if (impl_->min_rate > 0) {
      rate_check_ = true;
      marks_[0] = RateMark{w_->now_ms, 0};
      mark_head_ = 0;
      mark_count_ = 1;
    }
  }

  // Keeps up to kRateMarks (time, body bytes) samples taken every window/4 and compares the
  // bytes received since the oldest (about one window ago) with the minimum rate.
  bool BodyRateTooLow(int64_t now) {
    const int64_t window = impl_->rate_window_ms;
    const int64_t step = std::max<int64_t>(1, window / (kRateMarks - 1));
    const RateMark& newest = marks_[(mark_head_ + mark_count_ - 1) % kRateMarks];
    if (now - newest.ms >= step) {
      if (mark_count_ == kRateMarks) {
        mark_head_ = (mark_head_ + 1) % kRateMarks;
        --mark_count_;
      }
      marks_[(mark_head_ + mark_count_) % kRateMarks] = RateMark{now, body_bytes_};
      ++mark_count_;
    }
    const RateMark& oldest = marks_[mark_head_];
    const int64_t span = now - oldest.ms;
    if (span < window) return false;
    return (body_bytes_ - oldest.bytes) * 1000 < impl_->min_rate * static_cast<uint64_t>(span);
  }

  // A request missed a deadline: 408 unless something is already being written for it.
  void TimeOut(std::string_view message) {
    Core::Bump(impl_->n_timeouts);
    request_deadline_ms_ = kNever;
    rate_check_ = false;
    if (writing_continue_) {
      Close();
      return;
    }
    mp_.reset();  // removes the temp files of an unfinished upload now
    SendError(408, "TIMEOUT", message, /*linger=*/true);
  }

  std::string LimitMessage() const {
    std::string m = upload_ ? "upload is larger than the limit of "
                            : "request body is larger than the limit of ";
    AppendInt(&m, body_limit_);
    m += " bytes";
    return m;
  }

  void OnParseError(ErrorCode ec) {
    mp_.reset();  // removes temp files of a rejected upload now
    if (!body_error_.ok()) {
      const Status& st = body_error_;
      switch (st.code()) {
        case Code::kPayloadTooLarge:
          Core::Bump(impl_->n_rejected_bodies);
          SendError(413, "PAYLOAD_TOO_LARGE", st.message(), true);
          break;
        case Code::kInvalidInput:
          SendError(400, "INVALID_INPUT", st.message(), true);
          break;
        default:
          LOG_ERROR("upload failed").Str("error", st.ToString());
          SendError(500, "SERVICE_ERROR", "could not store the upload", true);
          break;
      }
      return;
    }
    if (ec == bhttp::error::header_limit) {
      SendError(431, "INVALID_INPUT", "request headers are too large", true);
      return;
    }
    SendError(400, "INVALID_INPUT", "malformed HTTP request: " + ec.message(), true);
  }

  // Answers an error in the API shape with one optional extra header. `linger`: close the
  // connection afterwards, discarding what the client still sends for a while.
  void SendError(int status, std::string_view code, std::string_view message, bool linger,
                 std::string_view header_name = {}, std::string header_value = {}) {
    if (!header_done_) req_.headers.resize(n_headers_);  // drop stale entries
    if (req_.request_id.empty()) w_->NewRequestId(&req_.request_id);
    if (linger) {
      linger_ = true;
      keep_alive_ = false;
    }
    Response r;
    r.status = status;
    r.body = impl_->ErrorBody(status, code, message, req_.request_id);
    if (!header_name.empty()) r.headers.emplace_back(header_name, std::move(header_value));
    if (start_ns_ == 0 || !header_done_) start_ns_ = MonotonicNanos();
    WriteResponse(std::move(r));
  }

  // Answers 404/405 for a request the router rejected.
  void SendRouteError(bool linger) {
    if (match_ == Router::MatchResult::kNotFound) {
      SendError(404, "NOT_FOUND", "no route for " + req_.method + " " + req_.path, linger);
    } else {
      SendError(405, "INVALID_INPUT", "method " + req_.method + " is not allowed for " + req_.path,
                linger, "Allow", std::move(allow_));
    }
  }

  void Dispatch() {
    phase_ = Phase::kHandling;
    counted_ = true;
    w_->AddInFlight(1);
    if (match_ != Router::MatchResult::kFound) {
      SendRouteError(false);
      return;
    }
    const Handler* handler = &route_->handler;
    auto pending = std::make_shared<Pending>(shared_from_this());
    in_handler_ = true;
    try {
      (*handler)(req_, Responder([pending](Response r) { pending->Call(std::move(r)); }));
    } catch (const std::exception& e) {
      LOG_ERROR("handler threw").Str("request_id", req_.request_id).Str("error", e.what());
      pending->Call(Response::Json(
          500, impl_->ErrorBody(500, "SERVICE_ERROR", "internal error", req_.request_id)));
    } catch (...) {
      LOG_ERROR("handler threw").Str("request_id", req_.request_id);
      pending->Call(Response::Json(
          500, impl_->ErrorBody(500, "SERVICE_ERROR", "internal error", req_.request_id)));
    }
    in_handler_ = false;
    pending.reset();  // may deliver a "dropped" 500 (posted)
    if (has_stashed_) {
      has_stashed_ = false;
      WriteResponse(std::move(stashed_));
    }
  }

 public:
  void WriteResponse(Response r) {
    if (phase_ == Phase::kClosed) return;
    resp_ = std::move(r);
    int status = resp_.status;
    if (status < 100 || status > 999) status = 500;
    status_ = status;
    close_after_ = !keep_alive_ || linger_ || w_->draining;

    head_.clear();
    head_.append(version_ == 10 ? "HTTP/1.0 " : "HTTP/1.1 ");
    AppendInt(&head_, static_cast<uint64_t>(status));
    head_.push_back(' ');
    head_.append(ReasonPhrase(status));
    head_.append("\r\n");
    if (resp_.headers.empty()) {
      head_.append(impl_->fixed_headers);
    } else {
      head_.append("Server: serveml\r\n");
      for (const auto& [k, v] : impl_->default_headers) {
        bool overridden = false;
        for (const auto& rh : resp_.headers) overridden |= boost::beast::iequals(rh.first, k);
        if (!overridden) head_.append(k).append(": ").append(v).append("\r\n");
      }
    }
    head_.append(w_->date_line);
    bool no_body = status < 200 || status == 204 || status == 304;
    if (!no_body) {
      if (!resp_.content_type.empty() && SafeHeaderText(resp_.content_type)) {
        head_.append("Content-Type: ").append(resp_.content_type).append("\r\n");
      }
      head_.append("Content-Length: ");
      AppendInt(&head_, resp_.body.size());
      head_.append("\r\n");
    }
    head_.append("X-Request-ID: ").append(req_.request_id).append("\r\n");
    for (const auto& [k, v] : resp_.headers) {
      if (k.empty() || !SafeHeaderText(k) || !SafeHeaderText(v) || ReservedHeader(k)) continue;
      head_.append(k).append(": ").append(v).append("\r\n");
    }
    if (close_after_) {
      head_.append("Connection: close\r\n");
    } else if (version_ == 10) {
      head_.append("Connection: keep-alive\r\n");
    }
    head_.append("\r\n");

    std::array<net::const_buffer, 2> bufs{net::buffer(head_), net::const_buffer()};
    if (!no_body && req_.method != "HEAD") bufs[1] = net::buffer(resp_.body);
    phase_ = Phase::kWriting;
    deadline_ms_ = w_->now_ms + impl_->idle_ms;
    net::async_write(socket_, bufs,
                     [self = shared_from_this()](ErrorCode ec, size_t) { self->OnWritten(ec); });
  }

 private:
  void OnWritten(ErrorCode ec) {
    if (impl_->opts.access_log) {
      try {
        impl_->opts.access_log(req_, status_, (MonotonicNanos() - start_ns_) / 1000);
      } catch (...) {
      }
    }
    if (counted_) {
      counted_ = false;
      w_->AddInFlight(-1);
    }
    start_ns_ = 0;
    resp_.body.clear();
    resp_.headers.clear();
    req_.uploads.reset();  // removes temp files the handler did not keep
    req_.form.clear();
    mp_.reset();
    if (phase_ == Phase::kClosed) return;
    if (ec) {
      Close();
      return;
    }
    if (linger_) {
      StartLinger();
    } else if (close_after_) {
      Close();
    } else {
      BeginRequest();
    }
  }

  // Half-closes and discards whatever the client is still sending (e.g. the rest of a
  // rejected upload) for a short while, so that our response is not lost to a TCP reset.
  void StartLinger() {
    phase_ = Phase::kLingering;
    ErrorCode ignored;
    socket_.shutdown(net::socket_base::shutdown_send, ignored);
    deadline_ms_ = w_->now_ms + kLingerMillis;
    buf_.consume(buf_.size());
    if (!reading_) DoRead();  // a read may still be pending from before a 408
  }

  void Unlink() {
    if (prev_ != nullptr) {
      prev_->next_ = next_;
    } else if (w_->sessions == this) {
      w_->sessions = next_;
    }
    if (next_ != nullptr) next_->prev_ = prev_;
    prev_ = next_ = nullptr;
  }

  enum class DeadlineKind : uint8_t { kHeader, kBody };
  struct RateMark {
    int64_t ms = 0;
    uint64_t bytes = 0;
  };
  static constexpr uint8_t kRateMarks = 5;

  friend struct Pending;
  Worker* w_;
  Core* impl_;
  Session* prev_ = nullptr;
  Session* next_ = nullptr;
  Socket socket_;
  Peer peer_;
  Phase phase_ = Phase::kIdle;
  int64_t deadline_ms_ = 0;               // idle / linger / write deadline: close silently
  int64_t request_deadline_ms_ = kNever;  // header or body deadline of the request: 408
  DeadlineKind deadline_kind_ = DeadlineKind::kHeader;
  bool rate_check_ = false;  // a body is being read: minimum-rate check active
  uint8_t mark_head_ = 0;
  uint8_t mark_count_ = 0;
  std::array<RateMark, kRateMarks> marks_;
  bool reading_ = false;           // an async read is pending
  bool writing_continue_ = false;  // "100 Continue" is being written
  bool upload_ = false;            // this request's body is a multipart upload
  beast::flat_buffer buf_;
  std::optional<RequestParser> parser_;
  Request req_;
  size_t n_headers_ = 0;
  bool header_done_ = false;
  int version_ = 11;
  bool keep_alive_ = true;
  bool linger_ = false;
  bool close_after_ = false;
  bool counted_ = false;
  bool in_handler_ = false;
  bool has_stashed_ = false;
  uint64_t body_bytes_ = 0;
  uint64_t body_limit_ = 0;
  Status body_error_;
  std::unique_ptr<MultipartParser> mp_;
  int64_t start_ns_ = 0;
  int status_ = 0;
  Response resp_;
  Response stashed_;
  std::string head_;
  Router::MatchResult match_ = Router::MatchResult::kNotFound;
  const Router::Route* route_ = nullptr;
  std::string allow_;  // Allow header value for a 405
};

void RequestParser::on_request_impl(bhttp::verb, beast::string_view method,
                                    beast::string_view target, int version, ErrorCode&) {
  s_->OnRequestLine(Sv(method), Sv(target), version);
}
void RequestParser::on_field_impl(bhttp::field, beast::string_view name, beast::string_view value,
                                  ErrorCode&) {
  s_->OnField(Sv(name), Sv(value));
}
size_t RequestParser::on_body_impl(beast::string_view body, ErrorCode& ec) {
  return s_->OnBody(Sv(body), ec);
}
size_t RequestParser::on_chunk_body_impl(std::uint64_t, beast::string_view body, ErrorCode& ec) {
  return s_->OnBody(Sv(body), ec);
}
void RequestParser::on_finish_impl(ErrorCode& ec) { s_->OnFinish(ec); }

Pending::~Pending() {
  if (!called.load(std::memory_order_acquire)) {
    const std::string& id = session->req_.request_id;  // untouched until a response
    LOG_ERROR("handler dropped its responder without answering").Str("request_id", id);
    session->Deliver(
        Response::Json(500, session->impl_->ErrorBody(500, "SERVICE_ERROR", "internal error", id)));
  }
}

void Pending::Call(Response r) {
  if (called.exchange(true, std::memory_order_acq_rel)) {
    LOG_ERROR("responder called twice; second response dropped");
    return;
  }
  session->Deliver(std::move(r));
}

void Worker::Sweep() {
  now_ms = SteadyMillis();
  RefreshDate();
  for (Session* s = sessions; s != nullptr;) {
    Session* next = s->next();  // Close() unlinks s
    if (s->CheckRequestDeadlines(now_ms)) {
      s = next;
      continue;
    }
    Session::Phase p = s->phase();
    bool timed_out = p != Session::Phase::kHandling && now_ms >= s->deadline_ms();
    if (timed_out || (draining && p == Session::Phase::kIdle)) s->Close();
    s = next;
  }
}

void Worker::CloseAll() {
  for (Session* s = sessions; s != nullptr;) {
    Session* next = s->next();
    s->Close();
    s = next;
  }
}

void Core::DoAccept() {
  Worker* target = workers[next_worker++ % workers.size()].get();
  acceptor->async_accept(target->ioc, [this, target](ErrorCode ec, Socket socket) {
    OnAccept(ec, std::move(socket), target);
  });
}

void Core::OnAccept(ErrorCode ec, Socket socket, Worker* target) {
  if (!acceptor->is_open()) return;  // stopping
  if (ec) {
    if (ec == net::error::operation_aborted) return;
    LOG_WARN("accept failed").Str("error", ec.message());
    // Out of descriptors or similar: back off instead of spinning.
    auto timer = std::make_shared<net::steady_timer>(workers[0]->ioc);
    timer->expires_after(std::chrono::milliseconds(50));
    timer->async_wait([this, timer](ErrorCode) {
      if (acceptor->is_open()) DoAccept();
    });
    return;
  }
  ErrorCode opt_ec;
  Peer peer;
  auto ep = socket.remote_endpoint(opt_ec);
  bool known = !opt_ec;
  if (known) {
    peer.remote = ep.address().to_string();
    peer.ip = ToIpAddress(ep.address());
    peer.canonical = peer.ip.ToString();
    peer.trusted = !trusted.empty() && trusted.Contains(peer.ip);
  }
  // Caps: count first, then undo if over, so concurrent closes never let us overshoot.
  bool over = total_conns.fetch_add(1, std::memory_order_relaxed) >= max_conns;
  const int64_t per_address = opts.max_connections_per_address;
  if (!over && known && per_address > 0 && !peer.trusted &&
      !(opts.exempt_loopback && IsLoopback(peer.ip))) {
    peer.addr_counted = addr_counts.TryAcquire(ClientNetwork(peer.ip), per_address);
    over = !peer.addr_counted;
  }
  if (over) {
    total_conns.fetch_sub(1, std::memory_order_relaxed);
    Bump(n_rejected_conns);
    RejectConnection(std::move(socket));
    DoAccept();
    return;
  }
  socket.set_option(tcp::no_delay(true), opt_ec);
  net::post(target->ioc, [target, s = std::move(socket), p = std::move(peer)]() mutable {
    auto session = std::make_shared<Session>(target, std::move(s), std::move(p));
    session->Start();
  });
  DoAccept();
}

// Writes a small 503 and closes, without blocking the acceptor's thread: a fresh socket's
// send buffer takes the few hundred bytes whole, and what the client has already sent is
// drained so that closing does not reset the connection before the answer is read.
void Core::RejectConnection(Socket socket) {
  Worker* w = workers[0].get();  // the acceptor's own thread
  std::string id;
  w->NewRequestId(&id);
  std::string body = ErrorBody(503, "SERVICE_ERROR", "too many connections", id);
  std::string out = "HTTP/1.1 503 Service Unavailable\r\n";
  out.append(fixed_headers).append(w->date_line);
  out.append("Content-Type: application/json\r\nContent-Length: ");
  AppendInt(&out, body.size());
  out.append("\r\nX-Request-ID: ").append(id);
  out.append("\r\nRetry-After: 1\r\nConnection: close\r\n\r\n").append(body);
  ErrorCode ec;
  socket.non_blocking(true, ec);
  if (!ec) socket.write_some(net::buffer(out), ec);
  socket.shutdown(net::socket_base::shutdown_send, ec);
  char sink[4096];
  for (int i = 0; i < 16; ++i) {
    socket.read_some(net::buffer(sink), ec);
    if (ec) break;
  }
  socket.close(ec);
}

void Core::RunWorker(Worker* w) {
  while (true) {
    try {
      w->ioc.run();
      return;
    } catch (const std::exception& e) {
      LOG_ERROR("exception escaped an I/O handler").Str("error", e.what());
    } catch (...) {
      LOG_ERROR("exception escaped an I/O handler");
    }
  }
}

void ArmSweeper(Worker* w) {
  w->sweeper->expires_after(std::chrono::milliseconds(kSweepMillis));
  w->sweeper->async_wait([w](ErrorCode ec) {
    if (ec) return;
    w->Sweep();
    ArmSweeper(w);
  });
}

}  // namespace

struct Server::Impl : public Core {
  using Core::Core;
};

Server::Server(ServerOptions options, const Router* router)
    : impl_(std::make_unique<Impl>(std::move(options), router)) {}

Server::~Server() {
  Stop(0);
  // Destroy the acceptor, then each io_context (which destroys pending handlers and the
  // sessions they hold) while the rest of Impl is still alive.
  impl_->acceptor.reset();
  impl_->workers.clear();
}

std::string Server::Start() {
  Core& im = *impl_;
  {
    std::lock_guard<std::mutex> lock(im.stop_mu);
    if (im.started) return "server already started";
    im.started = true;
  }
  const ServerOptions& o = im.opts;
  if (im.router == nullptr) return "server has no router";
  im.idle_ms = std::max<int64_t>(1, o.idle_timeout_seconds) * 1000;
  im.header_ms = std::max<int64_t>(0, o.header_timeout_seconds) * 1000;
  im.body_ms = std::max<int64_t>(0, o.body_timeout_seconds) * 1000;
  im.rate_window_ms = std::max<int64_t>(1, o.min_rate_window_seconds) * 1000;
  im.min_rate = std::min<uint64_t>(o.min_body_bytes_per_second, 1ull << 40);
  std::string bad_proxy;
  if (!im.trusted.AddAll(o.trusted_proxies, &bad_proxy)) {
    return "trusted_proxies: '" + bad_proxy + "' is not an IP address or CIDR network";
  }
  im.max_conns = std::max<int64_t>(1, o.max_connections);
  struct rlimit nofile;
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY) {
    int64_t limit = static_cast<int64_t>(nofile.rlim_cur);
    int64_t usable = limit - std::max<int64_t>(64, limit / 8);
    if (usable < im.max_conns) {
      im.max_conns = std::max<int64_t>(1, usable);
      LOG_INFO("connection cap lowered to fit the open-file limit")
          .Int("max_connections", im.max_conns)
          .Int("rlimit_nofile", limit);
    }
  }
  im.mp_limits.max_field_bytes = o.max_field_bytes;
  im.fixed_headers = "Server: serveml\r\n";
  for (const auto& [k, v] : o.default_headers) {
    if (k.empty() || !SafeHeaderText(k) || !SafeHeaderText(v)) continue;
    im.fixed_headers.append(k).append(": ").append(v).append("\r\n");
    im.default_headers.emplace_back(k, v);
  }

  size_t n = o.io_threads;
  if (n == 0) n = std::max(1u, std::thread::hardware_concurrency());
  std::random_device rd;
  for (size_t i = 0; i < n; ++i) {
    uint64_t seed = (static_cast<uint64_t>(rd()) << 32) ^ rd() ^
                    static_cast<uint64_t>(NowUnixMicros()) ^ (i * 0x9e3779b97f4a7c15ull);
    im.workers.push_back(std::make_unique<Worker>(&im, seed));
    im.workers.back()->RefreshDate();
  }

  ErrorCode ec;
  net::ip::address addr = net::ip::make_address(o.host, ec);
  tcp::endpoint endpoint;
  if (ec) {
    tcp::resolver resolver(im.workers[0]->ioc);
    auto results = resolver.resolve(o.host, std::to_string(o.port), ec);
    if (ec || results.empty()) {
      return "cannot resolve host '" + o.host + "': " + ec.message();
    }
    endpoint = results.begin()->endpoint();
  } else {
    endpoint = tcp::endpoint(addr, o.port);
  }
  im.acceptor = std::make_unique<Acceptor>(im.workers[0]->ioc);
  im.acceptor->open(endpoint.protocol(), ec);
  if (!ec) im.acceptor->set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) im.acceptor->bind(endpoint, ec);
  if (!ec) im.acceptor->listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    std::string msg =
        "cannot listen on " + o.host + ":" + std::to_string(o.port) + ": " + ec.message();
    im.acceptor.reset();
    return msg;
  }
  im.port = im.acceptor->local_endpoint(ec).port();

  im.DoAccept();
  for (auto& w : im.workers) {
    w->sweeper.emplace(w->ioc);
    ArmSweeper(w.get());
    Worker* wp = w.get();
    w->thread = std::thread([&im, wp] { im.RunWorker(wp); });
  }
  return "";
}

uint16_t Server::port() const { return impl_->port.load(); }

int64_t Server::in_flight() const {
  int64_t n = 0;
  for (const auto& w : impl_->workers) n += w->in_flight.load(std::memory_order_relaxed);
  return n;
}

int64_t Server::connections() const {
  int64_t n = 0;
  for (const auto& w : impl_->workers) n += w->open.load(std::memory_order_relaxed);
  return n;
}

int64_t Server::max_connections() const { return impl_->max_conns; }

uint64_t Server::rejected_connections() const {
  return impl_->n_rejected_conns.load(std::memory_order_relaxed);
}
uint64_t Server::timeouts() const { return impl_->n_timeouts.load(std::memory_order_relaxed); }
uint64_t Server::pre_auth_failures() const {
  return impl_->n_pre_auth.load(std::memory_order_relaxed);
}
uint64_t Server::rejected_bodies() const {
  return impl_->n_rejected_bodies.load(std::memory_order_relaxed);
}

void Server::Stop(int drain_seconds) {
  Core& im = *impl_;
  std::lock_guard<std::mutex> lock(im.stop_mu);
  if (!im.started || im.stopped) return;
  im.stopped = true;
  bool running = im.acceptor != nullptr && !im.workers.empty() && im.workers[0]->thread.joinable();
  if (!running) return;

  // Runs `fn` on each worker's own thread and waits for all of them.
  auto on_each_worker = [&im](auto fn) {
    std::vector<std::future<void>> done;
    for (auto& w : im.workers) {
      auto p = std::make_shared<std::promise<void>>();
      done.push_back(p->get_future());
      Worker* wp = w.get();
      net::post(wp->ioc, [wp, p, fn] {
        fn(wp);
        p->set_value();
      });
    }
    for (auto& f : done) f.wait();
  };

  // 1. Refuse new connections.
  {
    std::promise<void> closed;
    net::post(im.workers[0]->ioc, [&im, &closed] {
      ErrorCode ignored;
      im.acceptor->close(ignored);
      closed.set_value();
    });
    closed.get_future().wait();
  }
  // 2. Drain: idle keep-alive connections close now, busy ones after their response.
  on_each_worker([](Worker* w) {
    w->draining = true;
    w->Sweep();
  });
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(drain_seconds);
  while (connections() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  // 3. Close what is left and stop the threads.
  on_each_worker([](Worker* w) {
    w->CloseAll();
    w->sweeper->cancel();
  });
  for (auto& w : im.workers) w->ioc.stop();
  for (auto& w : im.workers) {
    if (w->thread.joinable()) w->thread.join();
  }
}

}  // namespace serveml::http
