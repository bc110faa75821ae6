#include "engine/ops/relu_simd.h"

#include <immintrin.h>

#include "engine/isa.h"
#include "engine/kernel.h"
#include "engine/ops/simd_target.h"

namespace serveml::engine {
namespace {

SERVEML_SIMD_BEGIN("avx512f")
void ReluAvx512(float* p, int64_t n) {
  const __m512 zero = _mm512_setzero_ps();
  // The all-ones zero-masking form is plain vmaxps without the undefined pass-through
  // operand GCC warns about.
  const __mmask16 kAll = static_cast<__mmask16>(0xFFFF);
  int64_t i = 0;
  // vmaxps returns its second operand when either is NaN: max(0, v) keeps NaN.
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(p + i, _mm512_maskz_max_ps(kAll, zero, _mm512_loadu_ps(p + i)));
  if (i < n) {
    const __mmask16 tail = static_cast<__mmask16>((1u << (n - i)) - 1u);
    _mm512_mask_storeu_ps(p + i, tail,
                          _mm512_maskz_max_ps(kAll, zero, _mm512_maskz_loadu_ps(tail, p + i)));
  }
}
SERVEML_SIMD_END

bool HasAvx512() { return UseIsa(Isa::kAvx512); }

}  // namespace

void ReluInPlace(float* p, int64_t n) {
  if (HasAvx512()) {
    ReluAvx512(p, n);
  } else {
    ApplyRelu(p, n);
  }
}

}  // namespace serveml::engine
