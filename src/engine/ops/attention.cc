// Attention (opset 23, also reading opset 24's nonpad_kv_seqlen) and RotaryEmbedding (opset 23),
// float32/float64 (Attention also float16, computed in float32), with the semantics of ONNX's
// reference implementation (onnx/reference/ops/op_attention.py, op_rotary_embedding.py).
//
// Attention runs per (batch, query head): S = scale * Q K^T as one GEMM, the bias (attn_mask,
// causal mask, key padding) added in place, softcap, a row softmax, then Y = P V as a second
// GEMM. 3-D inputs [batch, seq, heads * head_size] are read in place through row strides (no
// transpose copies); a query head h reads key/value head h / (q_num_heads / kv_num_heads)
// (grouped-query attention). The key/value sequence is past_key/past_value followed by K/V;
// present_key/present_value are that concatenation in [batch, kv_heads, total_seq, head_size].
#include <algorithm>
#include <climits>
#include <cmath>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "engine/float16.h"
#include "engine/kernel.h"
#include "engine/ops/dispatch.h"
#include "engine/ops/gemm.h"
#include "engine/ops/ops.h"

namespace serveml::engine {
namespace {

constexpr int32_t kOnnxFloat = 1;
constexpr int32_t kOnnxFloat16 = 10;
constexpr int32_t kOnnxDouble = 11;
constexpr int32_t kOnnxBFloat16 = 16;

// C[M,N] = alpha * A * op(B), row-major with row strides lda/ldb/ldc.
template <typename T>
void Gemm(bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda, const T* b,
          int64_t ldb, T* c, int64_t ldc) {
  if constexpr (std::is_same_v<T, float>) {
    Sgemm(false, tb, m, n, k, alpha, a, lda, b, ldb, 0.0f, c, ldc);
  } else {
    Dgemm(false, tb, m, n, k, alpha, a, lda, b, ldb, 0.0, c, ldc);
  }
}

// In-place softmax of one row, computed in Acc precision.
template <typename Acc, typename T>
void SoftmaxRow(T* row, int64_t n) {
  Acc mx = static_cast<Acc>(row[0]);
  for (int64_t j = 1; j < n; ++j) mx = std::max(mx, static_cast<Acc>(row[j]));
  Acc sum = 0;
  for (int64_t j = 0; j < n; ++j) {
    const Acc e = std::exp(static_cast<Acc>(row[j]) - mx);
    row[j] = static_cast<T>(e);
    sum += e;
  }
  const Acc inv = Acc(1) / sum;
  for (int64_t j = 0; j < n; ++j) row[j] = static_cast<T>(static_cast<Acc>(row[j]) * inv);
}

// Where the rows of one head's [seq, head_size] matrix live in a 3-D or 4-D tensor.
struct HeadLayout {
  int64_t batch_stride, head_stride, row_stride;
};

HeadLayout LayoutOf(bool four_d, int64_t heads, int64_t seq, int64_t head_size) {
  if (four_d) return {heads * seq * head_size, seq * head_size, head_size};
  return {seq * heads * head_size, head_size, heads * head_size};
}

struct AttentionAttrs {
  bool is_causal = false;
  bool has_scale = false;
  float scale = 0;
  int64_t q_num_heads = 0;   // 0: absent
  int64_t kv_num_heads = 0;  // 0: absent
  bool has_softcap = false;
  float softcap = 0;
  int64_t qk_mode = 0;
  int64_t softmax_precision = 0;  // 0: absent (the input type)
};

class AttentionKernel final : public Kernel {
 public:
  explicit AttentionKernel(AttentionAttrs a) : a_(a) {}

  Status Run(KernelContext& ctx) const override {
    const Tensor* q = ctx.input(0);
    const Tensor* k = ctx.input(1);
    const Tensor* v = ctx.input(2);
    if (!q || !k || !v) return InvalidInput("Attention needs inputs Q, K and V");
    if (k->dtype() != q->dtype() || v->dtype() != q->dtype()) {
      return InvalidInput("Attention Q, K and V have different element types");
    }
    if (q->dtype() == DType::kFloat16) return RunHalf(ctx);
    return Dispatch<SERVEML_FLOAT_TYPES>(
        q->dtype(), "Attention", [&](auto tag) -> Status { return RunTyped<decltype(tag)>(ctx); });
  }

