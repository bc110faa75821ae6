// Integer matrix products: MatMulInteger (10), ConvInteger (10), QLinearMatMul (10, 21) and
// QLinearConv (10), for uint8/int8 operands with per-tensor, per-row (left operand, conv
// weights per output channel) or per-column (right operand) zero points.
//
// All four run an integer GEMM accumulating exactly in int32 (wrapping modulo 2^32 when the
// exact result does not fit), in one of two schemes:
// - On AVX-512 VNNI CPUs (UseVnniU8), all four: vpdpbusd on the raw 8-bit values, int8 A mapped
//   to uint8 (+128) and uint8 B to int8 (-128) with their zero points shifted alike, and the
//   zero points applied afterwards from A's row sums and B's column sums (see "The AVX-512 VNNI
//   path"). B is packed in panels of 32 columns with k in quads, A in tiles of 8 rows, for an
//   8x32 register tile (16 zmm accumulators).
// - Without VNNI (UseVnniU8 false): operands have their zero points subtracted once into int16
//   copies (values in [-255, 255]); the right operand is packed into panels of 16 columns with k
//   in pairs, the left into rows padded to an even k, so one AVX2 vpmaddwd multiplies two k steps
//   of 8 columns (4x16 register tile; a portable loop of the same shape elsewhere).
// Constant right operands (MatMul weights) and constant conv weights are packed at load, for the
// scheme the CPU runs. Convolutions run one GEMM per image and group (spatial.h geometry),
// Y[mg, pixels] = W[mg, kdim] x col[kdim, pixels]: the weights are the left operand (per output
// channel zero points = per row), the im2col matrix the right one. The VNNI scheme takes im2col
// of the raw input with padded taps set to the input zero point, so they contribute
// (x - zx) = 0, and its column sums (the zero point terms) run over that padded matrix; it
// builds, packs and multiplies the matrix by chunks of output pixels (about 512 KiB of it) that
// stay in cache. The int16 scheme takes im2col of the zero-point-subtracted input (padding 0).
// QLinear* requantize as onnxruntime does: float(acc) * (a_scale * b_scale / y_scale) in
// float32, rounded half to even, plus the output zero point, saturated (16 values at a time with
// AVX-512, the same float32 operations).
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "engine/float16.h"
#include "engine/isa.h"
#include "engine/kernel.h"
#include "engine/ops/broadcast.h"
#include "engine/ops/dispatch.h"
#include "engine/ops/ops.h"
#include "engine/ops/simd_target.h"
#include "engine/ops/spatial.h"

namespace serveml::engine {
namespace {

constexpr int64_t kNr = 16;  // columns per packed right-operand panel
constexpr int64_t kMr = 4;   // rows per register tile

std::vector<int64_t> DimsOf(const Tensor& t) { return {t.shape().begin(), t.shape().end()}; }

bool Is8Bit(DType t) { return t == DType::kUInt8 || t == DType::kInt8; }

template <typename F>
Status Dispatch8(DType t, const char* op, F&& f) {
  return Dispatch<uint8_t, int8_t>(t, op, std::forward<F>(f));
}

// Zero points as int32: `values[i * step]` (step 0: one value for all).
struct ZeroPoints {
  std::vector<int32_t> values{0};
  int64_t step = 0;
  int32_t at(int64_t i) const { return values[static_cast<size_t>(i * step)]; }
};

// Reads a zero point tensor of `count` entries per matrix; `numel` must be 1, `count` or
// `batches * count` (per batch matrix). The caller offsets by batch with `BatchOffset`.
Result<ZeroPoints> ReadZeroPoints(const Tensor* zp, DType want, int64_t count, int64_t batches,
                                  const char* op, const char* name) {
  ZeroPoints z;
  if (!zp) return z;
  if (zp->dtype() != want) {
    return InvalidInput(std::string(op) + ": " + name + " has element type " +
                        std::string(DTypeName(zp->dtype())) + ", expected " +
                        std::string(DTypeName(want)));
  }
  const int64_t n = zp->numel();
  if (n != 1 && n != count && n != batches * count) {
    return InvalidInput(std::string(op) + ": " + name + " of shape " + ShapeToString(zp->shape()) +
                        " is neither a scalar nor one value per " +
                        (count == 1 ? "tensor" : "row/column"));
  }
  z.values.resize(static_cast<size_t>(n));
  Status st = Dispatch8(zp->dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    const T* p = zp->data<T>();
    for (int64_t i = 0; i < n; ++i) z.values[static_cast<size_t>(i)] = p[i];
    return Status::Ok();
  });
  RETURN_IF_ERROR(st);
  z.step = n == 1 ? 0 : 1;
  return z;
}

// Offset of batch matrix `b`'s zero points (per-matrix zero points repeat).
int64_t BatchOffset(const ZeroPoints& z, int64_t b, int64_t count) {
  return z.step == 0 || static_cast<int64_t>(z.values.size()) == count ? 0 : b * count;
}

// ---------------------------------------------------------------------------------------------
// Packing.

int64_t EvenK(int64_t k) { return (k + 1) & ~int64_t{1}; }
int64_t PackedBSize(int64_t k, int64_t n) { return ((n + kNr - 1) / kNr) * EvenK(k) * kNr; }

// dst[((panel * k2/2 + p) * kNr + j) * 2 + e] = B[2p + e][panel * kNr + j] - zp[col]; zero
// beyond k and n. `zp` holds n values (or one with zstep 0).
template <typename T>
void PackB(const T* b, int64_t ldb, int64_t k, int64_t n, const int32_t* zp, int64_t zstep,
           int16_t* dst) {
  const int64_t kpairs = EvenK(k) / 2;
  for (int64_t n0 = 0; n0 < n; n0 += kNr) {
    const int64_t cols = std::min(kNr, n - n0);
    for (int64_t p = 0; p < kpairs; ++p) {
      int16_t* d = dst + ((n0 / kNr) * kpairs + p) * kNr * 2;
      for (int64_t e = 0; e < 2; ++e) {
        const int64_t row = 2 * p + e;
        if (row >= k) {
          for (int64_t j = 0; j < kNr; ++j) d[j * 2 + e] = 0;
          continue;
        }
        const T* src = b + row * ldb + n0;
        for (int64_t j = 0; j < cols; ++j) {
          d[j * 2 + e] = static_cast<int16_t>(src[j] - zp[(n0 + j) * zstep]);
        }
        for (int64_t j = cols; j < kNr; ++j) d[j * 2 + e] = 0;
      }
    }
  }
}

// dst[r * EvenK(k) + c] = A[r][c] - zp[r] (zero for the padding column).
template <typename T>
void PackA(const T* a, int64_t lda, int64_t m, int64_t k, const int32_t* zp, int64_t zstep,
           int16_t* dst) {
  const int64_t k2 = EvenK(k);
  for (int64_t r = 0; r < m; ++r) {
    const T* src = a + r * lda;
    int16_t* d = dst + r * k2;
    const int32_t z = zp[r * zstep];
    for (int64_t c = 0; c < k; ++c) d[c] = static_cast<int16_t>(src[c] - z);
    if (k2 != k) d[k] = 0;
  }
}

// ---------------------------------------------------------------------------------------------
// Register tiles: c[r][j] = sum_p a[r][2p..2p+1] . panel[p][j][0..1] for r < rows, j < cols.

inline int32_t LoadPair(const int16_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

void StoreTile(const int32_t (*acc)[kNr], int rows, int cols, int32_t* c, int64_t ldc) {
  for (int r = 0; r < rows; ++r) {
    std::memcpy(c + r * ldc, acc[r], static_cast<size_t>(cols) * sizeof(int32_t));
  }
}

void TilePortable(const int16_t* a, int64_t lda, int rows, const int16_t* panel, int64_t kpairs,
                  int32_t* c, int64_t ldc, int cols) {
  int32_t acc[kMr][kNr] = {};
  const int16_t* ar[kMr];
  for (int r = 0; r < kMr; ++r) ar[r] = a + std::min(r, rows - 1) * lda;
  for (int64_t p = 0; p < kpairs; ++p) {
    const int16_t* b = panel + p * kNr * 2;
    for (int r = 0; r < kMr; ++r) {
      const int32_t a0 = ar[r][2 * p], a1 = ar[r][2 * p + 1];
      for (int j = 0; j < kNr; ++j) acc[r][j] += a0 * b[2 * j] + a1 * b[2 * j + 1];
    }
  }
  StoreTile(acc, rows, cols, c, ldc);
}

SERVEML_SIMD_BEGIN("avx2")
void TileAvx2(const int16_t* a, int64_t lda, int rows, const int16_t* panel, int64_t kpairs,
              int32_t* c, int64_t ldc, int cols) {
  const int16_t* a0 = a;
  const int16_t* a1 = a + std::min(1, rows - 1) * lda;
  const int16_t* a2 = a + std::min(2, rows - 1) * lda;
  const int16_t* a3 = a + std::min(3, rows - 1) * lda;
  __m256i c00 = _mm256_setzero_si256(), c01 = _mm256_setzero_si256();
  __m256i c10 = _mm256_setzero_si256(), c11 = _mm256_setzero_si256();
  __m256i c20 = _mm256_setzero_si256(), c21 = _mm256_setzero_si256();
  __m256i c30 = _mm256_setzero_si256(), c31 = _mm256_setzero_si256();
  for (int64_t p = 0; p < kpairs; ++p) {
    const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(panel + p * 32));
    const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(panel + p * 32 + 16));
    __m256i v = _mm256_set1_epi32(LoadPair(a0 + 2 * p));
    c00 = _mm256_add_epi32(c00, _mm256_madd_epi16(v, b0));
    c01 = _mm256_add_epi32(c01, _mm256_madd_epi16(v, b1));
    v = _mm256_set1_epi32(LoadPair(a1 + 2 * p));
    c10 = _mm256_add_epi32(c10, _mm256_madd_epi16(v, b0));
    c11 = _mm256_add_epi32(c11, _mm256_madd_epi16(v, b1));
    v = _mm256_set1_epi32(LoadPair(a2 + 2 * p));
    c20 = _mm256_add_epi32(c20, _mm256_madd_epi16(v, b0));
    c21 = _mm256_add_epi32(c21, _mm256_madd_epi16(v, b1));
    v = _mm256_set1_epi32(LoadPair(a3 + 2 * p));
    c30 = _mm256_add_epi32(c30, _mm256_madd_epi16(v, b0));
    c31 = _mm256_add_epi32(c31, _mm256_madd_epi16(v, b1));
  }
  alignas(32) int32_t acc[kMr][kNr];
  _mm256_store_si256(reinterpret_cast<__m256i*>(acc[0]), c00);
  _mm256_store_si256(reinterpret_cast<__m256i*>(acc[0] + 8), c01);
  _mm256_store_si256(reinterpret_cast<__m256i*>(acc[1]), c10);
  _mm256_store_si256(reinterpret_cast<__m256i*>(acc[1] + 8), c11);
  _mm256_store_si256(reinterpret_cast<__m256i*>(acc[2]), c20);
  _mm256_store_si256(reinterpret_cast<__m256i*>(acc[2] + 8), c21);
  _mm256_store_si256(reinterpret_cast<__m256i*>(acc[3]), c30);
  _mm256_store_si256(reinterpret_cast<__m256i*>(acc[3] + 8), c31);
  StoreTile(acc, rows, cols, c, ldc);
}
SERVEML_SIMD_END

