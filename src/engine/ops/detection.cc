// NonMaxSuppression (opsets 10/11): greedy per-class box selection by score with IoU
// suppression, as in the ONNX reference implementation (and onnxruntime): candidates are
// visited by descending score (ties: lower box index first), a candidate is kept unless its
// IoU with an already kept box of the same class exceeds iou_threshold, at most
// max_output_boxes_per_class per (batch, class). float32 boxes and scores.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/kernel.h"
#include "engine/ops/dispatch.h"
#include "engine/ops/elementwise_util.h"
#include "engine/ops/ops.h"

namespace serveml::engine {
namespace {

// The first element of an optional float32 scalar input, or `def` when absent or empty.
Result<float> OptionalFloatScalar(const Tensor* t, float def, const char* what) {
  if (!t || t->numel() == 0) return def;
  if (t->dtype() != DType::kFloat32) {
    return InvalidInput(std::string(what) + " must be float32, got " +
                        std::string(DTypeName(t->dtype())));
  }
  return t->data<float>()[0];
}

// A box as [x_min, y_min, x_max, y_max] with min <= max.
struct Box {
  float x0, y0, x1, y1;
};

Box ToCorners(const float* b, bool center_point) {
  if (center_point) {  // [x_center, y_center, width, height]
    const float hw = b[2] / 2, hh = b[3] / 2;
    return Box{b[0] - hw, b[1] - hh, b[0] + hw, b[1] + hh};
  }
  // [y1, x1, y2, x2], either corner order
  return Box{std::min(b[1], b[3]), std::min(b[0], b[2]), std::max(b[1], b[3]),
             std::max(b[0], b[2])};
}

// True when the IoU of a and b exceeds `threshold` (degenerate boxes never suppress).
bool Suppresses(const Box& a, const Box& b, float threshold) {
  const float ix0 = std::max(a.x0, b.x0), ix1 = std::min(a.x1, b.x1);
  if (!(ix1 > ix0)) return false;
  const float iy0 = std::max(a.y0, b.y0), iy1 = std::min(a.y1, b.y1);
  if (!(iy1 > iy0)) return false;
  const float inter = (ix1 - ix0) * (iy1 - iy0);
  if (!(inter > 0)) return false;
  const float area_a = (a.x1 - a.x0) * (a.y1 - a.y0);
  const float area_b = (b.x1 - b.x0) * (b.y1 - b.y0);
  const float uni = area_a + area_b - inter;
  if (!(area_a > 0) || !(area_b > 0) || !(uni > 0)) return false;
  return inter / uni > threshold;
}

class NonMaxSuppressionKernel final : public Kernel {
 public:
  explicit NonMaxSuppressionKernel(bool center_point) : center_point_(center_point) {}

