#include "cli/client_commands.h"

#include <signal.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "cli/args.h"
#include "cli/client_config.h"
#include "cli/http_client.h"
#include "cli/output.h"
#include "cli/progress.h"

namespace serveml::cli {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;

constexpr int kExitOk = 0;
constexpr int kExitError = 1;
constexpr int kExitUsage = 2;

struct Context;
using Handler = int (*)(Context&, const ParsedArgs&);

// One client command: its flags (besides the common ones), help text and handler.
struct Command {
  const char* name;
  const char* synopsis;  // first usage line, without "usage: serveml "
  const char* summary;   // one line for the overview
  const char* details;   // option descriptions for `serveml help NAME`
  std::vector<std::string> value_flags;
  std::vector<std::string> bool_flags;
  Handler run;
};

struct Context {
  const Command* command = nullptr;
  Connection conn;
  ClientConfig saved;       // what the config file held at start-up
  std::string config_path;  // empty when $HOME is not set
  bool json_output = false;
  bool auth_hint = true;  // explain 401s in terms of the token (not for login/register)
  std::unique_ptr<HttpClient> client;

  HttpClient& Client() {
    if (!client) client = std::make_unique<HttpClient>(conn.url, conn.token);
    return *client;
  }
};

constexpr const char* kCommonOptions =
    "Common options:\n"
    "  --url URL      server URL (default: env SERVEML_URL, else the URL saved by login,\n"
    "                 else http://127.0.0.1:8000)\n"
    "  --token TOKEN  bearer token or API key (sk-...) (default: env SERVEML_TOKEN, else the\n"
    "                 token saved by login for that URL)\n"
    "  --json         print the raw JSON response instead of a summary\n"
    "  -h, --help     show help\n";

// ---------------------------------------------------------------------------------------
// Output helpers

void PrintCommandUsage(FILE* out, const Command& cmd) {
  std::fprintf(out, "usage: serveml %s\n\n  %s\n", cmd.synopsis, cmd.summary);
  if (cmd.details && *cmd.details) std::fprintf(out, "\n%s", cmd.details);
  std::fprintf(out, "\n%s", kCommonOptions);
}

int UsageError(const Context& ctx, const std::string& message) {
  std::fprintf(stderr, "serveml %s: %s\nusage: serveml %s\nRun 'serveml help %s' for details.\n",
               ctx.command->name, message.c_str(), ctx.command->synopsis, ctx.command->name);
  return kExitUsage;
}

int Fail(const std::string& message) {
  std::fprintf(stderr, "error: %s\n", message.c_str());
  return kExitError;
}

void PrintRaw(const std::string& body) {
  std::fwrite(body.data(), 1, body.size(), stdout);
  if (body.empty() || body.back() != '\n') std::fputc('\n', stdout);
}

// For a 2xx response, parses the body into *body ({} when empty) and returns true.
// Otherwise prints the error (with a hint for auth failures) and returns false.
bool CheckResponse(const Context& ctx, const Result<HttpResponse>& result, json* body) {
  if (!result.ok()) {
    Fail(result.status().message());
    return false;
  }
  const HttpResponse& r = *result;
  if (r.status < 200 || r.status >= 300) {
    Fail(FormatApiError(r.status, r.body, r.request_id));
    if (r.status == 401 && ctx.auth_hint) {
      std::fprintf(stderr, ctx.conn.token.empty()
                               ? "hint: not logged in; run 'serveml login' or set SERVEML_TOKEN\n"
                               : "hint: the token was rejected; run 'serveml login' again\n");
    }
    return false;
  }
  if (r.body.find_first_not_of(" \t\r\n") == std::string::npos) {
    *body = json::object();
    return true;
  }
  *body = json::parse(r.body, nullptr, /*allow_exceptions=*/false);
  if (body->is_discarded()) {
    Fail("the server at " + RedactUrl(ctx.conn.url) + " returned a non-JSON response (HTTP " +
         std::to_string(r.status) + "); is --url pointing at a ServeML server?");
    return false;
  }
  return true;
}

std::string Str(const json& obj, const char* key) {
  if (!obj.is_object()) return "";
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return "";
  return it->is_string() ? it->get<std::string>() : it->dump();
}

std::optional<std::string> Env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return std::nullopt;
  return std::string(v);
}