using TileFn = void (*)(const int16_t*, int64_t, int, const int16_t*, int64_t, int32_t*, int64_t,
                        int);

TileFn PickTile() { return UseIsa(Isa::kAvx2) ? TileAvx2 : TilePortable; }

// c[m, n] (row stride ldc) = A'[m, k] * B'[k, n] with A' packed by PackA and B' by PackB.
void IntGemm(const int16_t* ap, int64_t m, int64_t k, const int16_t* bp, int64_t n, int32_t* c,
             int64_t ldc) {
  static const TileFn tile = PickTile();
  const int64_t k2 = EvenK(k), kpairs = k2 / 2;
  constexpr int64_t kMb = 64;  // rows per block: their packed A stays in cache across panels
  for (int64_t m0 = 0; m0 < m; m0 += kMb) {
    const int64_t m1 = std::min(m, m0 + kMb);
    for (int64_t n0 = 0; n0 < n; n0 += kNr) {
      const int16_t* panel = bp + (n0 / kNr) * kpairs * kNr * 2;
      const int cols = static_cast<int>(std::min(kNr, n - n0));
      for (int64_t r0 = m0; r0 < m1; r0 += kMr) {
        tile(ap + r0 * k2, k2, static_cast<int>(std::min(kMr, m1 - r0)), panel, kpairs,
             c + r0 * ldc + n0, ldc, cols);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The AVX-512 VNNI path for matrix products: vpdpbusd multiplies 4 k steps of unsigned 8-bit A
// by signed 8-bit B into 16 int32 columns, on the raw values. Zero points are applied afterwards:
//   sum_k (a - za)(b - zb) = sum_k a*b - zb * rowsum(a) - za * (colsum(b) - k * zb)
// with int8 A mapped to uint8 (a + 128, za + 128) and uint8 B to int8 (b - 128, zb - 128), which
// leaves every (a - za) and (b - zb) unchanged. vpdpbusd does not saturate (each 4-term sum fits
// int32) and every term wraps modulo 2^32 (unsigned arithmetic), so the result is the exact one
// whenever that fits int32, and equal to it modulo 2^32 otherwise.

constexpr int64_t kQr = 8;   // rows per register tile (8 x 2 zmm accumulators)
constexpr int64_t kQc = 32;  // columns per packed right-operand panel

int64_t KQuads(int64_t k) { return (k + 3) / 4; }

bool UseVnniU8() { return UseIsa(Isa::kAvx512Vnni); }

// A right operand packed for the VNNI path. `data[((panel * kq + q) * kQc + j) * 4 + e]` holds
// B[4q + e][panel * kQc + j] mapped to int8 (zero beyond k and n); per column (n rounded up to
// kQc, zero padded): `zb` the mapped zero point and `colterm` = colsum(mapped B) - k * zb,
// wrapping.
struct PackedBU8 {
  std::vector<int8_t> data;
  std::vector<int32_t> zb, colterm;
  int64_t k = 0, n = 0;
};

SERVEML_SIMD_BEGIN("avx512f,avx512bw,avx512vnni")
// Everything up to the matching SERVEML_SIMD_END runs only when UseVnniU8().

// acc + vpdpbusd(a as uint8, b as int8). GCC (12) copies every accumulator around the
// intrinsic in a loop with many of them; the asm form keeps each one in its register.
inline __m512i Dpbusd(__m512i acc, __m512i a, __m512i b) {
#if defined(__GNUC__) && !defined(__clang__)
  asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
  return acc;
#else
  return _mm512_dpbusd_epi32(acc, a, b);
#endif
}

// Packs B [k, n] (row stride ldb) with zero points zp[col * zstep] into `out`.
template <typename T>
void PackBU8(const T* b, int64_t ldb, int64_t k, int64_t n, const int32_t* zp, int64_t zstep,
             PackedBU8* out) {
  constexpr int32_t kShift = std::is_same_v<T, uint8_t> ? 128 : 0;
  const int64_t kq = KQuads(k), panels = (n + kQc - 1) / kQc, np = panels * kQc;
  out->k = k;
  out->n = n;
  out->data.resize(static_cast<size_t>(panels * kq * kQc * 4));
  out->zb.assign(static_cast<size_t>(np), 0);
  out->colterm.assign(static_cast<size_t>(np), 0);
  const __m256i flip = _mm256_set1_epi8(static_cast<char>(kShift));
  for (int64_t p = 0; p < panels; ++p) {
    const int64_t n0 = p * kQc, cols = std::min(kQc, n - n0);
    for (int64_t q = 0; q < kq; ++q) {
      int8_t* d = out->data.data() + (p * kq + q) * kQc * 4;
      if (cols == kQc && 4 * q + 3 < k) {
        // 4 rows x 32 columns: interleave bytes, then 16-bit pairs, within 128-bit lanes
        // (x = [j0-3 | j16-19], y = [j4-7 | j20-23], z = [j8-11 | j24-27], w = [j12-15 | j28-31])
        __m256i r[4];
        for (int e = 0; e < 4; ++e) {
          r[e] = _mm256_xor_si256(
              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + (4 * q + e) * ldb + n0)),
              flip);
        }
        const __m256i lo01 = _mm256_unpacklo_epi8(r[0], r[1]);
        const __m256i hi01 = _mm256_unpackhi_epi8(r[0], r[1]);
        const __m256i lo23 = _mm256_unpacklo_epi8(r[2], r[3]);
        const __m256i hi23 = _mm256_unpackhi_epi8(r[2], r[3]);
        const __m256i x = _mm256_unpacklo_epi16(lo01, lo23), y = _mm256_unpackhi_epi16(lo01, lo23);
        const __m256i z = _mm256_unpacklo_epi16(hi01, hi23), w = _mm256_unpackhi_epi16(hi01, hi23);
        __m256i* dv = reinterpret_cast<__m256i*>(d);
        _mm256_storeu_si256(dv, _mm256_permute2x128_si256(x, y, 0x20));
        _mm256_storeu_si256(dv + 1, _mm256_permute2x128_si256(z, w, 0x20));
        _mm256_storeu_si256(dv + 2, _mm256_permute2x128_si256(x, y, 0x31));
        _mm256_storeu_si256(dv + 3, _mm256_permute2x128_si256(z, w, 0x31));
        continue;
      }
      std::memset(d, 0, kQc * 4);
      for (int64_t e = 0; e < 4 && 4 * q + e < k; ++e) {
        const T* src = b + (4 * q + e) * ldb + n0;
        for (int64_t j = 0; j < cols; ++j) d[j * 4 + e] = static_cast<int8_t>(src[j] - kShift);
      }
    }
    // Column sums of the packed panel (zero padded) by vpdpbusd with all-ones A.
    const int8_t* panel = out->data.data() + p * kq * kQc * 4;
    const __m512i ones = _mm512_set1_epi8(1);
    __m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
    for (int64_t q = 0; q < kq; ++q) {
      s0 = Dpbusd(s0, ones, _mm512_loadu_si512(panel + q * kQc * 4));
      s1 = Dpbusd(s1, ones, _mm512_loadu_si512(panel + q * kQc * 4 + 64));
    }
    alignas(64) uint32_t colsum[kQc];
    _mm512_store_si512(colsum, s0);
    _mm512_store_si512(colsum + 16, s1);
    for (int64_t j = 0; j < cols; ++j) {
      const int32_t zj = zp[(n0 + j) * zstep] - kShift;
      out->zb[static_cast<size_t>(n0 + j)] = zj;
      out->colterm[static_cast<size_t>(n0 + j)] =
          static_cast<int32_t>(colsum[j] - static_cast<uint32_t>(k) * static_cast<uint32_t>(zj));
    }
  }
}

// Packs A [m, k] (row stride lda) with zero points zp[row * zstep] for the VNNI path:
// dst[((t * kq + q) * kQr + r) * 4 + e] = A[t * kQr + r][4q + e] mapped to uint8 (zero beyond m
// and k; dst holds RoundUp(m, kQr) * kq * 4 bytes), rowsum[row] its sum over k and za[row] the
// mapped zero point (both hold RoundUp(m, kQr) values, zero for padding rows).
template <typename T>
void PackAU8(const T* a, int64_t lda, int64_t m, int64_t k, const int32_t* zp, int64_t zstep,
             uint8_t* dst, int32_t* rowsum, int32_t* za) {
  constexpr int32_t kShift = std::is_same_v<T, int8_t> ? 128 : 0;
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(kShift));
  const __m512i zero = _mm512_setzero_si512();
  // byte offset of quad q's dword within a 16-quad chunk of one row
  const __m512i offsets =
      _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                         _mm512_set1_epi32(kQr * 4));
  const int64_t kq = KQuads(k), mp = (m + kQr - 1) / kQr * kQr;
  for (int64_t row = 0; row < mp; ++row) {
    uint8_t* d = dst + (row / kQr) * kq * kQr * 4 + (row % kQr) * 4;
    if (row >= m) {
      for (int64_t q = 0; q < kq; ++q) std::memset(d + q * kQr * 4, 0, 4);
      rowsum[row] = 0;
      za[row] = 0;
      continue;
    }
    const uint8_t* src = reinterpret_cast<const uint8_t*>(a + row * lda);
    __m512i sum = zero;
    for (int64_t c0 = 0; c0 < k; c0 += 64) {
      const int64_t len = std::min<int64_t>(64, k - c0);
      const __mmask64 bytes = len == 64 ? ~__mmask64{0} : (__mmask64{1} << len) - 1;
      const __mmask16 quads = static_cast<__mmask16>((1u << ((len + 3) / 4)) - 1);
      const __m512i v = _mm512_maskz_mov_epi8(
          bytes, _mm512_xor_si512(_mm512_maskz_loadu_epi8(bytes, src + c0), flip));
      sum = _mm512_add_epi64(sum, _mm512_sad_epu8(v, zero));
      _mm512_mask_i32scatter_epi32(d + (c0 / 4) * kQr * 4, quads, offsets, v, 1);
    }
    alignas(64) uint64_t lanes[8];  // (_mm512_reduce_add_epi64 warns in GCC 12's headers)
    _mm512_store_si512(lanes, sum);
    uint64_t total = 0;
    for (uint64_t lane : lanes) total += lane;
    rowsum[row] = static_cast<int32_t>(static_cast<uint32_t>(total));
    za[row] = zp[row * zstep] + kShift;
  }
}

