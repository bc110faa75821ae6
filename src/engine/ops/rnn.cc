// Recurrent layers: RNN, GRU and LSTM (opsets 7, 14, 22; `layout` from 14), float and double.
//
// Per direction, X·W^T for every time step is one GEMM into a [seq * batch, gates * hidden]
// buffer that starts out holding the biases (Wb + Rb, except GRU's Rbh under
// linear_before_reset). Each step then adds H_{t-1}·R^T into that step's rows with one GEMM
// (GRU without linear_before_reset: a second one for (r (.) H_{t-1})·Rh^T) and applies the gate
// equations row by row, in place. W and R that are initializers are transposed once at load,
// so the per-step product is a plain [batch, hidden] x [hidden, gates * hidden] GEMM (the
// small-M kernel for float batches); other W and R are used transposed by the GEMM itself.
// The hidden (and cell) state lives in the Y_h (Y_c) output when that is wanted, otherwise in
// run scratch; nothing is allocated per step.
//
// sequence_lens: batch row b takes part in steps t < len[b] only (the reverse direction runs
// t = len[b]-1 .. 0); its Y rows at t >= len[b] are zero and its state is left unchanged, so
// Y_h / Y_c hold the last valid step (the initial state for len 0).
//
// Activations follow onnxruntime: names are case-insensitive; activation_alpha/beta are
// consumed in list order by the functions that take them; defaults when the lists run out
// are LeakyRelu 0.01, HardSigmoid 0.2/0.5, Elu 1.0 and 0 otherwise. Clip bounds every gate
// pre-activation (after peepholes and biases), not the LSTM cell state itself.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <string>
#include <type_traits>
#include <vector>

#include "engine/kernel.h"
#include "engine/ops/dispatch.h"
#include "engine/ops/gemm.h"
#include "engine/ops/ops.h"

