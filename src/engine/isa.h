// Which x86 instruction sets the engine's kernels use. Every kernel with SIMD variants asks
// ActiveIsa() (never the CPU directly), so one setting moves the whole engine, oneDNN included,
// to a lower level: SERVEML_ENGINE_ISA=portable|avx2|avx512|avx512vnni. Used to test and
// benchmark the AVX2 and portable paths on a machine that has more, and as an escape hatch.
#pragma once

#include <string>
#include <string_view>

namespace serveml::engine {

// Levels in increasing order; each includes the ones before it.
//   kPortable    plain C++ (the compiler's baseline, SSE2 on x86-64)
//   kAvx2        AVX2 + FMA (e.g. AMD Zen 2/3, Intel Haswell and later)
//   kAvx512      AVX-512 F, BW, VL and DQ (e.g. AMD Zen 4, Intel Skylake-SP)
//   kAvx512Vnni  the above plus AVX-512 VNNI (vpdpbusd)
enum class Isa : int { kPortable = 0, kAvx2 = 1, kAvx512 = 2, kAvx512Vnni = 3 };

// The highest level this CPU (and OS: the AVX-512 state must be enabled) supports.
Isa CpuIsa();

// The level the kernels use: CpuIsa(), lowered to SERVEML_ENGINE_ISA when that names a lower
// level (never raised above the CPU). Read once, at the first call from any thread; when the
// override lowers the level and the build uses oneDNN, oneDNN is capped at the same level
// (dnnl_set_max_cpu_isa), so call this before the first model is loaded (the commands do).
Isa ActiveIsa();

// True when kernels for `level` may run.
inline bool UseIsa(Isa level) { return ActiveIsa() >= level; }

// "portable", "avx2", "avx512", "avx512vnni".
std::string_view IsaName(Isa isa);

// For the start-up log: "avx2 (cpu: avx512vnni; SERVEML_ENGINE_ISA=avx2)", or with a note
// when the variable held something not understood (it is then ignored).
std::string IsaSummary();

}  // namespace serveml::engine