Status CheckReadableFile(const std::string& path, const char* what) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return InvalidInput(std::string("cannot read ") + what + " '" + path +
                        "': " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) {
    return InvalidInput(std::string(what) + " '" + path + "' is not a regular file");
  }
  if (::access(path.c_str(), R_OK) != 0) {
    return InvalidInput(std::string("cannot read ") + what + " '" + path +
                        "': " + std::strerror(errno));
  }
  return Status::Ok();
}

// "dir/iris.model.pkl" -> "iris.model".
std::string FileStem(const std::string& path) {
  auto slash = path.rfind('/');
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  auto dot = base.rfind('.');
  if (dot != std::string::npos && dot > 0) base.resize(dot);
  return base;
}

// Reads all of `f` (stdin or a file).
Result<std::string> ReadAll(FILE* f, const std::string& what) {
  std::string out;
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, n);
  if (std::ferror(f)) return InvalidInput("cannot read " + what + ": " + std::strerror(errno));
  return out;
}

// ---------------------------------------------------------------------------------------
// Passwords

termios g_saved_termios;
volatile sig_atomic_t g_echo_off = 0;

void RestoreEchoAndReraise(int sig) {
  if (g_echo_off) ::tcsetattr(STDIN_FILENO, TCSANOW, &g_saved_termios);
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

// Reads one line from stdin without the trailing newline; nullopt at EOF with no data.
std::optional<std::string> ReadLine() {
  char* buf = nullptr;
  size_t cap = 0;
  ssize_t n = ::getline(&buf, &cap, stdin);
  std::optional<std::string> out;
  if (n >= 0) {
    out.emplace(buf, static_cast<size_t>(n));
    while (!out->empty() && (out->back() == '\n' || out->back() == '\r')) out->pop_back();
  }
  if (buf) {
    std::memset(buf, 0, cap);
    std::free(buf);
  }
  return out;
}

// Prompts on stderr and reads a line from the terminal on stdin with echo off.
std::optional<std::string> PromptNoEcho(const char* prompt) {
  std::fprintf(stderr, "%s", prompt);
  std::fflush(stderr);
  bool echo_off = false;
  struct sigaction old_int {
  }, old_term{}, sa{};
  if (::tcgetattr(STDIN_FILENO, &g_saved_termios) == 0) {
    sa.sa_handler = &RestoreEchoAndReraise;
    ::sigemptyset(&sa.sa_mask);
    ::sigaction(SIGINT, &sa, &old_int);
    ::sigaction(SIGTERM, &sa, &old_term);
    termios t = g_saved_termios;
    t.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    g_echo_off = 1;
    echo_off = ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &t) == 0;
    if (!echo_off) g_echo_off = 0;
  }
  std::optional<std::string> line = ReadLine();
  if (echo_off) {
    ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &g_saved_termios);
    g_echo_off = 0;
    ::sigaction(SIGINT, &old_int, nullptr);
    ::sigaction(SIGTERM, &old_term, nullptr);
  }
  std::fputc('\n', stderr);
  return line;
}

// The password from --password, env SERVEML_PASSWORD, a no-echo prompt (stdin is a TTY;
// asked twice when `confirm`) or the first line of stdin.
Result<std::string> GetPassword(const ParsedArgs& args, bool confirm) {
  std::optional<std::string> pw = args.Get("password");
  if (!pw) pw = Env("SERVEML_PASSWORD");
  if (!pw) {
    if (::isatty(STDIN_FILENO)) {
      pw = PromptNoEcho("Password: ");
      if (pw && confirm && !pw->empty()) {
        std::optional<std::string> again = PromptNoEcho("Repeat password: ");
        if (!again || *again != *pw) return InvalidInput("the passwords do not match");
      }
    } else {
      pw = ReadLine();
    }
  }
  if (!pw || pw->empty()) {
    return InvalidInput("a password is required (--password, SERVEML_PASSWORD or stdin)");
  }
  return *pw;
}

// ---------------------------------------------------------------------------------------
// login / register / logout

