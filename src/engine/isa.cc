#include "engine/isa.h"

#include <cstdlib>
#include <mutex>

#ifdef SERVEML_HAVE_DNNL
#include <dnnl.h>
#endif

namespace serveml::engine {
namespace {

struct IsaState {
  Isa cpu = Isa::kPortable;
  Isa active = Isa::kPortable;
  std::string requested;  // SERVEML_ENGINE_ISA as given ("" when unset)
  bool understood = true;
};

bool ParseIsa(std::string_view s, Isa* out) {
  if (s == "portable" || s == "none" || s == "generic")
    *out = Isa::kPortable;
  else if (s == "avx2")
    *out = Isa::kAvx2;
  else if (s == "avx512")
    *out = Isa::kAvx512;
  else if (s == "avx512vnni")
    *out = Isa::kAvx512Vnni;
  else
    return false;
  return true;
}

Isa DetectCpu() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  // __builtin_cpu_supports also checks that the OS saves the AVX / AVX-512 register state.
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") &&
                      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                      __builtin_cpu_supports("avx512dq");
  if (avx512 && __builtin_cpu_supports("avx512vnni")) return Isa::kAvx512Vnni;
  if (avx512) return Isa::kAvx512;
  if (avx2) return Isa::kAvx2;
#endif
  return Isa::kPortable;
}

const IsaState& State() {
  static const IsaState state = [] {
    IsaState s;
    s.cpu = DetectCpu();
    s.active = s.cpu;
    if (const char* v = std::getenv("SERVEML_ENGINE_ISA"); v && *v) {
      s.requested = v;
      Isa want;
      s.understood = ParseIsa(s.requested, &want);
      if (s.understood && want < s.cpu) s.active = want;
    }
#ifdef SERVEML_HAVE_DNNL
    if (s.active < s.cpu) {
      dnnl_cpu_isa_t cap = dnnl_cpu_isa_sse41;
      if (s.active == Isa::kAvx2) cap = dnnl_cpu_isa_avx2;
      if (s.active == Isa::kAvx512) cap = dnnl_cpu_isa_avx512_core;
      if (s.active == Isa::kAvx512Vnni) cap = dnnl_cpu_isa_avx512_core_vnni;
      dnnl_set_max_cpu_isa(cap);
    }
#endif
    return s;
  }();
  return state;
}

}  // namespace

Isa CpuIsa() { return State().cpu; }
Isa ActiveIsa() { return State().active; }

std::string_view IsaName(Isa isa) {
  switch (isa) {
    case Isa::kPortable:
      return "portable";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kAvx512:
      return "avx512";
    case Isa::kAvx512Vnni:
      return "avx512vnni";
  }
  return "portable";
}

std::string IsaSummary() {
  const IsaState& s = State();
  std::string out(IsaName(s.active));
  out += " (cpu: ";
  out += IsaName(s.cpu);
  if (!s.requested.empty()) {
    out += "; SERVEML_ENGINE_ISA=" + s.requested;
    if (!s.understood) out += " not understood (portable|avx2|avx512|avx512vnni), ignored";
  }
  out += ")";
  return out;
}

}  // namespace serveml::engine