// c[r][j] (r < R, j < cols) = dot(A tile row r, B panel column j) - zb[j] * rowsum[r]
// - za[r] * colterm[j], wrapping; `ap` is the tile's PackAU8 block, `bp` the PackBU8 panel.
template <int R>
void TileU8(const uint8_t* ap, const int8_t* bp, int64_t kq, int cols, int32_t* c, int64_t ldc,
            const int32_t* rowsum, const int32_t* za, const int32_t* zb, const int32_t* colterm) {
  __m512i c00 = _mm512_setzero_si512(), c01 = _mm512_setzero_si512(), c10 = _mm512_setzero_si512(),
          c11 = _mm512_setzero_si512(), c20 = _mm512_setzero_si512(), c21 = _mm512_setzero_si512(),
          c30 = _mm512_setzero_si512(), c31 = _mm512_setzero_si512(), c40 = _mm512_setzero_si512(),
          c41 = _mm512_setzero_si512(), c50 = _mm512_setzero_si512(), c51 = _mm512_setzero_si512(),
          c60 = _mm512_setzero_si512(), c61 = _mm512_setzero_si512(), c70 = _mm512_setzero_si512(),
          c71 = _mm512_setzero_si512();
  for (int64_t q = 0; q < kq; ++q) {
    const __m512i b0 = _mm512_loadu_si512(bp + q * kQc * 4);
    const __m512i b1 = _mm512_loadu_si512(bp + q * kQc * 4 + 64);
    const uint8_t* aq = ap + q * kQr * 4;
#define SERVEML_TILE_ROW(r)                  \
  if constexpr (R > r) {                     \
    int32_t v;                               \
    std::memcpy(&v, aq + 4 * r, 4);          \
    const __m512i av = _mm512_set1_epi32(v); \
    c##r##0 = Dpbusd(c##r##0, av, b0);       \
    c##r##1 = Dpbusd(c##r##1, av, b1);       \
  }
    SERVEML_TILE_ROW(0)
    SERVEML_TILE_ROW(1)
    SERVEML_TILE_ROW(2)
    SERVEML_TILE_ROW(3)
    SERVEML_TILE_ROW(4)
    SERVEML_TILE_ROW(5)
    SERVEML_TILE_ROW(6)
    SERVEML_TILE_ROW(7)
#undef SERVEML_TILE_ROW
  }
  const __m512i acc[kQr][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31},
                               {c40, c41}, {c50, c51}, {c60, c61}, {c70, c71}};
  const __mmask16 m0 = static_cast<__mmask16>(cols >= 16 ? 0xFFFF : (1u << cols) - 1);
  const __mmask16 m1 = static_cast<__mmask16>(cols >= 32   ? 0xFFFF
                                              : cols <= 16 ? 0
                                                           : (1u << (cols - 16)) - 1);
  const __m512i zb0 = _mm512_loadu_si512(zb), zb1 = _mm512_loadu_si512(zb + 16);
  const __m512i ct0 = _mm512_loadu_si512(colterm), ct1 = _mm512_loadu_si512(colterm + 16);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const __m512i rs = _mm512_set1_epi32(rowsum[r]), z = _mm512_set1_epi32(za[r]);
    __m512i v0 = _mm512_sub_epi32(acc[r][0], _mm512_mullo_epi32(rs, zb0));
    __m512i v1 = _mm512_sub_epi32(acc[r][1], _mm512_mullo_epi32(rs, zb1));
    v0 = _mm512_sub_epi32(v0, _mm512_mullo_epi32(z, ct0));
    v1 = _mm512_sub_epi32(v1, _mm512_mullo_epi32(z, ct1));
    _mm512_mask_storeu_epi32(c + r * ldc, m0, v0);
    _mm512_mask_storeu_epi32(c + r * ldc + 16, m1, v1);
  }
}