namespace serveml::engine {
namespace {

enum class Cell { kRnn, kGru, kLstm };

const char* CellName(Cell c) {
  return c == Cell::kRnn ? "RNN" : (c == Cell::kGru ? "GRU" : "LSTM");
}
int64_t NumGates(Cell c) { return c == Cell::kRnn ? 1 : (c == Cell::kGru ? 3 : 4); }
int64_t NumActivations(Cell c) { return c == Cell::kRnn ? 1 : (c == Cell::kGru ? 2 : 3); }

enum class ActKind {
  kRelu,
  kTanh,
  kSigmoid,
  kAffine,
  kLeakyRelu,
  kThresholdedRelu,
  kScaledTanh,
  kHardSigmoid,
  kElu,
  kSoftsign,
  kSoftplus
};

struct Activation {
  ActKind kind = ActKind::kTanh;
  float alpha = 0, beta = 0;
};

// Parses one activation name, taking alpha/beta from the lists at *ai / *bi when it uses them.
Result<Activation> ParseActivation(const std::string& name, const std::vector<float>& alphas,
                                   size_t* ai, const std::vector<float>& betas, size_t* bi) {
  std::string n = name;
  for (char& ch : n) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  struct Spec {
    const char* name;
    ActKind kind;
    bool uses_alpha, uses_beta;
    float alpha, beta;
  };
  static constexpr Spec kSpecs[] = {
      {"relu", ActKind::kRelu, false, false, 0, 0},
      {"tanh", ActKind::kTanh, false, false, 0, 0},
      {"sigmoid", ActKind::kSigmoid, false, false, 0, 0},
      {"affine", ActKind::kAffine, true, true, 0, 0},
      {"leakyrelu", ActKind::kLeakyRelu, true, false, 0.01f, 0},
      {"thresholdedrelu", ActKind::kThresholdedRelu, true, false, 0, 0},
      {"scaledtanh", ActKind::kScaledTanh, true, true, 0, 0},
      {"hardsigmoid", ActKind::kHardSigmoid, true, true, 0.2f, 0.5f},
      {"elu", ActKind::kElu, true, false, 1.0f, 0},
      {"softsign", ActKind::kSoftsign, false, false, 0, 0},
      {"softplus", ActKind::kSoftplus, false, false, 0, 0},
  };
  for (const Spec& s : kSpecs) {
    if (n != s.name) continue;
    Activation a{s.kind, s.alpha, s.beta};
    if (s.uses_alpha && *ai < alphas.size()) a.alpha = alphas[(*ai)++];
    if (s.uses_beta && *bi < betas.size()) a.beta = betas[(*bi)++];
    return a;
  }
  return InvalidInput("unknown activation '" + name +
                      "' (expected Relu, Tanh, Sigmoid, Affine, LeakyRelu, ThresholdedRelu, "
                      "ScaledTanh, HardSigmoid, Elu, Softsign or Softplus)");
}

// x[i] = act(clip(x[i])) for i < n; clip <= 0 means no clip.
template <typename T>
void Activate(const Activation& a, T clip, T* x, int64_t n) {
  if (clip > T(0)) {
    for (int64_t i = 0; i < n; ++i) x[i] = std::min(clip, std::max(-clip, x[i]));
  }
  const T al = static_cast<T>(a.alpha), be = static_cast<T>(a.beta);
  switch (a.kind) {
    case ActKind::kRelu:
      for (int64_t i = 0; i < n; ++i) x[i] = x[i] > T(0) ? x[i] : T(0);
      break;
    case ActKind::kTanh:
      for (int64_t i = 0; i < n; ++i) x[i] = std::tanh(x[i]);
      break;
    case ActKind::kSigmoid:
      for (int64_t i = 0; i < n; ++i) x[i] = T(1) / (T(1) + std::exp(-x[i]));
      break;
    case ActKind::kAffine:
      for (int64_t i = 0; i < n; ++i) x[i] = al * x[i] + be;
      break;
    case ActKind::kLeakyRelu:
      for (int64_t i = 0; i < n; ++i) x[i] = x[i] >= T(0) ? x[i] : al * x[i];
      break;
    case ActKind::kThresholdedRelu:
      for (int64_t i = 0; i < n; ++i) x[i] = x[i] > al ? x[i] : T(0);
      break;
    case ActKind::kScaledTanh:
      for (int64_t i = 0; i < n; ++i) x[i] = al * std::tanh(be * x[i]);
      break;
    case ActKind::kHardSigmoid:
      for (int64_t i = 0; i < n; ++i) x[i] = std::min(T(1), std::max(T(0), al * x[i] + be));
      break;
    case ActKind::kElu:
      for (int64_t i = 0; i < n; ++i) x[i] = x[i] >= T(0) ? x[i] : al * (std::exp(x[i]) - T(1));
      break;
    case ActKind::kSoftsign:
      for (int64_t i = 0; i < n; ++i) x[i] = x[i] / (T(1) + std::fabs(x[i]));
      break;
    case ActKind::kSoftplus:
      for (int64_t i = 0; i < n; ++i) {
        x[i] = x[i] > T(0) ? x[i] + std::log1p(std::exp(-x[i])) : std::log1p(std::exp(x[i]));
      }
      break;
  }
}

// C[m, n] = A[m, k] * op(B) + beta * C with op(B) = B ([k, n], ldb) or B^T (B is [n, k], ldb).
template <typename T>
void Gemm(bool tb, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda, const T* b,
          int64_t ldb, T beta, T* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    if (beta == T(0)) {
      for (int64_t i = 0; i < m; ++i) std::fill(c + i * ldc, c + i * ldc + n, T(0));
    }
    return;
  }
  if constexpr (std::is_same_v<T, float>) {
    Sgemm(false, tb, m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
  } else {
    Dgemm(false, tb, m, n, k, 1.0, a, lda, b, ldb, beta, c, ldc);
  }
}

// One direction's weight matrix as the right-hand GEMM operand [k, gates * hidden]: either
// transposed at load (`trans` false, row stride ld) or the input as stored ([gates * hidden,
// k], used transposed).
template <typename T>
struct Operand {
  const T* p;
  int64_t ld;
  bool trans;
  // The operand restricted to gate columns starting at `col`.
  Operand Cols(int64_t col) const { return {trans ? p + col * ld : p + col, ld, trans}; }
};

struct Attrs {
  Cell cell;
  int64_t hidden_size = -1;  // -1: take it from R
  int64_t num_dirs = 1;
  bool reverse = false;          // single direction running backwards
  std::vector<Activation> acts;  // NumActivations(cell) per direction
  float clip = 0;                // 0: none
  bool layout1 = false;
  bool linear_before_reset = false;
  bool input_forget = false;
  bool want[3] = {false, false, false};  // Y, Y_h, Y_c
};

class RecurrentKernel final : public Kernel {
 public:
  // wt / rt: W / R transposed per direction ([dirs, k, gates * hidden]) or undefined.
  RecurrentKernel(Attrs a, Tensor wt, Tensor rt)
      : a_(std::move(a)), wt_(std::move(wt)), rt_(std::move(rt)) {}

