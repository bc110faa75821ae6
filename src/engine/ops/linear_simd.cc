#include "engine/ops/linear_simd.h"

#include <immintrin.h>

#include <cmath>

#include "engine/isa.h"
#include "engine/ops/gemm.h"
#include "engine/ops/simd_target.h"

namespace serveml::engine {
namespace {

bool HaveAvx512() { return UseIsa(Isa::kAvx512); }

SERVEML_SIMD_BEGIN("avx512f,avx2,fma")

// The zero-masked forms of a few intrinsics with an all-ones mask: the unmasked ones start
// from an undefined register, which GCC 12 reports as -Wmaybe-uninitialized.
constexpr __mmask16 kAll = 0xffff;

inline float HorizontalSum(__m512 a) {
  const __m512d d = _mm512_castps_pd(a);
  const __mmask8 all8 = 0xff;
  const __m256 s8 = _mm256_add_ps(_mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(all8, d, 0)),
                                  _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(all8, d, 1)));
  __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  s4 = _mm_add_ss(s4, _mm_movehdup_ps(s4));
  return _mm_cvtss_f32(s4);
}

// exp(x) for x <= 0 (the logistic's argument): Cody-Waite reduction by ln 2 and Cephes'
// degree-6 polynomial, about 1 ulp; results below exp(-87.3) are flushed to that bound.
inline __m512 ExpNonPositive512(__m512 x) {
  x = _mm512_maskz_max_ps(kAll, _mm512_set1_ps(-87.3365478515625f), x);  // NaN stays NaN
  const __m512 n =
      _mm512_maskz_roundscale_ps(kAll, _mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  const __m512 r2 = _mm512_mul_ps(r, r);
  const __m512 y = _mm512_add_ps(_mm512_fmadd_ps(p, r2, r), _mm512_set1_ps(1.0f));
  return _mm512_maskz_scalef_ps(kAll, y, n);
}

void LogisticAvx512(float* v, int64_t n) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m =
        n - i >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << (n - i)) - 1u);
    const __m512 x = _mm512_maskz_loadu_ps(m, v + i);
    const __m512 a = _mm512_abs_ps(x);
    const __m512 e = _mm512_div_ps(
        one, _mm512_add_ps(one, ExpNonPositive512(_mm512_sub_ps(_mm512_setzero_ps(), a))));
    const __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
    const __m512 y = _mm512_mask_sub_ps(e, neg, one, e);
    _mm512_mask_storeu_ps(v + i, m, y);
  }
}

void RowScoresAvx512(const float* x, int64_t n, int64_t f, const float* w, const float* bias,
                     int64_t targets, float* scores) {
  const int64_t full = f / 16 * 16;
  const __mmask16 tail = static_cast<__mmask16>((1u << (f - full)) - 1u);
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x + i * f;
    float* si = scores + i * targets;
    int64_t j = 0;
    for (; j + 4 <= targets; j += 4) {
      const float* w0 = w + j * f;
      const float* w1 = w0 + f;
      const float* w2 = w1 + f;
      const float* w3 = w2 + f;
      __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
      int64_t p = 0;
      for (; p < full; p += 16) {
        const __m512 xv = _mm512_loadu_ps(xi + p);
        a0 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(w0 + p), a0);
        a1 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(w1 + p), a1);
        a2 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(w2 + p), a2);
        a3 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(w3 + p), a3);
      }
      if (tail) {
        const __m512 xv = _mm512_maskz_loadu_ps(tail, xi + p);
        a0 = _mm512_fmadd_ps(xv, _mm512_maskz_loadu_ps(tail, w0 + p), a0);
        a1 = _mm512_fmadd_ps(xv, _mm512_maskz_loadu_ps(tail, w1 + p), a1);
        a2 = _mm512_fmadd_ps(xv, _mm512_maskz_loadu_ps(tail, w2 + p), a2);
        a3 = _mm512_fmadd_ps(xv, _mm512_maskz_loadu_ps(tail, w3 + p), a3);
      }
      si[j] = HorizontalSum(a0) + (bias ? bias[j] : 0.0f);
      si[j + 1] = HorizontalSum(a1) + (bias ? bias[j + 1] : 0.0f);
      si[j + 2] = HorizontalSum(a2) + (bias ? bias[j + 2] : 0.0f);
      si[j + 3] = HorizontalSum(a3) + (bias ? bias[j + 3] : 0.0f);
    }
    for (; j < targets; ++j) {
      const float* wj = w + j * f;
      __m512 a = _mm512_setzero_ps();
      int64_t p = 0;
      for (; p < full; p += 16) {
        a = _mm512_fmadd_ps(_mm512_loadu_ps(xi + p), _mm512_loadu_ps(wj + p), a);
      }
      if (tail) {
        a = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, xi + p),
                            _mm512_maskz_loadu_ps(tail, wj + p), a);
      }
      si[j] = HorizontalSum(a) + (bias ? bias[j] : 0.0f);
    }
  }
}

SERVEML_SIMD_END

SERVEML_SIMD_BEGIN("avx2,fma")

inline float HorizontalSum256(__m256 a) {
  __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  s4 = _mm_add_ss(s4, _mm_movehdup_ps(s4));
  return _mm_cvtss_f32(s4);
}