using TileU8Fn = void (*)(const uint8_t*, const int8_t*, int64_t, int, int32_t*, int64_t,
                          const int32_t*, const int32_t*, const int32_t*, const int32_t*);
constexpr TileU8Fn kTilesU8[kQr] = {TileU8<1>, TileU8<2>, TileU8<3>, TileU8<4>,
                                    TileU8<5>, TileU8<6>, TileU8<7>, TileU8<8>};

// c[m, n] (row stride ldc) = (A - za)(B - zb) from PackAU8's `ap`, `rowsum`, `za` and `b`.
void IntGemmU8(const uint8_t* ap, const int32_t* rowsum, const int32_t* za, int64_t m,
               const PackedBU8& b, int32_t* c, int64_t ldc) {
  const int64_t kq = KQuads(b.k), n = b.n;
  // Rows per block: their packed A (up to 256 KiB) stays in L2 while every panel of B streams
  // past it; fewer, larger blocks stream B fewer times (256 x 1024 by 1024: ~3% faster than 64).
  const int64_t mb = std::clamp<int64_t>(
      (int64_t{256} << 10) / std::max<int64_t>(kq * 4, 1) / kQr * kQr, kQr, 256);
  for (int64_t m0 = 0; m0 < m; m0 += mb) {
    const int64_t m1 = std::min(m, m0 + mb);
    for (int64_t n0 = 0; n0 < n; n0 += kQc) {
      const int8_t* panel = b.data.data() + (n0 / kQc) * kq * kQc * 4;
      const int cols = static_cast<int>(std::min(kQc, n - n0));
      for (int64_t r0 = m0; r0 < m1; r0 += kQr) {
        const int rows = static_cast<int>(std::min(kQr, m1 - r0));
        kTilesU8[rows - 1](ap + r0 * kq * 4, panel, kq, cols, c + r0 * ldc + n0, ldc, rowsum + r0,
                           za + r0, b.zb.data() + n0, b.colterm.data() + n0);
      }
    }
  }
}
SERVEML_SIMD_END

template <typename T>
std::vector<T>& Scratch(int slot) {
  thread_local std::vector<T> bufs[3];
  return bufs[slot];
}

// ---------------------------------------------------------------------------------------------
// Requantization: y = saturate(round_half_even(float(acc) * mult) + zp).

inline float RoundHalfEvenSmall(float v) {  // |v| < 2^22
  constexpr float kMagic = 12582912.0f;
  return (v + kMagic) - kMagic;
}

template <typename Q>
inline Q Requantize(int32_t acc, float mult, int32_t zp) {
  const float lo = static_cast<float>(std::numeric_limits<Q>::min() - zp);
  const float hi = static_cast<float>(std::numeric_limits<Q>::max() - zp);
  float v = static_cast<float>(acc) * mult;
  v = v >= lo ? v : lo;  // NaN cannot occur: finite scales
  v = v <= hi ? v : hi;
  return static_cast<Q>(static_cast<int32_t>(RoundHalfEvenSmall(v)) + zp);
}

// dst[j] = Requantize<Q>(src[j] + bias, mult[j * mstep], zp) for j < n, the sum wrapping.
template <typename Q>
void RequantizeRowPortable(const int32_t* src, int64_t n, const float* mult, int64_t mstep,
                           int32_t bias, int32_t zp, Q* dst) {
  for (int64_t j = 0; j < n; ++j) {
    const int32_t acc =
        static_cast<int32_t>(static_cast<uint32_t>(src[j]) + static_cast<uint32_t>(bias));
    dst[j] = Requantize<Q>(acc, mult[j * mstep], zp);
  }
}

SERVEML_SIMD_BEGIN("avx512f,avx512bw")
// RequantizeRowPortable 16 values at a time, with the same float32 operations in the same order
// (so the same results; max/min stand for the clamps, which NaN-free values make equivalent).
template <typename Q>
void RequantizeRowAvx512(const int32_t* src, int64_t n, const float* mult, int64_t mstep,
                         int32_t bias, int32_t zp, Q* dst) {
  const __m512 lo = _mm512_set1_ps(static_cast<float>(std::numeric_limits<Q>::min() - zp));
  const __m512 hi = _mm512_set1_ps(static_cast<float>(std::numeric_limits<Q>::max() - zp));
  const __m512 magic = _mm512_set1_ps(12582912.0f);
  const __m512i zpv = _mm512_set1_epi32(zp), biasv = _mm512_set1_epi32(bias);
  for (int64_t j = 0; j < n; j += 16) {
    const int64_t len = std::min<int64_t>(16, n - j);
    const __mmask16 mask = static_cast<__mmask16>(len == 16 ? 0xFFFF : (1u << len) - 1);
    const __m512i acc = _mm512_add_epi32(_mm512_maskz_loadu_epi32(mask, src + j), biasv);
    const __m512 mu = mstep ? _mm512_maskz_loadu_ps(mask, mult + j) : _mm512_set1_ps(mult[0]);
    // (zero-masked forms with an all-ones mask: the unmasked ones start from an undefined
    // register, which GCC 12 reports as -Wmaybe-uninitialized in some builds)
    constexpr __mmask16 kAll = 0xFFFF;
    __m512 v = _mm512_mul_ps(_mm512_maskz_cvtepi32_ps(kAll, acc), mu);
    v = _mm512_maskz_min_ps(kAll, _mm512_maskz_max_ps(kAll, v, lo), hi);
    v = _mm512_sub_ps(_mm512_add_ps(v, magic), magic);
    const __m512i q = _mm512_add_epi32(_mm512_maskz_cvttps_epi32(kAll, v), zpv);  // in Q's range
    _mm512_mask_cvtepi32_storeu_epi8(dst + j, mask, q);
  }
}
SERVEML_SIMD_END

template <typename Q>
void RequantizeRow(const int32_t* src, int64_t n, const float* mult, int64_t mstep, int32_t bias,
                   int32_t zp, Q* dst) {
  static const bool avx512 = UseIsa(Isa::kAvx512);
  (avx512 ? RequantizeRowAvx512<Q> : RequantizeRowPortable<Q>)(src, n, mult, mstep, bias, zp, dst);
}

// A scale tensor's values as float. float16 scales are also kept as float16 values so the
// multiplier can round through float16 as the ONNX reference computes it.
struct Scales {
  std::vector<float> v;
  bool half = false;
};

Result<Scales> ReadScales(const Tensor* s, const char* op, const char* name) {
  Scales out;
  if (!s) return InvalidInput(std::string(op) + " needs " + name);
  const int64_t n = s->numel();
  out.v.resize(static_cast<size_t>(n));
  if (s->dtype() == DType::kFloat32) {
    std::copy(s->data<float>(), s->data<float>() + n, out.v.begin());
  } else if (s->dtype() == DType::kFloat16) {
    const Half* p = s->data<Half>();
    for (int64_t i = 0; i < n; ++i) out.v[static_cast<size_t>(i)] = HalfToFloat(p[i].bits);
    out.half = true;
  } else {
    return UnsupportedType(s->dtype(), op);
  }
  return out;
}

// mult[i] = a * b[i] / y (b has 1 or `count` values).
Result<std::vector<float>> Multipliers(const Scales& a, const Scales& b, const Scales& y,
                                       int64_t count, const char* op) {
  if (a.v.size() != 1 || y.v.size() != 1) {
    return InvalidInput(std::string(op) + ": input and output scales must be scalars");
  }
  if (b.v.size() != 1 && static_cast<int64_t>(b.v.size()) != count) {
    return InvalidInput(std::string(op) + ": weight scale must be a scalar or have " +
                        std::to_string(count) + " values");
  }
  const bool half = a.half && b.half && y.half;
  auto round_half = [&](float v) { return half ? HalfToFloat(FloatToHalf(v)) : v; };
  std::vector<float> mult(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    const float bi = b.v[b.v.size() == 1 ? 0 : static_cast<size_t>(i)];
    mult[static_cast<size_t>(i)] = round_half(round_half(a.v[0] * bi) / y.v[0]);
  }
  return mult;
}

