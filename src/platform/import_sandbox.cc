#include "platform/import_sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/landlock.h>
#ifndef LANDLOCK_ACCESS_FS_REFER
#define LANDLOCK_ACCESS_FS_REFER (1ULL << 13)  // Landlock ABI 2 (Linux 5.19)
#endif
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)  // Landlock ABI 3 (Linux 6.2)
#endif
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/clock.h"
#include "core/log.h"

extern char** environ;

namespace serveml::platform {

namespace {

constexpr size_t kMaxResultBytes = 64u << 20;  // the child's JSON result
constexpr size_t kMaxStderrBytes = 64u << 10;  // kept for the log

// A descriptor that closes itself.
struct OwnedFd {
  int fd = -1;
  OwnedFd() = default;
  explicit OwnedFd(int f) : fd(f) {}
  OwnedFd(const OwnedFd&) = delete;
  OwnedFd& operator=(const OwnedFd&) = delete;
  ~OwnedFd() { Reset(); }
  void Reset() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
};

// Moves `fd` to a number >= 10 (close-on-exec), so the dup2 into 0..3 in the child can never
// collide with one of the others, even when the server runs with stdin closed.
int HighFd(int fd) {
  if (fd < 0) return fd;
  int high = ::fcntl(fd, F_DUPFD_CLOEXEC, 10);
  ::close(fd);
  return high;
}

std::string MiB(int64_t mb) { return std::to_string(mb) + " MiB"; }

// Case-insensitive (ASCII) substring test.
bool Contains(const std::string& s, std::string_view needle) {
  auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
  auto it = std::search(s.begin(), s.end(), needle.begin(), needle.end(),
                        [&](char a, char b) { return lower(a) == lower(b); });
  return it != s.end();
}

// The child's environment: only the variables that tune the engine, the importers and the
// sanitizers (never the server's secrets or credentials), thread pools pinned to one
// thread and, under a sanitizer, the allocator limits that stand in for RLIMIT_AS.
std::vector<std::string> ChildEnvironment(const SandboxLimits& limits) {
  static constexpr std::string_view kKept[] = {
      "SERVEML_ENGINE_", "SERVEML_IMPORT_",  "OPENBLAS_", "ONEDNN_", "DNNL_", "UBSAN_OPTIONS=",
      "LSAN_OPTIONS=",   "LD_LIBRARY_PATH=", "LANG=",     "LC_ALL=", "TZ="};
  std::vector<std::string> env;
  std::string asan;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view kv(*e);
    auto starts = [&](std::string_view k) { return kv.substr(0, k.size()) == k; };
    if (starts("OPENBLAS_NUM_THREADS=")) continue;
    if (starts("ASAN_OPTIONS=")) {
      asan = std::string(kv.substr(13));
      continue;
    }
    for (std::string_view k : kKept) {
      if (starts(k)) {
        env.emplace_back(kv);
        break;
      }
    }
  }
  env.emplace_back("OMP_NUM_THREADS=1");
  env.emplace_back("OPENBLAS_NUM_THREADS=1");
  env.emplace_back("MKL_NUM_THREADS=1");
  const std::string mb = std::to_string(limits.memory_mb);
  if (!asan.empty()) asan += ':';
  asan += "detect_leaks=0:allocator_may_return_null=1:malloc_limit_mb=" + mb +
          ":hard_rss_limit_mb=" + mb;
  env.push_back("ASAN_OPTIONS=" + asan);
  return env;
}

std::string SignalName(int sig) {
  const char* s = ::sigabbrev_np(sig);
  return s ? std::string("SIG") + s : "signal " + std::to_string(sig);
}

}  // namespace