 private:
  template <typename T>
  Status RunTyped(KernelContext& ctx) const {
    const Tensor& q = *ctx.input(0);
    const Tensor& k = *ctx.input(1);
    const Tensor& v = *ctx.input(2);
    const Tensor* mask = ctx.input(3);
    const Tensor* past_k = ctx.input(4);
    const Tensor* past_v = ctx.input(5);
    const Tensor* nonpad = ctx.input(6);
    const size_t rank = q.rank();
    if ((rank != 3 && rank != 4) || k.rank() != rank || v.rank() != rank) {
      return InvalidInput("Attention Q, K and V must all be 3-D or all 4-D, got " +
                          ShapeToString(q.shape()) + ", " + ShapeToString(k.shape()) + " and " +
                          ShapeToString(v.shape()));
    }
    const bool four_d = rank == 4;
    const int64_t batch = q.dim(0);
    int64_t hq, hkv, sq, skv, d, dk, dv;
    if (four_d) {
      hq = q.dim(1), sq = q.dim(2), d = q.dim(3);
      hkv = k.dim(1), skv = k.dim(2), dk = k.dim(3);
      dv = v.dim(3);
      if (v.dim(1) != hkv || v.dim(2) != skv) {
        return InvalidInput("Attention K " + ShapeToString(k.shape()) + " and V " +
                            ShapeToString(v.shape()) + " differ in heads or sequence length");
      }
    } else {
      if (a_.q_num_heads <= 0 || a_.kv_num_heads <= 0) {
        return InvalidInput("Attention with 3-D inputs needs q_num_heads and kv_num_heads");
      }
      hq = a_.q_num_heads, hkv = a_.kv_num_heads;
      sq = q.dim(1), skv = k.dim(1);
      if (q.dim(2) % hq != 0 || k.dim(2) % hkv != 0 || v.dim(2) % hkv != 0) {
        return InvalidInput("Attention hidden sizes " + ShapeToString(q.shape()) + ", " +
                            ShapeToString(k.shape()) + ", " + ShapeToString(v.shape()) +
                            " are not divisible by the head counts");
      }
      d = q.dim(2) / hq, dk = k.dim(2) / hkv, dv = v.dim(2) / hkv;
      if (v.dim(1) != skv) {
        return InvalidInput("Attention K and V have different sequence lengths");
      }
    }
    if (k.dim(0) != batch || v.dim(0) != batch) {
      return InvalidInput("Attention Q, K and V have different batch sizes");
    }
    if (dk != d) {
      return InvalidInput("Attention Q head size " + std::to_string(d) +
                          " differs from K head size " + std::to_string(dk));
    }
    if (hkv <= 0 || hq % hkv != 0) {
      return InvalidInput("Attention q_num_heads " + std::to_string(hq) +
                          " is not a multiple of kv_num_heads " + std::to_string(hkv));
    }
    if ((past_k == nullptr) != (past_v == nullptr)) {
      return InvalidInput("Attention needs past_key and past_value together");
    }
    int64_t past = 0;
    if (past_k) {
      if (past_k->dtype() != q.dtype() || past_v->dtype() != q.dtype()) {
        return InvalidInput("Attention past_key/past_value element type differs from Q");
      }
      if (past_k->rank() != 4 || past_v->rank() != 4 || past_k->dim(0) != batch ||
          past_k->dim(1) != hkv || past_k->dim(3) != d || past_v->dim(0) != batch ||
          past_v->dim(1) != hkv || past_v->dim(3) != dv || past_v->dim(2) != past_k->dim(2)) {
        return InvalidInput("Attention past_key " + ShapeToString(past_k->shape()) +
                            " / past_value " + ShapeToString(past_v->shape()) +
                            " do not match [batch, kv_num_heads, past, head_size]");
      }
      past = past_k->dim(2);
    }
    const int64_t total = past + skv;
    if (sq > INT_MAX || total > INT_MAX || d > INT_MAX || dv > INT_MAX) {
      return InvalidInput("Attention dimensions exceed the supported size");
    }
    // Q.K^T and P.V for every query head.
    RETURN_IF_ERROR(CheckWork("Attention", static_cast<double>(batch) * static_cast<double>(hq) *
                                               static_cast<double>(sq) *
                                               static_cast<double>(total) *
                                               static_cast<double>(d + dv)));

    // Key/value sources: K/V in place, or the past + new concatenation.
    const bool want_present = ctx.num_outputs() > 1;
    const T* kbase = k.data<T>();
    const T* vbase = v.data<T>();
    HeadLayout kl = LayoutOf(four_d, hkv, skv, d);
    HeadLayout vl = LayoutOf(four_d, hkv, skv, dv);
    Tensor present_k, present_v;
    if (past_k || (want_present && !four_d)) {
      ASSIGN_OR_RETURN(present_k, NewTensor(q.dtype(), {batch, hkv, total, d}));
      ASSIGN_OR_RETURN(present_v, NewTensor(q.dtype(), {batch, hkv, total, dv}));
      Concat(past_k, k, kl, batch, hkv, past, skv, d, present_k.data<T>());
      Concat(past_v, v, vl, batch, hkv, past, skv, dv, present_v.data<T>());
      kbase = present_k.data<T>();
      vbase = present_v.data<T>();
      kl = LayoutOf(true, hkv, total, d);
      vl = LayoutOf(true, hkv, total, dv);
    } else if (want_present) {
      present_k = k;  // 4-D without past: the present cache is K/V itself
      present_v = v;
    }

    // attn_mask: broadcast to [batch, hq, sq, total]; columns past its last dim are masked.
    int64_t mask_len = 0, ms_b = 0, ms_h = 0, ms_q = 0;
    const bool mask_bool = mask && mask->dtype() == DType::kBool;
    if (mask) {
      if (!mask_bool && mask->dtype() != q.dtype()) {
        return InvalidInput("Attention attn_mask must be bool or Q's element type, got " +
                            std::string(DTypeName(mask->dtype())));
      }
      const int64_t mr = static_cast<int64_t>(mask->rank());
      if (mr < 1 || mr > 4) {
        return InvalidInput("Attention attn_mask must have rank 1 to 4, got " +
                            ShapeToString(mask->shape()));
      }
      mask_len = mask->dim(mr - 1);
      if (mask_len > total) {
        return InvalidInput("Attention attn_mask " + ShapeToString(mask->shape()) +
                            " is longer than the total key sequence " + std::to_string(total));
      }
      const int64_t target[3] = {batch, hq, sq};  // dims -4, -3, -2
      int64_t* strides[3] = {&ms_b, &ms_h, &ms_q};
      int64_t stride = mask_len;
      for (int64_t j = 2; j >= 0; --j) {
        const int64_t ax = mr - 1 - (3 - j);  // mask axis aligned with target[j]
        if (ax < 0) break;
        const int64_t md = mask->dim(ax);
        if (md != target[j] && md != 1) {
          return InvalidInput("Attention attn_mask " + ShapeToString(mask->shape()) +
                              " cannot be broadcast to [" + std::to_string(batch) + ", " +
                              std::to_string(hq) + ", " + std::to_string(sq) + ", " +
                              std::to_string(total) + "]");
        }
        *strides[j] = md == 1 ? 0 : stride;
        stride *= md;
      }
    }
    const int64_t* pad_len = nullptr;
    if (nonpad) {
      if (nonpad->dtype() != DType::kInt64 || nonpad->numel() != batch) {
        return InvalidInput("Attention nonpad_kv_seqlen must be int64 with one entry per batch");
      }
      pad_len = nonpad->data<int64_t>();
    }

    const bool want_qk = ctx.num_outputs() > 3;
    ASSIGN_OR_RETURN(Tensor y,
                     NewTensor(q.dtype(), four_d ? std::vector<int64_t>{batch, hq, sq, dv}
                                                 : std::vector<int64_t>{batch, sq, hq * dv}));
    Tensor qk;
    if (want_qk) {
      ASSIGN_OR_RETURN(qk, NewTensor(q.dtype(), {batch, hq, sq, total}));
    }
    const HeadLayout ql = LayoutOf(four_d, hq, sq, d);
    const HeadLayout yl = LayoutOf(four_d, hq, sq, dv);
    const T scale = a_.has_scale ? static_cast<T>(a_.scale)
                                 : static_cast<T>(1.0 / std::sqrt(static_cast<double>(d)));
    const T neg_inf = -std::numeric_limits<T>::infinity();
    const int64_t group = hq / hkv;
    std::vector<T> s(static_cast<size_t>(sq * total));
    const T* pq = q.data<T>();
    T* py = y.data<T>();
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t h = 0; h < hq; ++h) {
        if (sq == 0) continue;
        const int64_t kvh = h / group;
        const T* qh = pq + b * ql.batch_stride + h * ql.head_stride;
        const T* kh = kbase + b * kl.batch_stride + kvh * kl.head_stride;
        const T* vh = vbase + b * vl.batch_stride + kvh * vl.head_stride;
        T* yh = py + b * yl.batch_stride + h * yl.head_stride;
        T* qk_out = want_qk ? qk.data<T>() + (b * hq + h) * sq * total : nullptr;
        if (total == 0) continue;
        if (d > 0) {
          Gemm<T>(true, sq, total, d, scale, qh, ql.row_stride, kh, kl.row_stride, s.data(), total);
        } else {
          std::fill(s.begin(), s.end(), T(0));
        }
        if (qk_out && a_.qk_mode == 0) std::copy(s.begin(), s.end(), qk_out);
        // Bias: attn_mask, causal mask (upper-left aligned after the past), key padding.
        for (int64_t i = 0; i < sq; ++i) {
          T* row = s.data() + i * total;
          if (mask) {
            const int64_t off = b * ms_b + h * ms_h + i * ms_q;
            if (mask_bool) {
              const bool* m = mask->data<bool>() + off;
              for (int64_t j = 0; j < mask_len; ++j) {
                if (!m[j]) row[j] = neg_inf;
              }
            } else {
              const T* m = mask->data<T>() + off;
              for (int64_t j = 0; j < mask_len; ++j) row[j] += m[j];
            }
            for (int64_t j = mask_len; j < total; ++j) row[j] = neg_inf;
          }
          if (a_.is_causal) {
            for (int64_t j = std::max<int64_t>(i + past + 1, 0); j < total; ++j) row[j] = neg_inf;
          }
          if (pad_len) {
            for (int64_t j = std::max<int64_t>(pad_len[b], 0); j < total; ++j) row[j] = neg_inf;
          }
        }
        if (qk_out && a_.qk_mode == 1) std::copy(s.begin(), s.end(), qk_out);
        if (a_.has_softcap) {
          if (a_.softcap > 0) {
            const T cap = static_cast<T>(a_.softcap);
            for (T& x : s) x = cap * std::tanh(x / cap);
          }
          if (qk_out && a_.qk_mode == 2) std::copy(s.begin(), s.end(), qk_out);
        }
        for (int64_t i = 0; i < sq; ++i) {
          T* row = s.data() + i * total;
          if (a_.softmax_precision == kOnnxDouble) {
            SoftmaxRow<double>(row, total);
          } else if (a_.softmax_precision != 0) {
            SoftmaxRow<float>(row, total);
          } else {
            SoftmaxRow<T>(row, total);
          }
        }
        if (qk_out && a_.qk_mode == 3) std::copy(s.begin(), s.end(), qk_out);
        if (dv > 0) {
          Gemm<T>(false, sq, dv, total, T(1), s.data(), total, vh, vl.row_stride, yh,
                  yl.row_stride);
        }
      }
    }
    *ctx.outputs[0] = std::move(y);
    if (ctx.num_outputs() > 1) *ctx.outputs[1] = std::move(present_k);
    if (ctx.num_outputs() > 2) *ctx.outputs[2] = std::move(present_v);
    if (want_qk) *ctx.outputs[3] = std::move(qk);
    return Status::Ok();
  }

