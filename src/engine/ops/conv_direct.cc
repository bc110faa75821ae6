#include "engine/ops/conv_direct.h"

#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "engine/isa.h"
#include "engine/ops/simd_target.h"

namespace serveml::engine {
namespace {

// One output vector: `count` pixels of one output row.
struct DirectTask {
  int64_t in_off;   // offset of tap (0, 0) of the first pixel in a padded input plane
  int64_t out_off;  // offset of the first pixel in an output plane
  int count;        // 1..lanes
};

struct DirectArgs {
  const float* xp;      // padded input [channels][plane] (+ one vector of slack)
  const int64_t* koff;  // per reduction step k = (c, kh, kw): offset of that tap in xp
  int64_t kdim;
  const float* w;     // packed weights (PackDirectConvWeights)
  const float* bias;  // [out_channels] or null
  float* y;           // [out_channels][out_plane]
  int64_t out_plane, out_channels;
  const DirectTask* tasks;
  int64_t ntasks;
  bool relu;  // store max(v, 0)
};

struct DirectPadArgs {
  const float* x;  // [channels][in_h][in_w]
  float* xp;       // [channels][hp][wp]
  int64_t channels, in_h, in_w, hp, wp, pad_top, pad_left;
};

SERVEML_SIMD_BEGIN("avx512f,avx2,fma")
namespace avx512 {
struct V {
  using Reg = __m512;
  static constexpr int kLanes = 16;
  static constexpr int kMB = 8;  // 8 x 3 accumulators + 3 inputs + 1 weight of 32 registers
  static constexpr int kPV = 3;
  static Reg Zero() { return _mm512_setzero_ps(); }
  static Reg Load(const float* p) { return _mm512_loadu_ps(p); }
  // The first `count` floats at p, zeros after them; reads nothing past them.
  static Reg LoadPartial(const float* p, int count) {
    return _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << count) - 1u), p);
  }
  static Reg Bcast(const float* p) { return _mm512_set1_ps(*p); }
  static Reg Fma(Reg a, Reg b, Reg c) { return _mm512_fmadd_ps(a, b, c); }
  // Either operand NaN gives `b` (the second operand). The all-ones zero-masking form is plain
  // vmaxps without the undefined pass-through operand GCC warns about.
  static Reg Max(Reg a, Reg b) { return _mm512_maskz_max_ps(static_cast<__mmask16>(0xFFFF), a, b); }
  static void Store(float* p, Reg v, int count) {
    if (count == kLanes) {
      _mm512_storeu_ps(p, v);
    } else {
      _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << count) - 1u), v);
    }
  }
};
#include "engine/ops/conv_direct_kernel.inc"
}  // namespace avx512
SERVEML_SIMD_END

SERVEML_SIMD_BEGIN("avx2,fma")
namespace avx2 {
struct V {
  using Reg = __m256;
  static constexpr int kLanes = 8;
  static constexpr int kMB = 4;  // 4 x 3 accumulators + 3 inputs + 1 weight of 16 registers
  static constexpr int kPV = 3;
  static Reg Zero() { return _mm256_setzero_ps(); }
  static Reg Load(const float* p) { return _mm256_loadu_ps(p); }
  // The first `count` floats at p, zeros after them; reads nothing past them.
  static Reg LoadPartial(const float* p, int count) {
    if (count == kLanes) return _mm256_loadu_ps(p);
    return _mm256_maskload_ps(p, TailMask(count));
  }
  // Lanes [0, count) set.
  static __m256i TailMask(int count) {
    static const int kMask[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kMask + 8 - count));
  }
  static Reg Bcast(const float* p) { return _mm256_broadcast_ss(p); }
  static Reg Fma(Reg a, Reg b, Reg c) { return _mm256_fmadd_ps(a, b, c); }
  // Either operand NaN gives `b` (the second operand).
  static Reg Max(Reg a, Reg b) { return _mm256_max_ps(a, b); }
  static void Store(float* p, Reg v, int count) {
    if (count == kLanes) {
      _mm256_storeu_ps(p, v);
      return;
    }
    _mm256_maskstore_ps(p, TailMask(count), v);
  }
};
#include "engine/ops/conv_direct_kernel.inc"
}  // namespace avx2
SERVEML_SIMD_END

// Vector width of the kernel this CPU runs: 16 (AVX-512), 8 (AVX2+FMA) or 0 (none).
int Lanes();

// Output channels per register block of this CPU's kernel.
int ChannelBlock() { return Lanes() == 16 ? avx512::V::kMB : avx2::V::kMB; }