Result<SandboxResult> RunImportSandbox(const SandboxRequest& request, const SandboxLimits& limits) {
  const int64_t t0 = MonotonicNanos();
  int result_pipe[2], err_pipe[2];
  if (::pipe2(result_pipe, O_CLOEXEC) != 0)
    return Internal("pipe: " + std::string(strerror(errno)));
  OwnedFd res_r(HighFd(result_pipe[0])), res_w(HighFd(result_pipe[1]));
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) return Internal("pipe: " + std::string(strerror(errno)));
  OwnedFd err_r(HighFd(err_pipe[0])), err_w(HighFd(err_pipe[1]));
  OwnedFd out(HighFd(::open(request.onnx_out_path.c_str(),
                            O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600)));
  OwnedFd in(HighFd(::fcntl(request.artifact_fd, F_DUPFD_CLOEXEC, 10)));
  if (res_r.fd < 0 || res_w.fd < 0 || err_r.fd < 0 || err_w.fd < 0 || out.fd < 0 || in.fd < 0) {
    return Internal("could not prepare the importer's descriptors: " +
                    std::string(strerror(errno)));
  }

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in.fd, 0);
  posix_spawn_file_actions_adddup2(&fa, res_w.fd, 1);
  posix_spawn_file_actions_adddup2(&fa, err_w.fd, 2);
  posix_spawn_file_actions_adddup2(&fa, out.fd, kSandboxOnnxFd);
  posix_spawn_file_actions_addclosefrom_np(&fa, kSandboxOnnxFd + 1);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigfillset(&defaults);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);

  const std::string binary = limits.binary.empty() ? "/proc/self/exe" : limits.binary;
  std::vector<std::string> args = {"serveml",       "validate",
                                   "--framework",   request.framework,
                                   "--sha256",      request.sha256,
                                   "--memory-mb",   std::to_string(limits.memory_mb),
                                   "--cpu-seconds", std::to_string(limits.cpu_seconds),
                                   "--max-onnx-mb", std::to_string(limits.max_onnx_mb),
                                   "--parent-pid",  std::to_string(::getpid())};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env = ChildEnvironment(limits);
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);

  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, binary.c_str(), &fa, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0)
    return Internal("could not start the importer process: " + std::string(strerror(rc)));
  res_w.Reset();
  err_w.Reset();
  out.Reset();
  in.Reset();

  // Read the result and stderr until both close or the wall clock runs out.
  std::string result, err;
  bool result_too_large = false, timed_out = false;
  const int64_t deadline = t0 + limits.wall_seconds * 1'000'000'000;
  char buf[64 << 10];
  while (res_r.fd >= 0 || err_r.fd >= 0) {
    int64_t left_ms = (deadline - MonotonicNanos()) / 1'000'000;
    if (left_ms <= 0) {
      timed_out = true;
      break;
    }
    pollfd pfds[2];
    nfds_t n = 0;
    if (res_r.fd >= 0) pfds[n++] = {res_r.fd, POLLIN, 0};
    if (err_r.fd >= 0) pfds[n++] = {err_r.fd, POLLIN, 0};
    int pr = ::poll(pfds, n, static_cast<int>(std::min<int64_t>(left_ms, 1000)));
    if (pr < 0 && errno != EINTR) break;
    for (nfds_t i = 0; i < n; ++i) {
      if (pfds[i].revents == 0) continue;
      OwnedFd& f = pfds[i].fd == res_r.fd ? res_r : err_r;
      ssize_t got = ::read(f.fd, buf, sizeof(buf));
      if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (got <= 0) {
        f.Reset();
        continue;
      }
      std::string& dst = &f == &res_r ? result : err;
      size_t cap = &f == &res_r ? kMaxResultBytes : kMaxStderrBytes;
      if (dst.size() + static_cast<size_t>(got) <= cap) {
        dst.append(buf, static_cast<size_t>(got));
      } else if (&f == &res_r) {
        result_too_large = true;
        timed_out = false;
        break;
      }
    }
    if (result_too_large) break;
  }
  int status = 0;
  rusage ru{};
  for (;;) {
    if (timed_out || result_too_large) ::kill(pid, SIGKILL);
    pid_t w = ::wait4(pid, &status, timed_out || result_too_large ? 0 : WNOHANG, &ru);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) {
      status = 0;
      break;
    }
    if (w == 0) {
      if (MonotonicNanos() >= deadline) {
        timed_out = true;
        continue;
      }
      ::usleep(2000);
    }
  }
  SandboxResult out_result;
  out_result.child_micros = (MonotonicNanos() - t0) / 1000;
  const double cpu = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                     static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  auto log_child = [&](const char* what) {
    LOG_WARN(what)
        .Str("framework", request.framework)
        .Str("sha256", request.sha256)
        .Num("cpu_seconds", cpu)
        .Int("status", status)
        .Str("stderr", err.substr(0, 2000));
  };

  const std::string memory_msg = "the importer needed more than " + MiB(limits.memory_mb) +
                                 " of memory (--validate-memory-mb)";
  if (timed_out) {
    log_child("importer timed out");
    return InvalidInput("the importer took longer than " + std::to_string(limits.wall_seconds) +
                        " s (--validate-timeout-seconds)");
  }
  if (result_too_large) {
    log_child("importer result too large");
    return InvalidInput("the importer's answer is larger than " +
                        std::to_string(kMaxResultBytes >> 20) + " MiB");
  }
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    log_child("importer killed by a signal");
    if (sig == SIGXCPU || (sig == SIGKILL && cpu >= static_cast<double>(limits.cpu_seconds))) {
      return InvalidInput("the importer used more than " + std::to_string(limits.cpu_seconds) +
                          " s of CPU time (--validate-cpu-seconds)");
    }
    if (sig == SIGXFSZ) {
      return InvalidInput("the converted model is larger than " + MiB(limits.max_onnx_mb) +
                          " (--validate-max-onnx-mb)");
    }
    return InvalidInput("the importer crashed (" + SignalName(sig) + ")");
  }
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (code == kSandboxExitOutOfMemory) {
    log_child("importer out of memory");
    return InvalidInput(memory_msg);
  }
  if (code != 0) {
    log_child("importer failed");
    // The sanitizer allocator reports its own limits and exits non-zero.
    if (Contains(err, "out-of-memory") || Contains(err, "out of memory") ||
        Contains(err, "malloc limit") || Contains(err, "malloc-limit") ||
        Contains(err, "rss-limit") || Contains(err, "rss limit") ||
        Contains(err, "allocation-size-too-big") ||
        Contains(err, "exceeds maximum supported size")) {
      return InvalidInput(memory_msg);
    }
    return InvalidInput("the importer failed (exit status " + std::to_string(code) + ")");
  }
  auto j = nlohmann::json::parse(result, nullptr, false);
  if (!j.is_object() || !j.contains("ok") || !j["ok"].is_boolean()) {
    log_child("importer answered garbage");
    return InvalidInput("the importer ended without an answer");
  }
  try {
    if (!j["ok"].get<bool>()) {
      std::string msg = j.value("message", std::string("the model could not be imported"));
      std::string c = j.value("code", std::string("INVALID_INPUT"));
      if (c == "UNSUPPORTED") return Unsupported(msg);
      if (c == "VALIDATION_ERROR") return ValidationError(msg);
      if (c == "DEPLOYMENT_FAILED") return Status(Code::kDeploymentFailed, msg);
      return InvalidInput(msg);
    }
    out_result.wrote_onnx = j.value("wrote_onnx", false);
    out_result.model_type = j.value("model_type", std::string());
    out_result.metadata_json = j.value("metadata_json", std::string());
    if (auto it = j.find("feature_names"); it != j.end() && it->is_array()) {
      for (const auto& f : *it) {
        if (f.is_string()) out_result.feature_names.push_back(f.get<std::string>());
      }
    }
  } catch (const std::exception&) {
    return InvalidInput("the importer's answer is malformed");
  }
  return out_result;
}