  // float16: float16 inputs are widened to float32, the float32 path runs, the outputs are
  // rounded back to float16.
  Status RunHalf(KernelContext& ctx) const {
    std::vector<Tensor> wide(ctx.num_inputs());
    std::vector<const Tensor*> in(ctx.num_inputs(), nullptr);
    for (size_t i = 0; i < ctx.num_inputs(); ++i) {
      const Tensor* t = ctx.input(i);
      if (t && t->dtype() == DType::kFloat16) {
        ASSIGN_OR_RETURN(wide[i], NewTensor(DType::kFloat32, t->shape()));
        const uint16_t* src = t->data<uint16_t>();
        float* dst = wide[i].data<float>();
        for (int64_t e = 0; e < t->numel(); ++e) dst[e] = HalfToFloat(src[e]);
        t = &wide[i];
      }
      in[i] = t;
    }
    std::vector<Tensor> out(ctx.num_outputs());
    std::vector<Tensor*> out_ptrs;
    for (Tensor& t : out) out_ptrs.push_back(&t);
    KernelContext sub{in, out_ptrs};
    RETURN_IF_ERROR(RunTyped<float>(sub));
    for (size_t i = 0; i < out.size(); ++i) {
      if (!out[i].defined()) continue;
      ASSIGN_OR_RETURN(Tensor h, NewTensor(DType::kFloat16, out[i].shape()));
      const float* src = out[i].data<float>();
      uint16_t* dst = h.data<uint16_t>();
      for (int64_t e = 0; e < h.numel(); ++e) dst[e] = FloatToHalf(src[e]);
      *ctx.outputs[i] = std::move(h);
    }
    return Status::Ok();
  }

