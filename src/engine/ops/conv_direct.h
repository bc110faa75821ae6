// Direct float convolution over NCHW planes for 1-D/2-D windows with unit horizontal
// stride: output pixels of a row are vector lanes, output channels are broadcast weights, so
// no im2col matrix is built. Register-blocked kernels for AVX-512 and AVX2+FMA, picked at
// run time from the CPU's features; other CPUs (and geometries the kernel does not suit)
// use Conv's im2col + GEMM path.
//
// Thread safety: all functions may be called concurrently (scratch is thread_local).
#pragma once

#include <cstdint>

namespace serveml::engine {

// One image and one group of a 2-D convolution (a 1-D one has in_h = out_h = kernel_h = 1).
// Pads are the leading pads; trailing padding is implied by out_h/out_w.
struct DirectConvGeometry {
  int64_t channels = 0;      // input channels of the group
  int64_t out_channels = 0;  // output channels of the group
  int64_t in_h = 0, in_w = 0, out_h = 0, out_w = 0;
  int64_t kernel_h = 0, kernel_w = 0;
  int64_t stride_h = 1;  // the horizontal stride is 1
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t pad_top = 0, pad_left = 0;
};

// True when this CPU has a direct kernel and `g` suits it (positive sizes, a row wide enough
// to fill most vector lanes, a reduction small enough to stay in cache).
bool DirectConvSuits(const DirectConvGeometry& g);

// Reorders weights w [out_channels][kdim] (kdim = channels * kernel_h * kernel_w, the ONNX
// layout of one group) into the layout DirectConv2D reads: blocks of the kernel's output
// channel count, each [kdim][block width], so one reduction step reads one cache line of
// weights. The result has out_channels * kdim floats, like the input, so groups packed one
// after another keep their offsets. Packing depends on this CPU's kernel: pack on the
// machine that runs.
void PackDirectConvWeights(const float* w, int64_t out_channels, int64_t kdim, float* packed);

// For each of `images` images i: y_i[m, oh, ow] = bias[m] + sum over c, kh, kw of
// w[m, c, kh, kw] * x_i[c, oh*stride_h - pad_top + kh*dilation_h, ow - pad_left +
// kw*dilation_w] (zero outside x_i), where x_i = x + i * x_stride is [channels, in_h, in_w]
// and y_i = y + i * y_stride is [out_channels, out_h, out_w], each contiguous. `packed_w` is
// w [out_channels, channels, kernel_h, kernel_w] after PackDirectConvWeights; `bias` may be
// null. With `relu`, every y value is stored as ReluOf(v) (kernel.h). The geometry's tap and
// row tables are built once for all images. Requires DirectConvSuits(g).
void DirectConv2D(const DirectConvGeometry& g, const float* x, int64_t x_stride,
                  const float* packed_w, const float* bias, float* y, int64_t y_stride,
                  int64_t images, bool relu = false);

}  // namespace serveml::engine