int SaveToken(Context& ctx, const json& body, const std::string& raw, const std::string& who,
              const char* verb) {
  const std::string token = Str(body, "access_token");
  if (token.empty()) return Fail("the server response has no access_token");
  if (ctx.config_path.empty()) return Fail("cannot save the token: $HOME is not set");
  if (Status st = WriteConfigFile(ctx.config_path, ClientConfig{ctx.conn.url, token}); !st.ok()) {
    return Fail(st.message());
  }
  if (ctx.json_output) {
    PrintRaw(RedactSecrets(raw));
  } else {
    std::printf("%s %s at %s\nToken saved to %s\n", verb, who.c_str(),
                RedactUrl(ctx.conn.url).c_str(), ctx.config_path.c_str());
  }
  return kExitOk;
}

int RunLogin(Context& ctx, const ParsedArgs& args) {
  if (!args.positionals.empty())
    return UsageError(ctx, "unexpected argument '" + args.positionals[0] + "'");
  auto email = args.Get("email");
  if (!email || email->empty()) return UsageError(ctx, "--email is required");
  auto password = GetPassword(args, /*confirm=*/false);
  if (!password.ok()) return UsageError(ctx, password.status().message());

  const std::string request = json{{"email", *email}, {"password", *password}}.dump();
  ctx.auth_hint = false;
  HttpClient client(ctx.conn.url, /*token=*/"");
  auto result = client.PostJson("/api/v1/auth/login", request);
  json body;
  if (!CheckResponse(ctx, result, &body)) return kExitError;
  return SaveToken(ctx, body, result->body, *email, "Logged in as");
}

int RunRegister(Context& ctx, const ParsedArgs& args) {
  if (!args.positionals.empty())
    return UsageError(ctx, "unexpected argument '" + args.positionals[0] + "'");
  auto email = args.Get("email");
  auto username = args.Get("username");
  if (!email || email->empty()) return UsageError(ctx, "--email is required");
  if (!username || username->empty()) return UsageError(ctx, "--username is required");
  auto password = GetPassword(args, /*confirm=*/true);
  if (!password.ok()) return UsageError(ctx, password.status().message());

  json request = {{"email", *email}, {"username", *username}, {"password", *password}};
  if (auto full_name = args.Get("full-name")) request["full_name"] = *full_name;
  ctx.auth_hint = false;
  HttpClient client(ctx.conn.url, /*token=*/"");
  auto result = client.PostJson("/api/v1/auth/register", request.dump());
  json body;
  if (!CheckResponse(ctx, result, &body)) return kExitError;
  return SaveToken(ctx, body, result->body, *email, "Registered");
}

int RunLogout(Context& ctx, const ParsedArgs& args) {
  if (!args.positionals.empty())
    return UsageError(ctx, "unexpected argument '" + args.positionals[0] + "'");
  if (ctx.config_path.empty()) return Fail("$HOME is not set");
  if (ctx.saved.token.empty()) {
    std::printf("Not logged in.\n");
    return kExitOk;
  }
  if (Status st = WriteConfigFile(ctx.config_path, ClientConfig{ctx.saved.url, ""}); !st.ok()) {
    return Fail(st.message());
  }
  std::printf("Logged out; token removed from %s\n", ctx.config_path.c_str());
  return kExitOk;
}

// ---------------------------------------------------------------------------------------
// deploy

std::string EndpointUrl(const Context& ctx, const json& detail, const std::string& id) {
  std::string endpoint = Str(detail, "endpoint_url");
  if (endpoint.empty()) return ctx.conn.url + "/api/v1/predict/" + UrlEscape(id);
  if (endpoint.front() == '/') return ctx.conn.url + endpoint;
  return endpoint;
}

// Prints the outcome of a deployment in its terminal (or current) state; 1 if failed.
int ReportDeployment(const Context& ctx, const json& detail, const std::string& raw,
                     const std::string& id, bool print_header) {
  const std::string status = Str(detail, "status");
  if (ctx.json_output) {
    PrintRaw(raw);
  } else {
    if (print_header) {
      std::printf("id:       %s\nname:     %s\n", id.c_str(), Str(detail, "name").c_str());
    }
    std::printf("status:   %s\n", status.c_str());
    if (status == "active") {
      std::printf("endpoint: %s\n", EndpointUrl(ctx, detail, id).c_str());
    }
  }
  if (status == "failed") {
    std::string message = Str(detail, "error_message");
    if (message.empty()) message = "(no error message)";
    return Fail("DEPLOYMENT_FAILED: " + message);
  }
  return kExitOk;
}