  // dst[b, h] = past[b, h] (if any) followed by x's rows for head h (x 3-D or 4-D per `xl`).
  template <typename T>
  static void Concat(const Tensor* past, const Tensor& x, const HeadLayout& xl, int64_t batch,
                     int64_t heads, int64_t past_len, int64_t seq, int64_t hs, T* dst) {
    const T* pp = past ? past->data<T>() : nullptr;
    const T* px = x.data<T>();
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t h = 0; h < heads; ++h) {
        if (pp) {
          const T* src = pp + (b * heads + h) * past_len * hs;
          dst = std::copy(src, src + past_len * hs, dst);
        }
        const T* src = px + b * xl.batch_stride + h * xl.head_stride;
        for (int64_t i = 0; i < seq; ++i) {
          dst = std::copy(src + i * xl.row_stride, src + i * xl.row_stride + hs, dst);
        }
      }
    }
  }

  AttentionAttrs a_;
};

class RotaryEmbeddingKernel final : public Kernel {
 public:
  RotaryEmbeddingKernel(bool interleaved, int64_t rotary_dim, int64_t num_heads)
      : interleaved_(interleaved), rotary_dim_(rotary_dim), num_heads_(num_heads) {}

  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    const Tensor* cos = ctx.input(1);
    const Tensor* sin = ctx.input(2);
    const Tensor* pos = ctx.input(3);
    if (!x || !cos || !sin)
      return InvalidInput("RotaryEmbedding needs input, cos_cache, sin_cache");
    if (cos->dtype() != x->dtype() || sin->dtype() != x->dtype()) {
      return InvalidInput("RotaryEmbedding cos_cache/sin_cache element type differs from input");
    }
    if (x->rank() != 3 && x->rank() != 4) {
      return InvalidInput("RotaryEmbedding input must be 3-D or 4-D, got " +
                          ShapeToString(x->shape()));
    }
    const bool four_d = x->rank() == 4;
    const int64_t batch = x->dim(0);
    int64_t heads, seq, hs;
    if (four_d) {
      heads = x->dim(1), seq = x->dim(2), hs = x->dim(3);
    } else {
      if (num_heads_ <= 0) {
        return InvalidInput("RotaryEmbedding with a 3-D input needs the num_heads attribute");
      }
      heads = num_heads_, seq = x->dim(1);
      if (x->dim(2) % heads != 0) {
        return InvalidInput("RotaryEmbedding hidden size " + std::to_string(x->dim(2)) +
                            " is not divisible by num_heads " + std::to_string(heads));
      }
      hs = x->dim(2) / heads;
    }
    const int64_t rot = rotary_dim_ > 0 ? rotary_dim_ : hs;
    if (rot > hs || rot % 2 != 0) {
      return InvalidInput("RotaryEmbedding rotary_embedding_dim " + std::to_string(rot) +
                          " must be even and at most the head size " + std::to_string(hs));
    }
    const int64_t half = rot / 2;
    int64_t max_pos = 0;
    if (pos) {
      if (pos->dtype() != DType::kInt64 || pos->rank() != 2 || pos->dim(0) != batch ||
          pos->dim(1) != seq) {
        return InvalidInput("RotaryEmbedding position_ids must be int64 [batch, sequence], got " +
                            ShapeToString(pos->shape()));
      }
      if (cos->rank() != 2 || sin->shape() != cos->shape() || cos->dim(1) != half) {
        return InvalidInput("RotaryEmbedding caches " + ShapeToString(cos->shape()) + " / " +
                            ShapeToString(sin->shape()) + " must be [max_position, " +
                            std::to_string(half) + "] with position_ids");
      }
      max_pos = cos->dim(0);
    } else if (cos->rank() != 3 || sin->shape() != cos->shape() || cos->dim(0) != batch ||
               cos->dim(1) != seq || cos->dim(2) != half) {
      return InvalidInput("RotaryEmbedding caches " + ShapeToString(cos->shape()) + " / " +
                          ShapeToString(sin->shape()) + " must be [" + std::to_string(batch) +
                          ", " + std::to_string(seq) + ", " + std::to_string(half) +
                          "] without position_ids");
    }
    const HeadLayout xl = LayoutOf(four_d, heads, seq, hs);
    return Dispatch<SERVEML_FLOAT_TYPES>(x->dtype(), "RotaryEmbedding", [&](auto tag) -> Status {
      using T = decltype(tag);
      ASSIGN_OR_RETURN(Tensor out, NewTensor(x->dtype(), x->shape()));
      const T* px = x->data<T>();
      T* po = out.data<T>();
      for (int64_t b = 0; b < batch; ++b) {
        for (int64_t t = 0; t < seq; ++t) {
          int64_t row = b * seq + t;
          if (pos) {
            row = pos->data<int64_t>()[b * seq + t];
            if (row < 0 || row >= max_pos) {
              return InvalidInput("RotaryEmbedding position id " + std::to_string(row) +
                                  " is outside the caches' " + std::to_string(max_pos) +
                                  " positions");
            }
          }
          const T* c = cos->data<T>() + row * half;
          const T* s = sin->data<T>() + row * half;
          for (int64_t h = 0; h < heads; ++h) {
            const int64_t off = b * xl.batch_stride + h * xl.head_stride + t * xl.row_stride;
            const T* xi = px + off;
            T* yo = po + off;
            for (int64_t i = 0; i < half; ++i) {
              const int64_t i1 = interleaved_ ? 2 * i : i;
              const int64_t i2 = interleaved_ ? 2 * i + 1 : i + half;
              const T x1 = xi[i1], x2 = xi[i2];
              yo[i1] = c[i] * x1 - s[i] * x2;
              yo[i2] = s[i] * x1 + c[i] * x2;
            }
            std::copy(xi + rot, xi + hs, yo + rot);
          }
        }
      }
      *ctx.outputs[0] = std::move(out);
      return Status::Ok();
    });
  }

 private:
  bool interleaved_;
  int64_t rotary_dim_;  // 0: the head size
  int64_t num_heads_;   // 0: absent
};

}  // namespace