int Lanes() {
  static const int lanes = UseIsa(Isa::kAvx512) ? 16 : UseIsa(Isa::kAvx2) ? 8 : 0;
  return lanes;
}

}  // namespace

bool DirectConvSuits(const DirectConvGeometry& g) {
  const int lanes = Lanes();
  if (lanes == 0) return false;
  if (g.channels <= 0 || g.out_channels <= 0 || g.in_h <= 0 || g.in_w <= 0 || g.out_h <= 0 ||
      g.out_w <= 0 || g.kernel_h <= 0 || g.kernel_w <= 0 || g.stride_h <= 0 || g.dilation_h <= 0 ||
      g.dilation_w <= 0 || g.pad_top < 0 || g.pad_left < 0) {
    return false;
  }
  // At least half of the lanes of every row's vectors carry output pixels.
  const int64_t vectors_per_row = (g.out_w + lanes - 1) / lanes;
  if (2 * g.out_w < vectors_per_row * lanes) return false;
  // The reduction (weights of a channel block and the input rows it reads) stays cache-sized,
  // and the padded input plane stays a modest scratch buffer.
  constexpr int64_t kMaxKdim = 2304, kMaxSide = 1 << 14;
  if (g.kernel_h > kMaxSide || g.kernel_w > kMaxSide || g.channels > kMaxKdim) return false;
  if (g.channels * g.kernel_h * g.kernel_w > kMaxKdim) return false;
  if (g.out_h > kMaxSide || g.out_w > kMaxSide || g.stride_h > kMaxSide ||
      g.dilation_h > kMaxSide || g.dilation_w > kMaxSide) {
    return false;
  }
  return true;
}

void PackDirectConvWeights(const float* w, int64_t out_channels, int64_t kdim, float* packed) {
  const int64_t mb = ChannelBlock();
  for (int64_t m0 = 0; m0 < out_channels; m0 += mb) {
    const int64_t width = std::min(mb, out_channels - m0);
    float* dst = packed + m0 * kdim;
    for (int64_t k = 0; k < kdim; ++k) {
      for (int64_t i = 0; i < width; ++i) dst[k * width + i] = w[(m0 + i) * kdim + k];
    }
  }
}

void DirectConv2D(const DirectConvGeometry& g, const float* x, int64_t x_stride, const float* w,
                  const float* bias, float* y, int64_t y_stride, int64_t images, bool relu) {
  const int lanes = Lanes();
  // Padded input: every row and column a tap can touch, zeros outside x.
  const int64_t hp = (g.out_h - 1) * g.stride_h + (g.kernel_h - 1) * g.dilation_h + 1;
  const int64_t wp = g.out_w + (g.kernel_w - 1) * g.dilation_w;
  const int64_t plane = hp * wp;
  thread_local std::vector<float> xpad;
  const size_t need = static_cast<size_t>(g.channels * plane + lanes);
  if (xpad.size() < need) xpad.resize(need);
  float* xp = xpad.data();
  std::fill(xp + g.channels * plane, xp + need, 0.0f);  // slack read by the last vectors

  thread_local std::vector<int64_t> koff;
  koff.clear();
  for (int64_t c = 0; c < g.channels; ++c) {
    for (int64_t kh = 0; kh < g.kernel_h; ++kh) {
      for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
        koff.push_back(c * plane + kh * g.dilation_h * wp + kw * g.dilation_w);
      }
    }
  }
  thread_local std::vector<DirectTask> tasks;
  tasks.clear();
  for (int64_t oh = 0; oh < g.out_h; ++oh) {
    for (int64_t ow = 0; ow < g.out_w; ow += lanes) {
      tasks.push_back({oh * g.stride_h * wp + ow, oh * g.out_w + ow,
                       static_cast<int>(std::min<int64_t>(lanes, g.out_w - ow))});
    }
  }
  DirectArgs a;
  a.xp = xp;
  a.koff = koff.data();
  a.kdim = static_cast<int64_t>(koff.size());
  a.w = w;
  a.bias = bias;
  a.out_plane = g.out_h * g.out_w;
  a.out_channels = g.out_channels;
  a.tasks = tasks.data();
  a.ntasks = static_cast<int64_t>(tasks.size());
  a.relu = relu;
  for (int64_t i = 0; i < images; ++i) {
    DirectPadArgs pad{x, xp, g.channels, g.in_h, g.in_w, hp, wp, g.pad_top, g.pad_left};
    pad.x = x + i * x_stride;
    a.y = y + i * y_stride;
    if (lanes == 16) {
      avx512::PadInput(pad);
      avx512::RunTasks(a);
    } else {
      avx2::PadInput(pad);
      avx2::RunTasks(a);
    }
  }
}

}  // namespace serveml::engine