  Status Run(KernelContext& ctx) const override {
    const Tensor* boxes = ctx.input(0);
    const Tensor* scores = ctx.input(1);
    if (!boxes || !scores) return InvalidInput("NonMaxSuppression needs boxes and scores");
    if (boxes->dtype() != DType::kFloat32) {
      return UnsupportedType(boxes->dtype(), "NonMaxSuppression");
    }
    if (scores->dtype() != DType::kFloat32) {
      return UnsupportedType(scores->dtype(), "NonMaxSuppression");
    }
    if (boxes->rank() != 3 || boxes->dim(2) != 4) {
      return InvalidInput("NonMaxSuppression boxes must have shape (batches, boxes, 4), got " +
                          ShapeToString(boxes->shape()));
    }
    if (scores->rank() != 3 || scores->dim(0) != boxes->dim(0) || scores->dim(2) != boxes->dim(1)) {
      return InvalidInput("NonMaxSuppression scores shape " + ShapeToString(scores->shape()) +
                          " does not match boxes shape " + ShapeToString(boxes->shape()) +
                          " (expected (batches, classes, boxes))");
    }
    int64_t max_out = 0;
    if (const Tensor* m = ctx.input(2); m && m->numel() > 0) {
      if (m->rank() > 1) {
        return InvalidInput("NonMaxSuppression max_output_boxes_per_class must be a scalar");
      }
      ASSIGN_OR_RETURN(std::vector<int64_t> v,
                       ReadInt64s(*m, "NonMaxSuppression max_output_boxes_per_class"));
      max_out = std::max<int64_t>(v[0], 0);
    }
    ASSIGN_OR_RETURN(float iou,
                     OptionalFloatScalar(ctx.input(3), 0.0f, "NonMaxSuppression iou_threshold"));
    if (!(iou >= 0.0f && iou <= 1.0f)) {
      return InvalidInput("NonMaxSuppression iou_threshold must be in [0, 1], got " +
                          std::to_string(iou));
    }
    const Tensor* st = ctx.input(4);
    const bool filter = st && st->numel() > 0;
    ASSIGN_OR_RETURN(float score_thr,
                     OptionalFloatScalar(st, 0.0f, "NonMaxSuppression score_threshold"));

    const int64_t batches = boxes->dim(0), num_boxes = boxes->dim(1), classes = scores->dim(1);
    // Worst case: every box compared with every kept box of its class.
    RETURN_IF_ERROR(CheckWork("NonMaxSuppression",
                              static_cast<double>(batches) * static_cast<double>(classes) *
                                  static_cast<double>(num_boxes) * static_cast<double>(num_boxes)));
    const float* pb = boxes->data<float>();
    const float* ps = scores->data<float>();
    std::vector<int64_t> selected;  // (batch, class, box) triples
    std::vector<Box> corners(static_cast<size_t>(num_boxes));
    std::vector<int64_t> order;
    std::vector<int64_t> kept;
    for (int64_t b = 0; b < batches && max_out > 0; ++b) {
      for (int64_t i = 0; i < num_boxes; ++i) {
        corners[i] = ToCorners(pb + (b * num_boxes + i) * 4, center_point_);
      }
      for (int64_t c = 0; c < classes; ++c) {
        const float* s = ps + (b * classes + c) * num_boxes;
        order.clear();
        for (int64_t i = 0; i < num_boxes; ++i) {
          // NaN scores are never selected; so are scores not above score_threshold.
          if (std::isnan(s[i]) || (filter && !(s[i] > score_thr))) continue;
          order.push_back(i);
        }
        std::stable_sort(order.begin(), order.end(),
                         [s](int64_t a, int64_t bb) { return s[a] > s[bb]; });
        kept.clear();
        for (int64_t i : order) {
          if (static_cast<int64_t>(kept.size()) >= max_out) break;
          bool keep = true;
          for (int64_t k : kept) {
            if (Suppresses(corners[i], corners[k], iou)) {
              keep = false;
              break;
            }
          }
          if (!keep) continue;
          kept.push_back(i);
          selected.insert(selected.end(), {b, c, i});
        }
      }
    }
    const int64_t n = static_cast<int64_t>(selected.size() / 3);
    ASSIGN_OR_RETURN(Tensor out, NewTensor(DType::kInt64, {n, 3}));
    std::copy(selected.begin(), selected.end(), out.data<int64_t>());
    *ctx.outputs[0] = std::move(out);
    return Status::Ok();
  }

 private:
  bool center_point_;
};

}  // namespace

Result<KernelPtr> MakeNonMaxSuppression(const KernelInit& init) {
  NodeAttrs attrs(init.node);
  ASSIGN_OR_RETURN(int64_t cpb, attrs.Int("center_point_box", 0));
  if (cpb != 0 && cpb != 1) {
    return InvalidInput("NonMaxSuppression center_point_box must be 0 or 1, got " +
                        std::to_string(cpb));
  }
  return KernelPtr(new NonMaxSuppressionKernel(cpb == 1));
}

}  // namespace serveml::engine