// --- The child's own confinement ---------------------------------------------------------

namespace {

#if defined(__x86_64__)
#define SERVEML_SECCOMP_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SERVEML_SECCOMP_ARCH AUDIT_ARCH_AARCH64
#endif

#ifdef SERVEML_SECCOMP_ARCH
// Refuses (EPERM) the system calls an importer never needs and an attacker would want.
bool InstallSeccompFilter() {
  static const int kDenied[] = {
      __NR_socket,           __NR_socketpair,        __NR_connect, __NR_bind,     __NR_listen,
      __NR_accept,           __NR_accept4,           __NR_execve,  __NR_execveat, __NR_ptrace,
      __NR_process_vm_readv, __NR_process_vm_writev, __NR_kill,
  };
  constexpr size_t n = sizeof(kDenied) / sizeof(kDenied[0]);
  std::vector<sock_filter> f;
  f.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)));
  f.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SERVEML_SECCOMP_ARCH, 1, 0));
  f.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS));
  f.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)));
#if defined(__x86_64__)
  // x32 system call numbers (bit 30) would bypass the list below.
  f.push_back(BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, static_cast<uint8_t>(n + 1), 0));
#endif
  for (size_t i = 0; i < n; ++i) {
    // Jump to the EPERM return at the end (n - i jumps ahead, past the ALLOW).
    f.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(kDenied[i]),
                         static_cast<uint8_t>(n - i), 0));
  }
  f.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
  f.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)));
  sock_fprog prog{static_cast<unsigned short>(f.size()), f.data()};
  return ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0;
}
#else
bool InstallSeccompFilter() { return false; }
#endif