// Lanes [0, count) all ones, the rest zero: the mask of _mm256_maskload_ps for a tail.
inline __m256i TailMask256(int64_t count) {
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(count)), lanes);
}

// ExpNonPositive512 on 8 lanes: the same reduction and polynomial; 2^n is built from the
// exponent bits (n >= -126 after the clamp, so it is a normal float) and multiplied in.
inline __m256 ExpNonPositive256(__m256 x) {
  x = _mm256_max_ps(_mm256_set1_ps(-87.3365478515625f), x);  // NaN stays NaN (2nd operand)
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  const __m256 r2 = _mm256_mul_ps(r, r);
  const __m256 y = _mm256_add_ps(_mm256_fmadd_ps(p, r2, r), _mm256_set1_ps(1.0f));
  const __m256i bits =
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(bits));
}

void LogisticAvx2(float* v, int64_t n) {
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 sign = _mm256_set1_ps(-0.0f);
  for (int64_t i = 0; i < n; i += 8) {
    const __m256i m = TailMask256(n - i);
    const __m256 x = _mm256_maskload_ps(v + i, m);
    const __m256 a = _mm256_andnot_ps(sign, x);
    const __m256 e =
        _mm256_div_ps(one, _mm256_add_ps(one, ExpNonPositive256(_mm256_xor_ps(a, sign))));
    const __m256 neg = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
    const __m256 y = _mm256_blendv_ps(e, _mm256_sub_ps(one, e), neg);
    _mm256_maskstore_ps(v + i, m, y);
  }
}

void RowScoresAvx2(const float* x, int64_t n, int64_t f, const float* w, const float* bias,
                   int64_t targets, float* scores) {
  const int64_t full = f / 8 * 8;
  const bool has_tail = full < f;
  const __m256i tail = TailMask256(f - full);
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x + i * f;
    float* si = scores + i * targets;
    int64_t j = 0;
    for (; j + 4 <= targets; j += 4) {
      const float* w0 = w + j * f;
      const float* w1 = w0 + f;
      const float* w2 = w1 + f;
      const float* w3 = w2 + f;
      __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
      int64_t p = 0;
      for (; p < full; p += 8) {
        const __m256 xv = _mm256_loadu_ps(xi + p);
        a0 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(w0 + p), a0);
        a1 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(w1 + p), a1);
        a2 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(w2 + p), a2);
        a3 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(w3 + p), a3);
      }
      if (has_tail) {
        const __m256 xv = _mm256_maskload_ps(xi + p, tail);
        a0 = _mm256_fmadd_ps(xv, _mm256_maskload_ps(w0 + p, tail), a0);
        a1 = _mm256_fmadd_ps(xv, _mm256_maskload_ps(w1 + p, tail), a1);
        a2 = _mm256_fmadd_ps(xv, _mm256_maskload_ps(w2 + p, tail), a2);
        a3 = _mm256_fmadd_ps(xv, _mm256_maskload_ps(w3 + p, tail), a3);
      }
      si[j] = HorizontalSum256(a0) + (bias ? bias[j] : 0.0f);
      si[j + 1] = HorizontalSum256(a1) + (bias ? bias[j + 1] : 0.0f);
      si[j + 2] = HorizontalSum256(a2) + (bias ? bias[j + 2] : 0.0f);
      si[j + 3] = HorizontalSum256(a3) + (bias ? bias[j + 3] : 0.0f);
    }
    for (; j < targets; ++j) {
      const float* wj = w + j * f;
      __m256 a = _mm256_setzero_ps();
      int64_t p = 0;
      for (; p < full; p += 8) {
        a = _mm256_fmadd_ps(_mm256_loadu_ps(xi + p), _mm256_loadu_ps(wj + p), a);
      }
      if (has_tail) {
        a = _mm256_fmadd_ps(_mm256_maskload_ps(xi + p, tail), _mm256_maskload_ps(wj + p, tail), a);
      }
      si[j] = HorizontalSum256(a) + (bias ? bias[j] : 0.0f);
    }
  }
}

SERVEML_SIMD_END

}  // namespace

void LinearRowScores(const float* x, int64_t n, int64_t f, const float* w, const float* bias,
                     int64_t targets, float* scores) {
  if (n == 0 || targets == 0) return;
  if (HaveAvx512()) {
    RowScoresAvx512(x, n, f, w, bias, targets, scores);
    return;
  }
  if (UseIsa(Isa::kAvx2)) {
    RowScoresAvx2(x, n, f, w, bias, targets, scores);
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < targets; ++j) scores[i * targets + j] = bias ? bias[j] : 0.0f;
  }
  if (f == 0) return;
  Sgemm(false, true, n, targets, f, 1.0f, x, f, w, f, 1.0f, scores, targets);
}

void LogisticInPlace(float* v, int64_t n) {
  if (HaveAvx512()) {
    LogisticAvx512(v, n);
    return;
  }
  if (UseIsa(Isa::kAvx2)) {
    LogisticAvx2(v, n);
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
    const float e = 1.0f / (1.0f + std::exp(-std::abs(v[i])));
    v[i] = v[i] < 0 ? 1.0f - e : e;
  }
}

}  // namespace serveml::engine