int RunDeploy(Context& ctx, const ParsedArgs& args) {
  if (args.positionals.size() != 1) return UsageError(ctx, "expected exactly one model FILE");
  const std::string file = args.positionals[0];
  if (Status st = CheckReadableFile(file, "model file"); !st.ok()) {
    return UsageError(ctx, st.message());
  }
  const std::string name = args.Get("name").value_or(FileStem(file));
  if (name.empty()) return UsageError(ctx, "--name must not be empty");

  std::vector<MultipartPart> parts;
  parts.push_back({"model_file", file, true, "application/octet-stream"});
  parts.push_back({"name", name, false, ""});
  if (auto req = args.Get("requirements")) {
    if (Status st = CheckReadableFile(*req, "requirements file"); !st.ok()) {
      return UsageError(ctx, st.message());
    }
    parts.push_back({"requirements_file", *req, true, "text/plain"});
  }
  if (auto memory = args.Get("memory")) {
    auto mb = ParseIntFlag("memory", *memory, 1, 1 << 20);
    if (!mb.ok()) return UsageError(ctx, mb.status().message());
    parts.push_back({"memory", std::to_string(*mb), false, ""});
  }
  if (auto timeout = args.Get("timeout")) {
    auto s = ParseIntFlag("timeout", *timeout, 1, 24 * 3600);
    if (!s.ok()) return UsageError(ctx, s.status().message());
    parts.push_back({"timeout", std::to_string(*s), false, ""});
  }
  double wait_timeout = 120;
  if (auto wt = args.Get("wait-timeout")) {
    auto s = ParseSecondsFlag("wait-timeout", *wt);
    if (!s.ok()) return UsageError(ctx, s.status().message());
    wait_timeout = std::min(*s, 1e7);  // keeps the deadline arithmetic in range
  }
  const bool wait = args.switches.count("wait") > 0;
  const bool stderr_tty = ::isatty(STDERR_FILENO) != 0;

  std::optional<ProgressRenderer> progress;
  if (stderr_tty && !args.switches.count("no-progress")) progress.emplace(stderr);
  auto result =
      ctx.Client().PostMultipart("/api/v1/deploy", parts, progress ? &*progress : nullptr);
  json body;
  if (!CheckResponse(ctx, result, &body)) return kExitError;
  const std::string id = Str(body, "id");
  if (id.empty()) return Fail("the server response has no deployment id");
  if (!wait) return ReportDeployment(ctx, body, result->body, id, /*print_header=*/true);

  if (!ctx.json_output) {
    std::printf("id:       %s\nname:     %s\n", id.c_str(), Str(body, "name").c_str());
    std::fflush(stdout);
  }
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double>(wait_timeout));
  auto interval = std::chrono::milliseconds(100);
  const std::string path = "/api/v1/deployments/" + UrlEscape(id);
  bool drew = false;
  for (;;) {
    auto poll = ctx.Client().Get(path);
    if (drew && (!poll.ok() || poll->status >= 300)) std::fprintf(stderr, "\r\x1b[K");
    json detail;
    if (!CheckResponse(ctx, poll, &detail)) return kExitError;
    const std::string status = Str(detail, "status");
    if (status == "active" || status == "failed") {
      if (drew) std::fprintf(stderr, "\r\x1b[K");
      return ReportDeployment(ctx, detail, poll->body, id, /*print_header=*/false);
    }
    const auto now = Clock::now();
    if (now >= deadline) {
      if (drew) std::fprintf(stderr, "\r\x1b[K");
      char secs[32];
      std::snprintf(secs, sizeof(secs), "%g", wait_timeout);
      return Fail("timed out after " + std::string(secs) + " s waiting for deployment " + id +
                  " (status: " + status + "); check it later with 'serveml list'");
    }
    if (stderr_tty) {
      std::fprintf(stderr, "\rWaiting for deployment: %s (%.1f s)\x1b[K", status.c_str(),
                   std::chrono::duration<double>(now - start).count());
      std::fflush(stderr);
      drew = true;
    }
    std::this_thread::sleep_for(std::min<Clock::duration>(interval, deadline - now));
    interval = std::min(interval + std::chrono::milliseconds(50), std::chrono::milliseconds(250));
  }
}