// Landlock (Linux 5.13+): from here on the child may only read (and map executable) files
// beneath the system directories; the data directory, the home directory and /tmp are
// out of reach, and nothing can be created, written or removed anywhere. Descriptors
// already open (the model file, the ONNX output) keep working.
bool InstallLandlock() {
  const long abi =
      ::syscall(SYS_landlock_create_ruleset, nullptr, 0, LANDLOCK_CREATE_RULESET_VERSION);
  if (abi < 1) return false;
  uint64_t handled =
      LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_READ_FILE |
      LANDLOCK_ACCESS_FS_READ_DIR | LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE |
      LANDLOCK_ACCESS_FS_MAKE_CHAR | LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG |
      LANDLOCK_ACCESS_FS_MAKE_SOCK | LANDLOCK_ACCESS_FS_MAKE_FIFO | LANDLOCK_ACCESS_FS_MAKE_BLOCK |
      LANDLOCK_ACCESS_FS_MAKE_SYM;
  if (abi >= 2) handled |= LANDLOCK_ACCESS_FS_REFER;
  if (abi >= 3) handled |= LANDLOCK_ACCESS_FS_TRUNCATE;
  landlock_ruleset_attr attr{};
  attr.handled_access_fs = handled;
  const int rs = static_cast<int>(::syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr), 0));
  if (rs < 0) return false;
  for (const char* dir : {"/usr", "/lib", "/lib64", "/etc", "/proc", "/sys"}) {
    const int fd = ::open(dir, O_PATH | O_CLOEXEC);
    if (fd < 0) continue;
    landlock_path_beneath_attr rule{};
    rule.allowed_access =
        LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR | LANDLOCK_ACCESS_FS_EXECUTE;
    rule.parent_fd = fd;
    (void)::syscall(SYS_landlock_add_rule, rs, LANDLOCK_RULE_PATH_BENEATH, &rule, 0);
    ::close(fd);
  }
  const bool ok = ::syscall(SYS_landlock_restrict_self, rs, 0) == 0;
  ::close(rs);
  return ok;
}

bool SetLimit(int resource, rlim_t soft, rlim_t hard) {
  rlimit r{soft, hard};
  return ::setrlimit(resource, &r) == 0;
}

}  // namespace

std::string ConfineValidateChild(const SandboxLimits& limits, bool sanitized) {
  std::string applied;
  auto note = [&](bool ok, const char* what) {
    if (!ok) return;
    if (!applied.empty()) applied += ' ';
    applied += what;
  };
  const rlim_t mem = static_cast<rlim_t>(limits.memory_mb) << 20;
  if (!sanitized) note(SetLimit(RLIMIT_AS, mem, mem), "rlimit-as");
  const rlim_t cpu = static_cast<rlim_t>(limits.cpu_seconds);
  note(SetLimit(RLIMIT_CPU, cpu, cpu + 2), "rlimit-cpu");
  const rlim_t fsize = static_cast<rlim_t>(limits.max_onnx_mb) << 20;
  note(SetLimit(RLIMIT_FSIZE, fsize, fsize), "rlimit-fsize");
  note(SetLimit(RLIMIT_NOFILE, 32, 32), "rlimit-nofile");
  note(SetLimit(RLIMIT_CORE, 0, 0), "no-core");
  note(::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0, "no-new-privs");
  note(::unshare(CLONE_NEWNET) == 0, "netns");
  note(InstallLandlock(), "landlock");
  note(InstallSeccompFilter(), "seccomp");
  return applied;
}

}  // namespace serveml::platform