Result<KernelPtr> MakeAttention(const KernelInit& init) {
  if (init.node.input.size() < 3) return InvalidInput("Attention needs inputs Q, K and V");
  NodeAttrs attrs(init.node);
  AttentionAttrs a;
  ASSIGN_OR_RETURN(int64_t causal, attrs.Int("is_causal", 0));
  a.is_causal = causal != 0;
  a.has_scale = attrs.Has("scale");
  ASSIGN_OR_RETURN(a.scale, attrs.Float("scale", 0.0f));
  ASSIGN_OR_RETURN(a.q_num_heads, attrs.Int("q_num_heads", 0));
  ASSIGN_OR_RETURN(a.kv_num_heads, attrs.Int("kv_num_heads", 0));
  a.has_softcap = attrs.Has("softcap");
  ASSIGN_OR_RETURN(a.softcap, attrs.Float("softcap", 0.0f));
  ASSIGN_OR_RETURN(a.qk_mode, attrs.Int("qk_matmul_output_mode", 0));
  ASSIGN_OR_RETURN(a.softmax_precision, attrs.Int("softmax_precision", 0));
  if (a.qk_mode < 0 || a.qk_mode > 3) {
    return InvalidInput("Attention qk_matmul_output_mode must be 0..3, got " +
                        std::to_string(a.qk_mode));
  }
  if (a.softmax_precision != 0 && a.softmax_precision != kOnnxFloat &&
      a.softmax_precision != kOnnxFloat16 && a.softmax_precision != kOnnxDouble &&
      a.softmax_precision != kOnnxBFloat16) {
    return InvalidInput("Attention softmax_precision " + std::to_string(a.softmax_precision) +
                        " is not a floating-point type");
  }
  if (a.q_num_heads < 0 || a.kv_num_heads < 0) {
    return InvalidInput("Attention q_num_heads/kv_num_heads must be positive");
  }
  return KernelPtr(new AttentionKernel(a));
}

Result<KernelPtr> MakeRotaryEmbedding(const KernelInit& init) {
  if (init.node.input.size() < 3) {
    return InvalidInput("RotaryEmbedding needs input, cos_cache and sin_cache");
  }
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(int64_t interleaved, attrs.Int("interleaved", 0));
  ASSIGN_OR_RETURN(int64_t rotary_dim, attrs.Int("rotary_embedding_dim", 0));
  ASSIGN_OR_RETURN(int64_t num_heads, attrs.Int("num_heads", 0));
  if (rotary_dim < 0 || num_heads < 0) {
    return InvalidInput("RotaryEmbedding rotary_embedding_dim/num_heads must not be negative");
  }
  return KernelPtr(new RotaryEmbeddingKernel(interleaved != 0, rotary_dim, num_heads));
}

}  // namespace serveml::engine