  Status Run(KernelContext& ctx) const override {
    const Tensor* x = ctx.input(0);
    if (!x || !ctx.input(1) || !ctx.input(2)) {
      return InvalidInput(std::string(CellName(a_.cell)) + " needs X, W and R");
    }
    return Dispatch<SERVEML_FLOAT_TYPES>(x->dtype(), CellName(a_.cell),
                                         [&](auto tag) { return RunTyped<decltype(tag)>(ctx); });
  }

 private:
  Status Bad(const std::string& what) const {
    return InvalidInput(std::string(CellName(a_.cell)) + " " + what);
  }
  // Checks an optional input's element type and shape.
  Status CheckInput(const Tensor* t, const char* name, DType dtype,
                    const std::vector<int64_t>& shape) const {
    if (!t) return Status::Ok();
    if (t->dtype() != dtype) {
      return Bad(std::string(name) + " has element type " + std::string(DTypeName(t->dtype())) +
                 ", X has " + std::string(DTypeName(dtype)));
    }
    if (t->shape() != shape) {
      return Bad(std::string(name) + " must have shape " + ShapeToString(shape) + ", got " +
                 ShapeToString(t->shape()));
    }
    return Status::Ok();
  }

  template <typename T>
  Status RunTyped(KernelContext& ctx) const {
    const Tensor& x = *ctx.input(0);
    const Tensor& w = *ctx.input(1);
    const Tensor& r = *ctx.input(2);
    const Tensor* b = ctx.input(3);
    const Tensor* lens = ctx.input(4);
    const Tensor* init_h = ctx.input(5);
    const Tensor* init_c = a_.cell == Cell::kLstm ? ctx.input(6) : nullptr;
    const Tensor* peep = a_.cell == Cell::kLstm ? ctx.input(7) : nullptr;
    const DType dt = x.dtype();
    const bool l1 = a_.layout1;
    const Cell cell = a_.cell;

    if (x.rank() != 3) return Bad("X must have rank 3, got shape " + ShapeToString(x.shape()));
    const int64_t seq = l1 ? x.dim(1) : x.dim(0);
    const int64_t batch = l1 ? x.dim(0) : x.dim(1);
    const int64_t in = x.dim(2);
    const int64_t nd = a_.num_dirs;
    if (r.rank() != 3) return Bad("R must have rank 3, got shape " + ShapeToString(r.shape()));
    const int64_t hid = r.dim(2);
    if (a_.hidden_size >= 0 && a_.hidden_size != hid) {
      return Bad("hidden_size is " + std::to_string(a_.hidden_size) + " but R has shape " +
                 ShapeToString(r.shape()));
    }
    const int64_t gh = NumGates(cell) * hid;
    RETURN_IF_ERROR(CheckInput(&w, "W", dt, {nd, gh, in}));
    RETURN_IF_ERROR(CheckInput(&r, "R", dt, {nd, gh, hid}));
    RETURN_IF_ERROR(CheckInput(b, "B", dt, {nd, 2 * gh}));
    const std::vector<int64_t> state_shape =
        l1 ? std::vector<int64_t>{batch, nd, hid} : std::vector<int64_t>{nd, batch, hid};
    RETURN_IF_ERROR(CheckInput(init_h, "initial_h", dt, state_shape));
    RETURN_IF_ERROR(CheckInput(init_c, "initial_c", dt, state_shape));
    RETURN_IF_ERROR(CheckInput(peep, "P", dt, {nd, 3 * hid}));
    // Per step and direction: the gates from X (in) and from the hidden state (hid).
    RETURN_IF_ERROR(CheckWork(CellName(cell), static_cast<double>(nd) * static_cast<double>(seq) *
                                                  static_cast<double>(batch) *
                                                  static_cast<double>(gh) *
                                                  static_cast<double>(in + hid)));
    if (lens) {
      if (lens->dtype() != DType::kInt32 && lens->dtype() != DType::kInt64) {
        return Bad("sequence_lens must be int32 or int64");
      }
      if (lens->shape() != std::vector<int64_t>{batch}) {
        return Bad("sequence_lens must have shape " + ShapeToString({batch}) + ", got " +
                   ShapeToString(lens->shape()));
      }
    }
    auto len_of = [&](int64_t bi) -> int64_t {
      if (!lens) return seq;
      return lens->dtype() == DType::kInt32 ? lens->data<int32_t>()[bi] : lens->data<int64_t>()[bi];
    };
    for (int64_t bi = 0; lens && bi < batch; ++bi) {
      if (len_of(bi) < 0 || len_of(bi) > seq) {
        return Bad("sequence_lens[" + std::to_string(bi) + "] = " + std::to_string(len_of(bi)) +
                   " is outside [0, " + std::to_string(seq) + "]");
      }
    }

    // Outputs (unwanted ones get an empty tensor).
    Tensor outs[3];
    const std::vector<int64_t> y_shape =
        l1 ? std::vector<int64_t>{batch, seq, nd, hid} : std::vector<int64_t>{seq, nd, batch, hid};
    for (int k = 0; k < 3; ++k) {
      if (a_.want[k]) {
        ASSIGN_OR_RETURN(outs[k], NewTensor(dt, k == 0 ? y_shape : state_shape));
      }
    }
    const bool gru_lbr = cell == Cell::kGru && a_.linear_before_reset;
    const bool lstm = cell == Cell::kLstm;
    const bool gru = cell == Cell::kGru;

    // Scratch: projections, recurrent gates (GRU linear_before_reset), state buffers when the
    // state outputs are not wanted, r (.) H (GRU), biases.
    const int64_t rows = seq * batch;
    const int64_t n_xw = rows * gh;
    const int64_t n_g = gru_lbr ? batch * gh : 0;
    const int64_t n_h = a_.want[1] ? 0 : batch * hid;
    const int64_t n_c = lstm && !a_.want[2] ? batch * hid : 0;
    const int64_t n_rh = gru && !gru_lbr ? batch * hid : 0;
    ASSIGN_OR_RETURN(Tensor scratch,
                     NewTensor(dt, {n_xw + n_g + n_h + n_c + n_rh + gh + (gru_lbr ? hid : 0)}));
    T* xw = scratch.data<T>();
    T* gbuf = xw + n_xw;
    T* hbuf = gbuf + n_g;
    T* cbuf = hbuf + n_h;
    T* rh = cbuf + n_c;
    T* bx = rh + n_rh;  // bias added to the projections, gh values
    T* brh = bx + gh;   // GRU linear_before_reset: Rbh

    T* y = a_.want[0] ? outs[0].data<T>() : nullptr;
    const T clip = static_cast<T>(a_.clip);
    const int64_t nact = NumActivations(cell);
    // Rows of the state buffers: in Y_h / Y_c (layout 0: [dirs, batch, hid], layout 1:
    // [batch, dirs, hid]) or in scratch.
    const int64_t out_ld = l1 ? nd * hid : hid;
    const T* xp = x.data<T>();

    for (int64_t d = 0; d < nd; ++d) {
      const bool rev = nd == 2 ? d == 1 : a_.reverse;
      const Activation* act = a_.acts.data() + d * nact;
      const Operand<T> wop = wt_.defined() ? Operand<T>{wt_.data<T>() + d * in * gh, gh, false}
                                           : Operand<T>{w.data<T>() + d * gh * in, in, true};
      const Operand<T> rop = rt_.defined() ? Operand<T>{rt_.data<T>() + d * hid * gh, gh, false}
                                           : Operand<T>{r.data<T>() + d * gh * hid, hid, true};
      const int64_t state_off = l1 ? d * hid : d * batch * hid;
      T* h = a_.want[1] ? outs[1].data<T>() + state_off : hbuf;
      const int64_t h_ld = a_.want[1] ? out_ld : hid;
      T* c = nullptr;
      int64_t c_ld = hid;
      if (lstm) {
        c = a_.want[2] ? outs[2].data<T>() + state_off : cbuf;
        c_ld = a_.want[2] ? out_ld : hid;
      }
      // Initial state.
      for (int64_t bi = 0; bi < batch; ++bi) {
        const int64_t src = l1 ? (bi * nd + d) * hid : (d * batch + bi) * hid;
        T* hr = h + bi * h_ld;
        if (init_h) {
          std::copy_n(init_h->data<T>() + src, hid, hr);
        } else {
          std::fill_n(hr, hid, T(0));
        }
        if (lstm) {
          T* cr = c + bi * c_ld;
          if (init_c) {
            std::copy_n(init_c->data<T>() + src, hid, cr);
          } else {
            std::fill_n(cr, hid, T(0));
          }
        }
      }
      // Biases: Wb + Rb into the projections, except GRU's Rbh under linear_before_reset.
      std::fill_n(bx, gh, T(0));
      if (gru_lbr) std::fill_n(brh, hid, T(0));
      if (b) {
        const T* wb = b->data<T>() + d * 2 * gh;
        const T* rb = wb + gh;
        for (int64_t i = 0; i < gh; ++i) bx[i] = wb[i];
        const int64_t rb_end = gru_lbr ? 2 * hid : gh;
        for (int64_t i = 0; i < rb_end; ++i) bx[i] += rb[i];
        if (gru_lbr) std::copy_n(rb + 2 * hid, hid, brh);
      }
      // Projections of every step: xw = bias + X·W^T.
      for (int64_t i = 0; i < rows; ++i) std::copy_n(bx, gh, xw + i * gh);
      Gemm<T>(wop.trans, rows, gh, in, xp, in, wop.p, wop.ld, T(1), xw, gh);
      const T* pi = peep ? peep->data<T>() + d * 3 * hid : nullptr;
      const T* po = pi ? pi + hid : nullptr;
      const T* pf = pi ? pi + 2 * hid : nullptr;

      // Rows of step t: layout 0 row t * batch + b, layout 1 row b * seq + t.
      const int64_t g_ld = l1 ? seq * gh : gh;
      for (int64_t s = 0; s < seq; ++s) {
        const int64_t t = rev ? seq - 1 - s : s;
        bool any = !lens;
        for (int64_t bi = 0; !any && bi < batch; ++bi) any = t < len_of(bi);
        if (!any) continue;  // Y rows stay zero, the state is unchanged
        T* g = xw + (l1 ? t * gh : t * batch * gh);
        if (gru_lbr) {
          Gemm<T>(rop.trans, batch, gh, hid, h, h_ld, rop.p, rop.ld, T(0), gbuf, gh);
        } else {
          const int64_t n = gru ? 2 * hid : gh;  // GRU: z and r now, h after the reset
          Gemm<T>(rop.trans, batch, n, hid, h, h_ld, rop.p, rop.ld, T(1), g, g_ld);
        }
        if (gru && !gru_lbr) {
          for (int64_t bi = 0; bi < batch; ++bi) {
            T* gr = g + bi * g_ld;
            Activate(act[0], clip, gr, 2 * hid);  // z, r
            const T* hr = h + bi * h_ld;
            const T* rr = gr + hid;
            T* rhr = rh + bi * hid;
            for (int64_t j = 0; j < hid; ++j) rhr[j] = rr[j] * hr[j];
          }
          const Operand<T> rh_op = rop.Cols(2 * hid);
          Gemm<T>(rh_op.trans, batch, hid, hid, rh, hid, rh_op.p, rh_op.ld, T(1), g + 2 * hid,
                  g_ld);
        }
        for (int64_t bi = 0; bi < batch; ++bi) {
          if (t >= len_of(bi)) continue;
          T* gr = g + bi * g_ld;
          T* hr = h + bi * h_ld;
          if (cell == Cell::kRnn) {
            Activate(act[0], clip, gr, hid);
            std::copy_n(gr, hid, hr);
          } else if (gru) {
            T* z = gr;
            T* rr = gr + hid;
            T* hh = gr + 2 * hid;
            if (gru_lbr) {
              const T* rec = gbuf + bi * gh;
              for (int64_t j = 0; j < 2 * hid; ++j) gr[j] += rec[j];
              Activate(act[0], clip, gr, 2 * hid);
              for (int64_t j = 0; j < hid; ++j) hh[j] += rr[j] * (rec[2 * hid + j] + brh[j]);
            }
            Activate(act[1], clip, hh, hid);
            for (int64_t j = 0; j < hid; ++j) hr[j] = (T(1) - z[j]) * hh[j] + z[j] * hr[j];
          } else {  // LSTM, gates i, o, f, c
            T* ig = gr;
            T* og = gr + hid;
            T* fg = gr + 2 * hid;
            T* cg = gr + 3 * hid;
            T* cr = c + bi * c_ld;
            if (pi) {
              for (int64_t j = 0; j < hid; ++j) ig[j] += pi[j] * cr[j];
            }
            Activate(act[0], clip, ig, hid);
            if (a_.input_forget) {
              for (int64_t j = 0; j < hid; ++j) fg[j] = T(1) - ig[j];
            } else {
              if (pf) {
                for (int64_t j = 0; j < hid; ++j) fg[j] += pf[j] * cr[j];
              }
              Activate(act[0], clip, fg, hid);
            }
            Activate(act[1], clip, cg, hid);
            for (int64_t j = 0; j < hid; ++j) cr[j] = fg[j] * cr[j] + ig[j] * cg[j];
            if (po) {
              for (int64_t j = 0; j < hid; ++j) og[j] += po[j] * cr[j];
            }
            Activate(act[0], clip, og, hid);
            // h(C) in the cell-gate slot, no longer needed.
            std::copy_n(cr, hid, cg);
            Activate(act[2], T(0), cg, hid);
            for (int64_t j = 0; j < hid; ++j) hr[j] = og[j] * cg[j];
          }
          if (y) {
            const int64_t yo =
                l1 ? ((bi * seq + t) * nd + d) * hid : ((t * nd + d) * batch + bi) * hid;
            std::copy_n(hr, hid, y + yo);
          }
        }
      }
      // Y rows past a sequence's length are zero (NewTensor zero-fills; kept explicit).
      for (int64_t bi = 0; y && lens && bi < batch; ++bi) {
        for (int64_t t = len_of(bi); t < seq; ++t) {
          const int64_t yo =
              l1 ? ((bi * seq + t) * nd + d) * hid : ((t * nd + d) * batch + bi) * hid;
          std::fill_n(y + yo, hid, T(0));
        }
      }
    }
    for (int k = 0; k < static_cast<int>(ctx.num_outputs()) && k < 3; ++k) {
      if (!outs[k].defined()) {
        ASSIGN_OR_RETURN(outs[k], NewTensor(dt, {0}));
      }
      *ctx.outputs[k] = std::move(outs[k]);
    }
    return Status::Ok();
  }