// ---------------------------------------------------------------------------------------------
// Batched integer MatMul (numpy broadcasting, 1-D promotion) into int32.

// A constant 2-D B with its constant zero point, packed at load for the path this CPU runs.
struct ConstPackedB {
  bool valid = false;
  std::vector<int16_t> data;  // PackB (int16 path)
  PackedBU8 u8;               // PackBU8 (UseVnniU8())
  int64_t k = 0, n = 0;
};

struct MatMulGeometry {
  int64_t m = 0, k = 0, n = 0;
  std::vector<int64_t> a_batch, b_batch, batch, out_shape;
  int64_t a_batch_n = 1, b_batch_n = 1, batch_n = 1;
};

Result<MatMulGeometry> MatMulShapes(const Tensor& a, const Tensor& b, const char* op) {
  if (a.rank() == 0 || b.rank() == 0) {
    return InvalidInput(std::string(op) + " inputs must not be scalars");
  }
  MatMulGeometry g;
  std::vector<int64_t> as = DimsOf(a), bs = DimsOf(b);
  const bool a_vec = as.size() == 1, b_vec = bs.size() == 1;
  if (a_vec) as.insert(as.begin(), 1);
  if (b_vec) bs.push_back(1);
  g.m = as[as.size() - 2];
  g.k = as.back();
  g.n = bs.back();
  if (bs[bs.size() - 2] != g.k) {
    return InvalidInput(std::string(op) + " shapes " + ShapeToString(a.shape()) + " and " +
                        ShapeToString(b.shape()) + " do not match");
  }
  g.a_batch.assign(as.begin(), as.end() - 2);
  g.b_batch.assign(bs.begin(), bs.end() - 2);
  RETURN_IF_ERROR(BroadcastShape(g.a_batch, g.b_batch, &g.batch));
  for (int64_t d : g.a_batch) g.a_batch_n *= d;
  for (int64_t d : g.b_batch) g.b_batch_n *= d;
  for (int64_t d : g.batch) g.batch_n *= d;
  g.out_shape = g.batch;
  if (!a_vec) g.out_shape.push_back(g.m);
  if (!b_vec) g.out_shape.push_back(g.n);
  return g;
}

// c (batch_n * m * n int32) = (A - za) (B - zb), per broadcast batch.
Status IntMatMul(const Tensor& a, const ZeroPoints& za, const Tensor& b, const ZeroPoints& zb,
                 const ConstPackedB* cb, const MatMulGeometry& g, const char* op, int32_t* c) {
  const int64_t m = g.m, k = g.k, n = g.n;
  if (g.batch_n == 0 || m == 0 || n == 0) return Status::Ok();
  const bool u8 = UseVnniU8();
  const bool use_cb = cb && cb->valid && cb->k == k && cb->n == n && g.b_batch_n == 1;
  std::vector<int16_t>& apack = Scratch<int16_t>(0);
  std::vector<int16_t>& bpack = Scratch<int16_t>(1);
  std::vector<uint8_t>& apack8 = Scratch<uint8_t>(0);
  std::vector<int32_t>& rowsum = Scratch<int32_t>(0);
  std::vector<int32_t>& za8 = Scratch<int32_t>(1);
  thread_local PackedBU8 bpack8;
  if (u8) {
    const int64_t mp = (m + kQr - 1) / kQr * kQr;
    apack8.resize(static_cast<size_t>(mp * KQuads(k) * 4));
    rowsum.resize(static_cast<size_t>(mp));
    za8.resize(static_cast<size_t>(mp));
  } else {
    apack.resize(static_cast<size_t>(m * EvenK(k)));
    if (!use_cb) bpack.resize(static_cast<size_t>(PackedBSize(k, n)));
  }
  return Dispatch8(a.dtype(), op, [&](auto at) {
    using TA = decltype(at);
    return Dispatch8(b.dtype(), op, [&](auto bt) {
      using TB = decltype(bt);
      const TA* pa = a.data<TA>();
      const TB* pb = b.data<TB>();
      int64_t packed_b = -1;  // index of the B matrix currently in bpack / bpack8
      // Output batch index -> operand batch indices via the broadcast plan.
      BroadcastPlan plan = MakeBroadcastPlan(g.a_batch, g.b_batch, g.batch);
      int64_t out_index = 0;
      auto one = [&](int64_t ia, int64_t ib) {
        const int32_t* zap = za.values.data() + BatchOffset(za, ia, m);
        const int32_t* zbp = zb.values.data() + BatchOffset(zb, ib, n);
        int32_t* dst = c + out_index * m * n;
        ++out_index;
        if (u8) {
          PackAU8(pa + ia * m * k, k, m, k, zap, za.step, apack8.data(), rowsum.data(), za8.data());
          if (!use_cb && packed_b != ib) {
            PackBU8(pb + ib * k * n, n, k, n, zbp, zb.step, &bpack8);
            packed_b = ib;
          }
          IntGemmU8(apack8.data(), rowsum.data(), za8.data(), m, use_cb ? cb->u8 : bpack8, dst, n);
          return;
        }
        PackA(pa + ia * m * k, k, m, k, zap, za.step, apack.data());
        if (!use_cb && packed_b != ib) {
          PackB(pb + ib * k * n, n, k, n, zbp, zb.step, bpack.data());
          packed_b = ib;
        }
        IntGemm(apack.data(), m, k, use_cb ? cb->data.data() : bpack.data(), n, dst, n);
      };
      if (g.batch.empty()) {
        one(0, 0);
      } else {
        ForEachBroadcastRun(
            plan, [&](int64_t oa, int64_t ob, int64_t, int64_t len, int64_t sa, int64_t sb) {
              for (int64_t i = 0; i < len; ++i) one(oa + i * sa, ob + i * sb);
            });
      }
      return Status::Ok();
    });
  });
}

// Packs a constant 2-D B (and its zero point) at load; empty when not applicable.
Result<ConstPackedB> PackConstB(const KernelInit& init, size_t b_index, size_t zp_index,
                                const char* op) {
  ConstPackedB cb;
  const Tensor* b = b_index < init.const_inputs.size() ? init.const_inputs[b_index] : nullptr;
  const bool has_zp = zp_index < init.node.input.size() && !init.node.input[zp_index].empty();
  const Tensor* zp = zp_index < init.const_inputs.size() ? init.const_inputs[zp_index] : nullptr;
  if (!b || b->rank() != 2 || !Is8Bit(b->dtype()) || (has_zp && !zp)) return cb;
  const int64_t k = b->dim(0), n = b->dim(1);
  ASSIGN_OR_RETURN(ZeroPoints z, ReadZeroPoints(zp, b->dtype(), n, 1, op, "B zero point"));
  const bool u8 = UseVnniU8();
  if (!u8) cb.data.resize(static_cast<size_t>(PackedBSize(k, n)));
  Status st = Dispatch8(b->dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    if (u8) {
      PackBU8(b->data<T>(), n, k, n, z.values.data(), z.step, &cb.u8);
    } else {
      PackB(b->data<T>(), n, k, n, z.values.data(), z.step, cb.data.data());
    }
    return Status::Ok();
  });
  RETURN_IF_ERROR(st);
  cb.valid = true;
  cb.k = k;
  cb.n = n;
  return cb;
}

class MatMulIntegerKernel final : public Kernel {
 public:
  explicit MatMulIntegerKernel(ConstPackedB cb) : cb_(std::move(cb)) {}

