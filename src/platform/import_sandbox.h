// ImportSandbox: imports and validates an untrusted model file in a child process.
//
// The server never parses an uploaded file itself. It starts its own binary in `validate`
// mode (app/validate_command.cc) with the file on stdin, and the child imports it (pickle,
// joblib, XGBoost, LightGBM -> ONNX), loads the ONNX on the engine and runs a probe input.
// The child writes the ONNX to descriptor 3 (a temp file the parent created) and a small
// JSON result to stdout; its stderr is kept (first 64 KiB) for the log.
//
// What confines the child (docs/operations.md, "Isolation of uploaded files"):
//   - inherits only descriptors 0-3 (posix_spawn with closefrom), an empty signal mask and
//     default signal actions, its own process group; dies with the server (PDEATHSIG);
//   - address space (RLIMIT_AS; under ASan, whose shadow memory defeats RLIMIT_AS, the
//     allocator's own malloc_limit_mb and hard_rss_limit_mb instead), CPU seconds
//     (RLIMIT_CPU), output file size (RLIMIT_FSIZE), 32 descriptors, no core dumps;
//   - a wall-clock timeout enforced by the parent (SIGKILL);
//   - an environment reduced to the engine's, importers' and sanitizers' variables;
//   - PR_SET_NO_NEW_PRIVS, a new network namespace where the kernel allows it (root or
//     user namespaces), Landlock where the kernel has it (read-only access beneath /usr,
//     /lib, /lib64, /etc, /proc and /sys; nothing else readable, nothing writable), and a
//     seccomp filter that refuses socket/connect/bind/listen/accept, execve/execveat,
//     ptrace, process_vm_* and kill with EPERM (x86-64, arm64).
//
// Thread safety: RunImportSandbox may be called from several threads at once.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace serveml::platform {

struct SandboxLimits {
  int64_t memory_mb = 2048;    // address space of the child (--validate-memory-mb)
  int64_t cpu_seconds = 120;   // CPU time of the child (--validate-cpu-seconds)
  int64_t wall_seconds = 300;  // wall clock, then SIGKILL (--validate-timeout-seconds)
  // Largest ONNX the child may write (RLIMIT_FSIZE), MiB (--validate-max-onnx-mb).
  int64_t max_onnx_mb = 4096;
  // The binary to run in `validate` mode; empty = this process's own (/proc/self/exe).
  std::string binary;
};

struct SandboxRequest {
  int artifact_fd = -1;       // read-only descriptor on the uploaded file (not closed here)
  std::string sha256;         // what the child must find when it hashes the file
  std::string framework;      // "onnx", "sklearn", "xgboost", "lightgbm"
  std::string onnx_out_path;  // where the converted ONNX goes (created; left for the caller)
};

struct SandboxResult {
  bool wrote_onnx = false;  // false for ONNX uploads: the upload itself is the ONNX
  std::string model_type;
  std::string metadata_json;  // LoadedModel::MetadataJson() as the child computed it
  std::vector<std::string> feature_names;
  int64_t child_micros = 0;  // wall time of the child, spawn to exit
};

// Runs the child and waits for it. A model the importers or the engine refuse comes back
// with the child's own Status (InvalidInput, Unsupported, ...). A child that exceeded a
// limit, crashed or was killed comes back as InvalidInput whose message names the limit,
// e.g. "the importer needed more than 2048 MiB of memory (--validate-memory-mb)". Internal
// when the child could not be started.
Result<SandboxResult> RunImportSandbox(const SandboxRequest& request, const SandboxLimits& limits);

// --- Protocol shared with the child (app/validate_command.cc) ---------------------------

// Exit status of a child that ran out of memory (std::bad_alloc) before it could answer.
inline constexpr int kSandboxExitOutOfMemory = 3;
// Descriptor the child writes the converted ONNX to.
inline constexpr int kSandboxOnnxFd = 3;

// Applies the child's own confinement (rlimits, no_new_privs, network namespace, seccomp)
// from inside the child, before it reads a byte of the file. Returns a description of what
// was applied ("rlimit-as seccomp netns ..."), for the result and the log.
std::string ConfineValidateChild(const SandboxLimits& limits, bool sanitized);

}  // namespace serveml::platform
