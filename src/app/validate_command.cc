// `serveml validate`: the child process the server starts to import and validate one
// untrusted model file (see platform/import_sandbox.h for the protocol and confinement).
// Not meant to be run by hand: the file comes on stdin, the ONNX goes to descriptor 3 and
// one JSON object to stdout.
#include "app/validate_command.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <string_view>

#include "core/crypto.h"
#include "core/json_writer.h"
#include "platform/import_sandbox.h"
#include "runtime/loaded_model.h"

namespace serveml::app {

namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

bool WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t w = ::write(fd, data.data(), data.size());
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(w));
  }
  return true;
}

[[noreturn]] void OutOfMemory() {
  // No allocation from here on: the heap is what ran out.
  static const char kMsg[] = "validate: out of memory\n";
  (void)!::write(2, kMsg, sizeof(kMsg) - 1);
  ::_exit(platform::kSandboxExitOutOfMemory);
}

int Answer(const Status& st) {
  std::string out;
  JsonWriter w(out);
  w.BeginObject().Key("ok").Bool(false).Key("code").String(CodeName(st.code()));
  w.Key("message").String(st.message()).EndObject();
  return WriteAll(1, out) ? 0 : 1;
}

int Validate(const std::string& framework, const std::string& sha256) {
  // The whole file, from stdin (a regular file, so its size is known).
  std::string bytes;
  char buf[1 << 16];
  Sha256 hash;
  for (;;) {
    ssize_t r = ::read(0, buf, sizeof(buf));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Answer(Internal("cannot read the model file"));
    if (r == 0) break;
    hash.Update(buf, static_cast<size_t>(r));
    bytes.append(buf, static_cast<size_t>(r));
  }
  if (!sha256.empty() && hash.FinishHex() != sha256) {
    return Answer(Internal("the stored model file is corrupt (content hash mismatch)"));
  }
  auto model = runtime::LoadedModel::Load(bytes, framework);
  if (!model.ok()) return Answer(model.status());
  const runtime::LoadedModel& m = **model;
  bool wrote = false;
  if (framework != "onnx") {
    if (!WriteAll(platform::kSandboxOnnxFd, m.converted_onnx())) {
      return Answer(Internal("cannot write the converted model: " + std::string(strerror(errno))));
    }
    wrote = true;
  }
  std::string out;
  JsonWriter w(out);
  w.BeginObject().Key("ok").Bool(true).Key("wrote_onnx").Bool(wrote);
  w.Key("model_type").String(m.model_type());
  w.Key("metadata_json").String(m.MetadataJson());
  w.Key("feature_names").BeginArray();
  for (const auto& f : m.signature().feature_names) w.String(f);
  w.EndArray().EndObject();
  return WriteAll(1, out) ? 0 : 1;
}

// `--probe-confinement PATH`: applies the confinement, then tries what an attacker who ran
// code in the child would try, and prints one line per attempt ("open: denied"). Used by the
// tests to check the confinement itself; reads no model.
int ProbeConfinement(const platform::SandboxLimits& limits, const std::string& path) {
  const std::string applied = platform::ConfineValidateChild(limits, kSanitized);
  std::string out = "applied: " + applied + "\n";
  auto line = [&](const char* what, bool denied) {
    out += std::string(what) + (denied ? ": denied\n" : ": ALLOWED\n");
  };
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  line("open", fd < 0);
  if (fd >= 0) ::close(fd);
  int w = ::open("/tmp/serveml-confinement-probe", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  line("create", w < 0);
  if (w >= 0) ::close(w);
  int sock = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  line("socket", sock < 0);
  if (sock >= 0) ::close(sock);
  line("kill", ::kill(::getppid(), 0) != 0);
  (void)WriteAll(1, out);
  char* args[] = {const_cast<char*>("/bin/true"), nullptr};
  ::execve("/bin/true", args, environ);
  (void)WriteAll(1, "exec: denied\n");
  // No exit-time work (a leak checker cannot stop the world under the seccomp filter).
  ::_exit(0);
}

}  // namespace

int ValidateCommand(int argc, char** argv) {
  std::string framework, sha256, probe;
  platform::SandboxLimits limits;
  long parent = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string_view k = argv[i];
    const char* v = argv[i + 1];
    if (k == "--framework")
      framework = v;
    else if (k == "--sha256")
      sha256 = v;
    else if (k == "--memory-mb")
      limits.memory_mb = std::atoll(v);
    else if (k == "--cpu-seconds")
      limits.cpu_seconds = std::atoll(v);
    else if (k == "--max-onnx-mb")
      limits.max_onnx_mb = std::atoll(v);
    else if (k == "--parent-pid")
      parent = std::atol(v);
    else if (k == "--probe-confinement")
      probe = v;
  }
  if (!probe.empty()) return ProbeConfinement(limits, probe);
  if (framework.empty() || limits.memory_mb <= 0 || limits.cpu_seconds <= 0) {
    static const char kUsage[] =
        "serveml validate: internal command of the server (model file on stdin)\n";
    (void)!::write(2, kUsage, sizeof(kUsage) - 1);
    return 2;
  }
  // Die with the server; and if it is already gone, do nothing.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (parent != 0 && ::getppid() != parent) return 1;
  // A failed allocation ends the child at once, whatever would have caught std::bad_alloc
  // (the engine turns it into an ordinary error): the parent reports the memory limit.
  std::set_new_handler([] { OutOfMemory(); });
  platform::ConfineValidateChild(limits, kSanitized);
  try {
    return Validate(framework, sha256);
  } catch (const std::bad_alloc&) {
    OutOfMemory();
  } catch (const std::exception& e) {
    return Answer(Internal(std::string("the importer failed: ") + e.what()));
  }
}

}  // namespace serveml::app