  Status Run(KernelContext& ctx) const override {
    const Tensor* a = ctx.input(0);
    const Tensor* b = ctx.input(1);
    if (!a || !b) return InvalidInput("MatMulInteger needs A and B");
    if (!Is8Bit(a->dtype())) return UnsupportedType(a->dtype(), "MatMulInteger");
    if (!Is8Bit(b->dtype())) return UnsupportedType(b->dtype(), "MatMulInteger");
    ASSIGN_OR_RETURN(MatMulGeometry g, MatMulShapes(*a, *b, "MatMulInteger"));
    ASSIGN_OR_RETURN(ZeroPoints za, ReadZeroPoints(ctx.input(2), a->dtype(), g.m, g.a_batch_n,
                                                   "MatMulInteger", "a_zero_point"));
    ASSIGN_OR_RETURN(ZeroPoints zb, ReadZeroPoints(ctx.input(3), b->dtype(), g.n, g.b_batch_n,
                                                   "MatMulInteger", "b_zero_point"));
    ASSIGN_OR_RETURN(Tensor y, NewTensor(DType::kInt32, g.out_shape));
    RETURN_IF_ERROR(IntMatMul(*a, za, *b, zb, &cb_, g, "MatMulInteger", y.data<int32_t>()));
    *ctx.outputs[0] = std::move(y);
    return Status::Ok();
  }

 private:
  ConstPackedB cb_;
};

class QLinearMatMulKernel final : public Kernel {
 public:
  explicit QLinearMatMulKernel(ConstPackedB cb) : cb_(std::move(cb)) {}

  Status Run(KernelContext& ctx) const override {
    const char* op = "QLinearMatMul";
    const Tensor* a = ctx.input(0);
    const Tensor* b = ctx.input(3);
    const Tensor* yzp = ctx.input(7);
    if (!a || !b) return InvalidInput("QLinearMatMul needs a and b");
    if (!Is8Bit(a->dtype())) return UnsupportedType(a->dtype(), op);
    if (!Is8Bit(b->dtype())) return UnsupportedType(b->dtype(), op);
    const DType out = yzp ? yzp->dtype() : a->dtype();
    if (!Is8Bit(out)) return UnsupportedType(out, op);
    ASSIGN_OR_RETURN(MatMulGeometry g, MatMulShapes(*a, *b, op));
    ASSIGN_OR_RETURN(ZeroPoints za,
                     ReadZeroPoints(ctx.input(2), a->dtype(), 1, 1, op, "a_zero_point"));
    ASSIGN_OR_RETURN(ZeroPoints zb,
                     ReadZeroPoints(ctx.input(5), b->dtype(), g.n, 1, op, "b_zero_point"));
    ASSIGN_OR_RETURN(ZeroPoints zy, ReadZeroPoints(yzp, out, 1, 1, op, "y_zero_point"));
    ASSIGN_OR_RETURN(Scales sa, ReadScales(ctx.input(1), op, "a_scale"));
    ASSIGN_OR_RETURN(Scales sb, ReadScales(ctx.input(4), op, "b_scale"));
    ASSIGN_OR_RETURN(Scales sy, ReadScales(ctx.input(6), op, "y_scale"));
    ASSIGN_OR_RETURN(std::vector<float> mult, Multipliers(sa, sb, sy, g.n, op));
    ASSIGN_OR_RETURN(Tensor y, NewTensor(out, g.out_shape));
    const int64_t total = y.numel();
    std::vector<int32_t>& acc = Scratch<int32_t>(2);
    acc.resize(static_cast<size_t>(total));
    RETURN_IF_ERROR(IntMatMul(*a, za, *b, zb, &cb_, g, op, acc.data()));
    const int32_t z = zy.at(0);
    Status st = Dispatch8(out, op, [&](auto tag) {
      using Q = decltype(tag);
      Q* py = y.data<Q>();
      for (int64_t row = 0; row * g.n < total; ++row) {
        RequantizeRow<Q>(acc.data() + row * g.n, g.n, mult.data(), 1, 0, z, py + row * g.n);
      }
      return Status::Ok();
    });
    RETURN_IF_ERROR(st);
    *ctx.outputs[0] = std::move(y);
    return Status::Ok();
  }

 private:
  ConstPackedB cb_;
};

// ---------------------------------------------------------------------------------------------
// Convolutions.

// Input positions of the operands of ConvInteger / QLinearConv.
struct ConvInputs {
  size_t x, x_zp, w, w_zp;
};
constexpr ConvInputs kConvIntegerInputs{0, 2, 1, 3};
constexpr ConvInputs kQLinearConvInputs{0, 2, 3, 5};

// Weights [M, C/group, k...] minus their per-output-channel zero points, packed as GEMM rows.
Result<std::vector<int16_t>> PackWeights(const Tensor& w, const Tensor* zp, const char* op) {
  const int64_t m = w.dim(0);
  const int64_t kdim = m > 0 ? w.numel() / m : 0;
  ASSIGN_OR_RETURN(ZeroPoints z, ReadZeroPoints(zp, w.dtype(), m, 1, op, "w_zero_point"));
  std::vector<int16_t> out(static_cast<size_t>(m * EvenK(kdim)));
  Status st = Dispatch8(w.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    PackA(w.data<T>(), kdim, m, kdim, z.values.data(), z.step, out.data());
    return Status::Ok();
  });
  RETURN_IF_ERROR(st);
  return out;
}

// Conv weights [M, kdim] packed for the VNNI path as the left operand, group by group: group
// g's mg = M / group rows are PackAU8 tiles at data[g * mp * kq * 4], its row sums and mapped
// zero points at rowsum[g * mp] and za[g * mp] (mp = mg rounded up to kQr, kq = KQuads(kdim)).
struct PackedWU8 {
  bool valid = false;
  std::vector<uint8_t> data;
  std::vector<int32_t> rowsum, za;
  int64_t mp = 0, kq = 0;
};

// Packs w (rank >= 3, dim 0 divisible by `group`) and its per-tensor or per-output-channel zero
// point `zp` (may be null) for the VNNI path. Only when UseVnniU8().
Result<PackedWU8> PackWeightsU8(const Tensor& w, const Tensor* zp, int64_t group, const char* op) {
  const int64_t m = w.dim(0), mg = m / group;
  const int64_t kdim = m > 0 ? w.numel() / m : 0;
  ASSIGN_OR_RETURN(ZeroPoints z, ReadZeroPoints(zp, w.dtype(), m, 1, op, "w_zero_point"));
  PackedWU8 out;
  out.mp = (mg + kQr - 1) / kQr * kQr;
  out.kq = KQuads(kdim);
  out.data.resize(static_cast<size_t>(group * out.mp * out.kq * 4));
  out.rowsum.resize(static_cast<size_t>(group * out.mp));
  out.za.resize(static_cast<size_t>(group * out.mp));
  Status st = Dispatch8(w.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    for (int64_t g = 0; g < group; ++g) {
      PackAU8(w.data<T>() + g * mg * kdim, kdim, mg, kdim, z.values.data() + g * mg * z.step,
              z.step, out.data.data() + g * out.mp * out.kq * 4, out.rowsum.data() + g * out.mp,
              out.za.data() + g * out.mp);
    }
    return Status::Ok();
  });
  RETURN_IF_ERROR(st);
  out.valid = true;
  return out;
}

SERVEML_SIMD_BEGIN("avx512f,avx512bw")
// Everything up to the matching SERVEML_SIMD_END runs only when UseVnniU8().

// dst[0, n) = src[0, n) (src null: `fill`) for 8-bit T, 64 bytes at a time with masked tails.
template <typename T>
inline void CopyOrFillBytes(T* dst, const T* src, int64_t n, T fill) {
  const __m512i f = _mm512_set1_epi8(static_cast<char>(fill));
  for (int64_t i = 0; i < n; i += 64) {
    const int64_t len = std::min<int64_t>(64, n - i);
    const __mmask64 mask = len == 64 ? ~__mmask64{0} : (__mmask64{1} << len) - 1;
    _mm512_mask_storeu_epi8(dst + i, mask, src ? _mm512_maskz_loadu_epi8(mask, src + i) : f);
  }
}