// ---------------------------------------------------------------------------------------
// list / predict / delete / status

int RunList(Context& ctx, const ParsedArgs& args) {
  if (!args.positionals.empty())
    return UsageError(ctx, "unexpected argument '" + args.positionals[0] + "'");
  std::string query;
  auto add = [&](const char* key, const std::string& value) {
    query += (query.empty() ? "?" : "&") + std::string(key) + "=" + UrlEscape(value);
  };
  if (auto limit = args.Get("limit")) {
    auto n = ParseIntFlag("limit", *limit, 1, 100);
    if (!n.ok()) return UsageError(ctx, n.status().message());
    add("limit", std::to_string(*n));
  }
  if (auto offset = args.Get("offset")) {
    auto n = ParseIntFlag("offset", *offset, 0, INT32_MAX);
    if (!n.ok()) return UsageError(ctx, n.status().message());
    add("offset", std::to_string(*n));
  }
  if (auto status = args.Get("status")) add("status", *status);
  if (auto framework = args.Get("framework")) add("framework", *framework);
  if (auto search = args.Get("search")) add("search", *search);

  auto result = ctx.Client().Get("/api/v1/deployments" + query);
  json body;
  if (!CheckResponse(ctx, result, &body)) return kExitError;
  if (ctx.json_output) {
    PrintRaw(result->body);
    return kExitOk;
  }
  auto table = FormatDeploymentTable(result->body);
  if (!table.ok()) return Fail(table.status().message());
  std::fputs(table->c_str(), stdout);
  return kExitOk;
}

int RunPredict(Context& ctx, const ParsedArgs& args) {
  if (args.positionals.size() != 1) return UsageError(ctx, "expected exactly one deployment ID");
  const std::string id = args.positionals[0];
  auto data_arg = args.Get("data");
  if (!data_arg) return UsageError(ctx, "--data is required (JSON, @file.json or - for stdin)");

  std::string text;
  std::string source = "--data";
  if (*data_arg == "-") {
    source = "stdin";
    auto all = ReadAll(stdin, source);
    if (!all.ok()) return UsageError(ctx, all.status().message());
    text = std::move(all).value();
  } else if (!data_arg->empty() && (*data_arg)[0] == '@') {
    source = data_arg->substr(1);
    if (Status st = CheckReadableFile(source, "data file"); !st.ok()) {
      return UsageError(ctx, st.message());
    }
    std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(source.c_str(), "rb"), &std::fclose);
    if (!f) return UsageError(ctx, "cannot open " + source + ": " + std::strerror(errno));
    auto all = ReadAll(f.get(), source);
    if (!all.ok()) return UsageError(ctx, all.status().message());
    text = std::move(all).value();
  } else {
    text = *data_arg;
  }
  json data;
  try {
    data = json::parse(text);
  } catch (const json::parse_error& e) {
    std::string why = e.what();  // "[json.exception.parse_error.101] parse error at ..."
    if (auto close = why.find("] "); close != std::string::npos) why = why.substr(close + 2);
    return UsageError(ctx, source + " is not valid JSON: " + why);
  }

  const std::string request = json{{"data", std::move(data)}}.dump();
  auto result = ctx.Client().PostJson("/api/v1/predict/" + UrlEscape(id), request);
  json body;
  if (!CheckResponse(ctx, result, &body)) return kExitError;
  if (ctx.json_output) {
    PrintRaw(result->body);
  } else {
    PrintRaw(body.dump(2));
  }
  return kExitOk;
}

int RunDelete(Context& ctx, const ParsedArgs& args) {
  if (args.positionals.size() != 1) return UsageError(ctx, "expected exactly one deployment ID");
  const std::string id = args.positionals[0];
  auto result = ctx.Client().Delete("/api/v1/deployments/" + UrlEscape(id));
  json body;
  if (!CheckResponse(ctx, result, &body)) return kExitError;
  if (ctx.json_output) {
    PrintRaw(result->body.empty() ? "{}" : result->body);
  } else {
    std::printf("Deleted deployment %s\n", id.c_str());
  }
  return kExitOk;
}

std::string Scalar(const ordered_json& v) {
  return v.is_string() ? v.get<std::string>() : v.dump();
}

