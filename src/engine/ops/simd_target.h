// Regions of code compiled for an x86 extension set beyond the build's baseline, for kernels
// picked at run time by CPU detection (__builtin_cpu_supports). Works with GCC and clang:
//
//   SERVEML_SIMD_BEGIN("avx512f,avx2,fma")
//   ... functions using AVX-512 intrinsics ...
//   SERVEML_SIMD_END
//
// Nothing in a region may run before the dispatcher has checked the CPU.
#pragma once

#define SERVEML_PRAGMA(x) _Pragma(#x)
#if defined(__clang__)
#define SERVEML_SIMD_BEGIN(features) \
  SERVEML_PRAGMA(clang attribute push(__attribute__((target(features))), apply_to = function))
#define SERVEML_SIMD_END SERVEML_PRAGMA(clang attribute pop)
#else
#define SERVEML_SIMD_BEGIN(features) \
  SERVEML_PRAGMA(GCC push_options) SERVEML_PRAGMA(GCC target(features))
#define SERVEML_SIMD_END SERVEML_PRAGMA(GCC pop_options)
#endif