// One im2col row of Im2ColFill (tap kd, kh, kw of input plane `xc`; off_w and the valid
// [ow_lo, ow_hi) as computed there) for pixels [p0, p1) into dst[0, p1 - p0), when the window
// has one output plane, unit strides within it and the input as wide as the output: then the
// tap's valid output rows read one contiguous span of the plane, shifted; the columns outside
// [ow_lo, ow_hi) are set to `fill` afterwards (they are where that span leaves its rows).
template <typename T>
void ShiftedTap(const T* xc, const Window3& w, int64_t kd, int64_t kh, int64_t off_w, int64_t ow_lo,
                int64_t ow_hi, T fill, int64_t p0, int64_t p1, T* dst) {
  const int64_t width = w.out[2], in_size = w.in[0] * w.in[1] * w.in[2];
  const int64_t id = kd * w.dilation[0] - w.pad[0];
  const int64_t dh = kh * w.dilation[1] - w.pad[1];  // ih = oh + dh
  const int64_t oh_a = std::clamp<int64_t>(-dh, 0, w.out[1]);
  const int64_t oh_b =
      id < 0 || id >= w.in[0] ? oh_a : std::clamp<int64_t>(w.in[1] - dh, oh_a, w.out[1]);
  // Pixels [q0, q1) of the chunk lie in valid rows; x index of pixel q: q + shift.
  const int64_t q0 = std::clamp(oh_a * width, p0, p1), q1 = std::clamp(oh_b * width, q0, p1);
  CopyOrFillBytes<T>(dst, nullptr, q0 - p0, fill);
  CopyOrFillBytes<T>(dst + (q1 - p0), nullptr, p1 - q1, fill);
  const int64_t shift = (id * w.in[1] + dh) * width + off_w;
  const int64_t c0 = std::clamp(-shift, q0, q1), c1 = std::clamp(in_size - shift, c0, q1);
  if (c1 > c0) std::memcpy(dst + (c0 - p0), xc + (c0 + shift), static_cast<size_t>(c1 - c0));
  if (ow_lo == 0 && ow_hi == width) return;
  for (int64_t base = q0 / width * width; base < q1; base += width) {
    for (int64_t ow = 0; ow < ow_lo; ++ow) {
      if (base + ow >= q0 && base + ow < q1) dst[base + ow - p0] = fill;
    }
    for (int64_t ow = ow_hi; ow < width; ++ow) {
      if (base + ow >= q0 && base + ow < q1) dst[base + ow - p0] = fill;
    }
  }
}

// Output pixels [p0, p1) (flattened (od, oh, ow)) of the im2col matrix on the raw 8-bit values,
// with padded taps set to `fill` (the input zero point): col[(c, kd, kh, kw) * (p1 - p0) + p -
// p0] = x[c, id, ih, iw] for the tap's input position of pixel p, or `fill` outside the input
// (spatial.h's Im2Col geometry). `col` holds channels * kernel volume * (p1 - p0) values.
template <typename T>
void Im2ColFill(const T* x, int64_t channels, const Window3& w, T fill, int64_t p0, int64_t p1,
                T* col) {
  const int64_t in_size = w.in[0] * w.in[1] * w.in[2];
  const int64_t ld = p1 - p0, width = w.out[2];
  const int64_t r0 = p0 / width, od0 = r0 / w.out[1], oh0 = r0 % w.out[1];  // first output row
  // One output plane, unit strides within it and the input as wide as the output: ShiftedTap.
  const bool flat = w.out[0] == 1 && w.stride[1] == 1 && w.stride[2] == 1 && w.in[2] == width;
  T* dst = col;
  for (int64_t c = 0; c < channels; ++c) {
    const T* xc = x + c * in_size;
    for (int64_t kd = 0; kd < w.kernel[0]; ++kd) {
      for (int64_t kh = 0; kh < w.kernel[1]; ++kh) {
        for (int64_t kw = 0; kw < w.kernel[2]; ++kw) {
          const auto [off_w, ow_lo, ow_hi] = ValidTapColumns(w, kw);
          const int64_t sw = w.stride[2];
          if (flat) {
            ShiftedTap(xc, w, kd, kh, off_w, ow_lo, ow_hi, fill, p0, p1, dst);
            dst += ld;
            continue;
          }
          // Output rows (od, oh) meeting [p0, p1); [a, b) their ow range inside it.
          int64_t od = od0, oh = oh0;
          for (int64_t base = r0 * width; base < p1; base += width) {
            const int64_t a = std::max(p0, base) - base, b = std::min(p1, base + width) - base;
            T* row = dst + (base + a - p0);  // ow = a
            const int64_t id = od * w.stride[0] - w.pad[0] + kd * w.dilation[0];
            const int64_t ih = oh * w.stride[1] - w.pad[1] + kh * w.dilation[1];
            if (++oh == w.out[1]) {
              oh = 0;
              ++od;
            }
            if (id < 0 || id >= w.in[0] || ih < 0 || ih >= w.in[1]) {
              CopyOrFillBytes<T>(row, nullptr, b - a, fill);
              continue;
            }
            const T* xrow = xc + (id * w.in[1] + ih) * w.in[2] + off_w;
            const int64_t lo = std::clamp(ow_lo, a, b), hi = std::clamp(ow_hi, lo, b);
            CopyOrFillBytes<T>(row, nullptr, lo - a, fill);
            if (sw == 1) {
              CopyOrFillBytes<T>(row + (lo - a), xrow + lo, hi - lo, fill);
            } else {
              for (int64_t ow = lo; ow < hi; ++ow) row[ow - a] = xrow[ow * sw];
            }
            CopyOrFillBytes<T>(row + (hi - a), nullptr, b - hi, fill);
          }
          dst += ld;
        }
      }
    }
  }
}
SERVEML_SIMD_END

class IntConvKernel final : public Kernel {
 public:
  IntConvKernel(bool qlinear, WindowAttrs attrs, int64_t group, std::vector<int16_t> wpack,
                PackedWU8 wpack8)
      : qlinear_(qlinear),
        in_(qlinear ? kQLinearConvInputs : kConvIntegerInputs),
        attrs_(std::move(attrs)),
        group_(group),
        wpack_(std::move(wpack)),
        wpack8_(std::move(wpack8)) {}