int RunStatus(Context& ctx, const ParsedArgs& args) {
  if (!args.positionals.empty())
    return UsageError(ctx, "unexpected argument '" + args.positionals[0] + "'");
  auto result = ctx.Client().Get("/api/v1/status");
  json checked;
  if (!CheckResponse(ctx, result, &checked)) return kExitError;
  if (ctx.json_output) {
    PrintRaw(result->body);
    return kExitOk;
  }
  ordered_json body = ordered_json::parse(result->body, nullptr, false);
  if (!body.is_object()) {
    PrintRaw(checked.dump(2));
    return kExitOk;
  }
  std::printf("server: %s\n", RedactUrl(ctx.conn.url).c_str());
  for (auto it = body.begin(); it != body.end(); ++it) {
    const ordered_json& v = it.value();
    std::string line = it.key() + ": ";
    if (v.is_object()) {
      std::string extra;
      for (auto f = v.begin(); f != v.end(); ++f) {
        if (f.key() == "status" || f->is_structured()) continue;
        extra += (extra.empty() ? "" : ", ") + f.key() + "=" + Scalar(f.value());
      }
      if (v.contains("status")) {
        line += Scalar(v["status"]) + (extra.empty() ? "" : " (" + extra + ")");
      } else {
        line += extra.empty() ? v.dump() : extra;
      }
      std::printf("%s\n", line.c_str());
    } else if (v.is_array()) {
      if (v.empty()) {
        std::printf("%snone\n", line.c_str());
      } else {
        std::printf("%s\n", line.c_str());
        for (const auto& item : v) std::printf("  - %s\n", Scalar(item).c_str());
      }
    } else {
      std::printf("%s%s\n", line.c_str(), Scalar(v).c_str());
    }
  }
  return kExitOk;
}

// ---------------------------------------------------------------------------------------
// The command table

const std::vector<Command>& Commands() {
  static const std::vector<Command> kCommands = {
      {"login",
       "login --email EMAIL [--password PASSWORD] [--url URL]",
       "Log in and save the server URL and token to ~/.serveml/config.json (mode 0600).",
       "  --email EMAIL        account email\n"
       "  --password PASSWORD  password (default: env SERVEML_PASSWORD, else prompted without\n"
       "                       echo on a terminal, else the first line of stdin)\n",
       {"email", "password"},
       {},
       &RunLogin},
      {"register",
       "register --email EMAIL --username USER [--password PASSWORD] [--full-name N]",
       "Create an account, then save the server URL and token like login.",
       "  --email EMAIL        account email\n"
       "  --username USER      user name\n"
       "  --password PASSWORD  as for login (asked twice when prompted)\n"
       "  --full-name NAME     optional display name\n",
       {"email", "username", "password", "full-name"},
       {},
       &RunRegister},
      {"logout",
       "logout",
       "Remove the saved token from ~/.serveml/config.json.",
       "",
       {},
       {},
       &RunLogout},
      {"deploy",
       "deploy FILE [--name NAME] [--requirements FILE] [--memory MB] [--timeout S] [--wait]",
       "Upload a model file (.pkl, .joblib, .onnx, XGBoost, LightGBM) as a new deployment.",
       "  --name NAME          deployment name (default: the file name without extension)\n"
       "  --requirements FILE  requirements.txt to record with the deployment\n"
       "  --memory MB          memory limit in MB\n"
       "  --timeout S          prediction timeout in seconds\n"
       "  --wait               wait until the deployment is active or failed; print the\n"
       "                       endpoint URL, or the error and exit 1 when it failed\n"
       "  --wait-timeout S     give up waiting after S seconds (default 120)\n"
       "  --no-progress        no upload progress bar (shown only when stderr is a terminal)\n",
       {"name", "requirements", "memory", "timeout", "wait-timeout"},
       {"wait", "no-progress"},
       &RunDeploy},
      {"list",
       "list [--status S] [--search Q] [--framework F] [--limit N] [--offset N]",
       "List your deployments as a table (id, name, status, framework, created_at).",
       "  --status S     only deployments with this status (e.g. active, failed)\n"
       "  --search Q     only deployments whose name matches Q\n"
       "  --framework F  only deployments of this framework (e.g. sklearn, onnx)\n"
       "  --limit N      at most N rows (1-100)\n"
       "  --offset N     skip the first N rows\n",
       {"status", "search", "framework", "limit", "offset"},
       {},
       &RunList},
      {"predict",
       "predict ID --data JSON|@FILE|-",
       "Send input data to a deployment and print the prediction JSON.",
       "  --data JSON   the value of \"data\": a row [f,...], rows [[...],...] or an object of\n"
       "                named features; @FILE reads it from a file, - from stdin\n",
       {"data"},
       {},
       &RunPredict},
      {"delete", "delete ID", "Delete a deployment.", "", {}, {}, &RunDelete},
      {"status",
       "status",
       "Show the server's component status (GET /api/v1/status).",
       "",
       {},
       {},
       &RunStatus},
  };
  return kCommands;
}