  Attrs a_;
  Tensor wt_, rt_;
};

// [dirs, rows, cols] -> [dirs, cols, rows] for a float or double tensor; undefined for other
// element types or ranks (the kernel reports those at run time).
Tensor TransposeWeights(const Tensor* t) {
  Tensor out;
  if (!t || t->rank() != 3) return out;
  const int64_t nd = t->dim(0), rows = t->dim(1), cols = t->dim(2);
  auto go = [&](auto tag) {
    using T = decltype(tag);
    out = Tensor(t->dtype(), {nd, cols, rows});
    const T* src = t->data<T>();
    T* dst = out.data<T>();
    for (int64_t d = 0; d < nd; ++d) {
      for (int64_t i = 0; i < rows; ++i) {
        for (int64_t j = 0; j < cols; ++j) {
          dst[(d * cols + j) * rows + i] = src[(d * rows + i) * cols + j];
        }
      }
    }
  };
  if (t->dtype() == DType::kFloat32) go(float{});
  if (t->dtype() == DType::kFloat64) go(double{});
  return out;
}

Result<KernelPtr> MakeRecurrent(const KernelInit& init, Cell cell) {
  const std::string op = CellName(cell);
  NodeAttrs attrs(init.node);
  Attrs a;
  a.cell = cell;
  if (attrs.Has("hidden_size")) {
    ASSIGN_OR_RETURN(a.hidden_size, attrs.Int("hidden_size", -1));
    if (a.hidden_size < 0) return InvalidInput(op + " hidden_size must be >= 0");
  }
  ASSIGN_OR_RETURN(std::string dir, attrs.String("direction", "forward"));
  if (dir == "bidirectional") {
    a.num_dirs = 2;
  } else if (dir == "reverse") {
    a.reverse = true;
  } else if (dir != "forward") {
    return InvalidInput(op + " direction must be forward, reverse or bidirectional, got '" + dir +
                        "'");
  }
  if (attrs.Has("clip")) {
    ASSIGN_OR_RETURN(a.clip, attrs.Float("clip", 0));
    if (!(a.clip > 0)) return InvalidInput(op + " clip must be positive");
  }
  if (init.opset >= 14) {
    ASSIGN_OR_RETURN(int64_t layout, attrs.Int("layout", 0));
    if (layout != 0 && layout != 1) return InvalidInput(op + " layout must be 0 or 1");
    a.layout1 = layout == 1;
  }
  if (cell == Cell::kGru) {
    ASSIGN_OR_RETURN(int64_t lbr, attrs.Int("linear_before_reset", 0));
    a.linear_before_reset = lbr != 0;
  }
  if (cell == Cell::kLstm) {
    ASSIGN_OR_RETURN(int64_t input_forget, attrs.Int("input_forget", 0));
    a.input_forget = input_forget != 0;
  }
  // Activations: NumActivations(cell) per direction; defaults when absent. A list for one
  // direction serves both of a bidirectional layer; RNN's two-entry list of opset-1 models
  // ("Tanh", "Tanh") on one direction uses its first.
  ASSIGN_OR_RETURN(std::vector<std::string> names, attrs.Strings("activations"));
  ASSIGN_OR_RETURN(std::vector<float> alphas, attrs.Floats("activation_alpha"));
  ASSIGN_OR_RETURN(std::vector<float> betas, attrs.Floats("activation_beta"));
  const size_t k = static_cast<size_t>(NumActivations(cell));
  const size_t nd = static_cast<size_t>(a.num_dirs);
  if (names.empty()) {
    if (cell == Cell::kRnn) names = {"Tanh"};
    if (cell == Cell::kGru) names = {"Sigmoid", "Tanh"};
    if (cell == Cell::kLstm) names = {"Sigmoid", "Tanh", "Tanh"};
  }
  size_t ai = 0, bi = 0;
  for (const std::string& name : names) {
    ASSIGN_OR_RETURN(Activation act, ParseActivation(name, alphas, &ai, betas, &bi));
    a.acts.push_back(act);
  }
  if (cell == Cell::kRnn && nd == 1 && a.acts.size() == 2) a.acts.resize(1);
  if (a.acts.size() == k && nd == 2) {
    a.acts.insert(a.acts.end(), a.acts.begin(), a.acts.end());
  }
  if (a.acts.size() != k * nd) {
    return InvalidInput(op + " needs " + std::to_string(k * nd) + " activations for " + dir +
                        ", got " + std::to_string(names.size()));
  }
  const size_t max_outputs = cell == Cell::kLstm ? 3 : 2;
  if (init.node.output.size() > max_outputs) {
    return InvalidInput(op + " has at most " + std::to_string(max_outputs) + " outputs");
  }
  for (size_t i = 0; i < init.node.output.size(); ++i) a.want[i] = !init.node.output[i].empty();
  const auto const_in = [&](size_t i) -> const Tensor* {
    return i < init.const_inputs.size() && i < init.node.input.size() && !init.node.input[i].empty()
               ? init.const_inputs[i]
               : nullptr;
  };
  return KernelPtr(new RecurrentKernel(std::move(a), TransposeWeights(const_in(1)),
                                       TransposeWeights(const_in(2))));
}

}  // namespace

Result<KernelPtr> MakeRNN(const KernelInit& init) { return MakeRecurrent(init, Cell::kRnn); }
Result<KernelPtr> MakeGRU(const KernelInit& init) { return MakeRecurrent(init, Cell::kGru); }
Result<KernelPtr> MakeLSTM(const KernelInit& init) { return MakeRecurrent(init, Cell::kLstm); }

}  // namespace serveml::engine