  Status Run(KernelContext& ctx) const override {
    const char* op = qlinear_ ? "QLinearConv" : "ConvInteger";
    const Tensor* x = ctx.input(in_.x);
    const Tensor* w = ctx.input(in_.w);
    if (!x || !w) return InvalidInput(std::string(op) + " needs x and w");
    if (!Is8Bit(x->dtype())) return UnsupportedType(x->dtype(), op);
    if (!Is8Bit(w->dtype())) return UnsupportedType(w->dtype(), op);
    if (x->rank() < 3 || w->rank() != x->rank()) {
      return InvalidInput(std::string(op) + ": input " + ShapeToString(x->shape()) +
                          " and weight " + ShapeToString(w->shape()) +
                          " must have the same rank >= 3");
    }
    const int64_t batch = x->dim(0), c = x->dim(1), m = w->dim(0);
    if (c % group_ != 0 || m % group_ != 0 || w->dim(1) != c / group_) {
      return InvalidInput(std::string(op) + ": input " + ShapeToString(x->shape()) +
                          " and weight " + ShapeToString(w->shape()) + " do not match for group " +
                          std::to_string(group_));
    }
    const std::vector<int64_t> xs = DimsOf(*x), ws = DimsOf(*w);
    const std::vector<int64_t> in(xs.begin() + 2, xs.end()), kernel(ws.begin() + 2, ws.end());
    ASSIGN_OR_RETURN(Window win, ResolveWindow(attrs_, in, kernel));
    const Window3 w3 = To3D(win);
    std::vector<int64_t> out_shape{batch, m};
    for (size_t i = 0; i < win.k; ++i) out_shape.push_back(win.out[i]);
    const int64_t cg = c / group_, mg = m / group_;
    const int64_t out_size = w3.out[0] * w3.out[1] * w3.out[2];
    const int64_t in_size = w3.in[0] * w3.in[1] * w3.in[2];
    const int64_t kdim = cg * w3.kernel[0] * w3.kernel[1] * w3.kernel[2];
    RETURN_IF_ERROR(CheckWork(op, static_cast<double>(batch) * static_cast<double>(m) *
                                      static_cast<double>(cg) * Volume(win.out) *
                                      Volume(win.kernel)));

    ASSIGN_OR_RETURN(ZeroPoints zx,
                     ReadZeroPoints(ctx.input(in_.x_zp), x->dtype(), 1, 1, op, "x_zero_point"));
    const bool u8 = UseVnniU8();
    std::vector<int16_t> wrun;
    const std::vector<int16_t>* wp = &wpack_;
    PackedWU8 wrun8;
    const PackedWU8* wp8 = &wpack8_;
    if (u8 && !wpack8_.valid) {
      ASSIGN_OR_RETURN(wrun8, PackWeightsU8(*w, ctx.input(in_.w_zp), group_, op));
      wp8 = &wrun8;
    } else if (!u8 && wpack_.empty()) {
      ASSIGN_OR_RETURN(wrun, PackWeights(*w, ctx.input(in_.w_zp), op));
      wp = &wrun;
    }
    // QLinearConv: per-output-channel multipliers, output zero point, bias.
    std::vector<float> mult;
    ZeroPoints zy;
    DType out = DType::kInt32;
    const int32_t* bias = nullptr;
    if (qlinear_) {
      const Tensor* yzp = ctx.input(7);
      out = yzp ? yzp->dtype() : x->dtype();
      if (!Is8Bit(out)) return UnsupportedType(out, op);
      ASSIGN_OR_RETURN(zy, ReadZeroPoints(yzp, out, 1, 1, op, "y_zero_point"));
      ASSIGN_OR_RETURN(Scales sx, ReadScales(ctx.input(1), op, "x_scale"));
      ASSIGN_OR_RETURN(Scales sw, ReadScales(ctx.input(4), op, "w_scale"));
      ASSIGN_OR_RETURN(Scales sy, ReadScales(ctx.input(6), op, "y_scale"));
      ASSIGN_OR_RETURN(mult, Multipliers(sx, sw, sy, m, op));
      if (const Tensor* b = ctx.input(8)) {
        if (b->dtype() != DType::kInt32 || b->numel() != m) {
          return InvalidInput("QLinearConv: bias must be int32 with one value per output channel");
        }
        bias = b->data<int32_t>();
      }
    }
    ASSIGN_OR_RETURN(Tensor y, NewTensor(out, out_shape));
    if (y.numel() == 0) {
      *ctx.outputs[0] = std::move(y);
      return Status::Ok();
    }
    std::vector<int16_t>& col = Scratch<int16_t>(0);
    std::vector<int16_t>& bpack = Scratch<int16_t>(1);
    std::vector<uint8_t>& col8 = Scratch<uint8_t>(1);
    thread_local PackedBU8 bpack8;
    std::vector<int32_t>& acc = Scratch<int32_t>(2);
    // VNNI path: pixels per chunk, a multiple of kQc with its im2col (kdim bytes a pixel) near
    // kChunkBytes.
    constexpr int64_t kChunkBytes = int64_t{512} << 10;
    const int64_t chunk = std::min(
        out_size, std::max<int64_t>(kQc, kChunkBytes / std::max<int64_t>(kdim, 1) / kQc * kQc));
    if (u8) {
      col8.resize(static_cast<size_t>(kdim * chunk));
    } else {
      col.resize(static_cast<size_t>(kdim * out_size));
      bpack.resize(static_cast<size_t>(PackedBSize(kdim, out_size)));
    }
    if (qlinear_) acc.resize(static_cast<size_t>(mg * out_size));
    const int32_t zero = 0;
    const int32_t zp = zx.at(0);
    Status st = Dispatch8(x->dtype(), op, [&](auto tag) {
      using T = decltype(tag);
      const T* px = x->data<T>();
      for (int64_t img = 0; img < batch; ++img) {
        for (int64_t g = 0; g < group_; ++g) {
          const T* xg = px + (img * c + g * cg) * in_size;
          const int64_t ch0 = g * mg;  // first output channel of the group
          int32_t* dst = qlinear_ ? acc.data() : y.data<int32_t>() + (img * m + ch0) * out_size;
          if (u8) {
            // By chunks of output pixels, so their im2col and packed copies stay in cache.
            T* cp = reinterpret_cast<T*>(col8.data());
            const int64_t off = g * wp8->mp;
            for (int64_t p0 = 0; p0 < out_size; p0 += chunk) {
              const int64_t p1 = std::min(out_size, p0 + chunk);
              Im2ColFill(xg, cg, w3, static_cast<T>(zp), p0, p1, cp);
              PackBU8(cp, p1 - p0, kdim, p1 - p0, &zp, 0, &bpack8);
              IntGemmU8(wp8->data.data() + off * wp8->kq * 4, wp8->rowsum.data() + off,
                        wp8->za.data() + off, mg, bpack8, dst + p0, out_size);
            }
          } else {
            Im2Col(xg, cg, w3, col.data(),
                   [zp](T v) { return static_cast<int16_t>(static_cast<int32_t>(v) - zp); });
            PackB(col.data(), out_size, kdim, out_size, &zero, 0, bpack.data());
            IntGemm(wp->data() + g * mg * EvenK(kdim), mg, kdim, bpack.data(), out_size, dst,
                    out_size);
          }
          if (!qlinear_) continue;
          Status rq = Dispatch8(out, op, [&](auto qtag) {
            using Q = decltype(qtag);
            Q* dst = y.data<Q>() + (img * m + ch0) * out_size;
            for (int64_t r = 0; r < mg; ++r) {
              const int32_t b = bias ? bias[ch0 + r] : 0;
              const float mu = mult[static_cast<size_t>(ch0 + r)];
              RequantizeRow<Q>(acc.data() + r * out_size, out_size, &mu, 0, b, zy.at(0),
                               dst + r * out_size);
            }
            return Status::Ok();
          });
          RETURN_IF_ERROR(rq);
        }
      }
      return Status::Ok();
    });
    RETURN_IF_ERROR(st);
    *ctx.outputs[0] = std::move(y);
    return Status::Ok();
  }

 private:
  bool qlinear_;
  ConvInputs in_;
  WindowAttrs attrs_;
  int64_t group_;
  std::vector<int16_t> wpack_;  // constant weights packed at load for the int16 path (else empty)
  PackedWU8 wpack8_;            // constant weights packed at load for the VNNI path (else invalid)
};

Result<KernelPtr> MakeIntConv(const KernelInit& init, bool qlinear) {
  const char* op = qlinear ? "QLinearConv" : "ConvInteger";
  const size_t n_in = init.node.input.size();
  if (qlinear ? (n_in < 8 || n_in > 9) : (n_in < 2 || n_in > 4)) {
    return InvalidInput(std::string(op) + ": wrong number of inputs");
  }
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(WindowAttrs wa, ParseWindowAttrs(attrs, false));
  ASSIGN_OR_RETURN(int64_t group, attrs.Int("group", 1));
  if (group <= 0) return InvalidInput(std::string(op) + ": group must be positive");
  const ConvInputs in = qlinear ? kQLinearConvInputs : kConvIntegerInputs;
  std::vector<int16_t> wpack;
  PackedWU8 wpack8;
  auto const_at = [&](size_t i) {
    return i < init.const_inputs.size() ? init.const_inputs[i] : nullptr;
  };
  const Tensor* w = const_at(in.w);
  const bool has_wzp = in.w_zp < n_in && !init.node.input[in.w_zp].empty();
  if (w && w->rank() >= 3 && Is8Bit(w->dtype()) && w->numel() > 0 &&
      (!has_wzp || const_at(in.w_zp))) {
    if (!UseVnniU8()) {
      ASSIGN_OR_RETURN(wpack, PackWeights(*w, const_at(in.w_zp), op));
    } else if (w->dim(0) % group == 0) {  // (else Run reports the mismatch)
      ASSIGN_OR_RETURN(wpack8, PackWeightsU8(*w, const_at(in.w_zp), group, op));
    }
  }
  return KernelPtr(
      new IntConvKernel(qlinear, std::move(wa), group, std::move(wpack), std::move(wpack8)));
}

}  // namespace

Result<KernelPtr> MakeMatMulInteger(const KernelInit& init) {
  const size_t n_in = init.node.input.size();
  if (n_in < 2 || n_in > 4) return InvalidInput("MatMulInteger needs 2 to 4 inputs");
  ASSIGN_OR_RETURN(ConstPackedB cb, PackConstB(init, 1, 3, "MatMulInteger"));
  return KernelPtr(new MatMulIntegerKernel(std::move(cb)));
}

Result<KernelPtr> MakeQLinearMatMul(const KernelInit& init) {
  if (init.node.input.size() != 8) return InvalidInput("QLinearMatMul needs 8 inputs");
  ASSIGN_OR_RETURN(ConstPackedB cb, PackConstB(init, 3, 5, "QLinearMatMul"));
  return KernelPtr(new QLinearMatMulKernel(std::move(cb)));
}

Result<KernelPtr> MakeConvInteger(const KernelInit& init) { return MakeIntConv(init, false); }

Result<KernelPtr> MakeQLinearConv(const KernelInit& init) { return MakeIntConv(init, true); }

}  // namespace serveml::engine