const Command* FindCommand(std::string_view name) {
  for (const Command& c : Commands()) {
    if (name == c.name) return &c;
  }
  return nullptr;
}

void PrintOverview(FILE* out) {
  std::fprintf(out,
               "usage: serveml <command> [options]\n\n"
               "Server:\n"
               "  serveml serve [--host H] [--port P] [--data-dir D] [--config FILE]\n"
               "  serveml run MODEL --input NAME=FILE.pb ... --output-dir DIR\n\n"
               "Client commands:\n");
  for (const Command& c : Commands()) {
    std::fprintf(out, "  serveml %s\n      %s\n", c.synopsis, c.summary);
  }
  std::fprintf(out, "\n%s\nRun 'serveml help COMMAND' for a command's options.\n", kCommonOptions);
}

int RunImpl(int argc, char** argv) {
  if (argc < 1 || argv == nullptr || argv[0] == nullptr) {
    PrintOverview(stderr);
    return kExitUsage;
  }
  const std::string_view name = argv[0];
  if (name == "help" || name == "--help" || name == "-h") {
    if (argc >= 2 && argv[1] != nullptr) {
      const Command* cmd = FindCommand(argv[1]);
      if (cmd == nullptr) {
        std::fprintf(stderr, "serveml help: unknown command '%s'\n", argv[1]);
        PrintOverview(stderr);
        return kExitUsage;
      }
      PrintCommandUsage(stdout, *cmd);
      return kExitOk;
    }
    PrintOverview(stdout);
    return kExitOk;
  }
  const Command* cmd = FindCommand(name);
  if (cmd == nullptr) {
    std::fprintf(stderr, "serveml: unknown command '%s'; run 'serveml help'\n", argv[0]);
    return kExitUsage;
  }

  Context ctx;
  ctx.command = cmd;
  FlagSpec spec;
  spec.value_flags = {"url", "token"};
  spec.bool_flags = {"json"};
  spec.value_flags.insert(cmd->value_flags.begin(), cmd->value_flags.end());
  spec.bool_flags.insert(cmd->bool_flags.begin(), cmd->bool_flags.end());
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i] ? argv[i] : "");
  auto parsed = ParseArgs(args, spec);
  if (!parsed.ok()) return UsageError(ctx, parsed.status().message());
  if (parsed->help) {
    PrintCommandUsage(stdout, *cmd);
    return kExitOk;
  }

  ctx.config_path = ConfigPath(std::getenv("HOME"));
  if (!ctx.config_path.empty()) {
    auto saved = ReadConfigFile(ctx.config_path);
    if (saved.ok()) {
      ctx.saved = std::move(saved).value();
    } else {
      std::fprintf(stderr, "warning: ignoring config: %s\n", saved.status().message().c_str());
    }
  }
  ctx.conn = ResolveConnection(parsed->Get("url"), parsed->Get("token"), Env("SERVEML_URL"),
                               Env("SERVEML_TOKEN"), ctx.saved);
  ctx.json_output = parsed->switches.count("json") > 0;
  if (!EnsureCurlInitialized()) return Fail("cannot initialize libcurl");
  return cmd->run(ctx, *parsed);
}

}  // namespace

bool IsClientCommand(std::string_view cmd) {
  return cmd == "help" || cmd == "--help" || cmd == "-h" || FindCommand(cmd) != nullptr;
}

int RunClientCommand(int argc, char** argv) {
  try {
    int rc = RunImpl(argc, argv);
    std::fflush(stdout);
    return rc;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: internal error: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "error: internal error\n");
  }
  return kExitError;
}

}  // namespace serveml::cli
