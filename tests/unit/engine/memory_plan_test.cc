// Shape/type inference at load, the tensor arena and the memory plan: inferred shapes on
// hand-built graphs, load-time rejection of certain dtype mismatches, steady-state runs that
// take no intermediate tensor memory from the heap (counted with a global operator new
// hook), output lifetime and concurrent runs with different batch sizes.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>
#include <thread>

#include "engine/arena.h"
#include "engine/engine.h"
#include "engine/model_internal.h"
#include "engine/shape_inference.h"
#include "onnx_builder.h"

// ---- allocation counting (not under AddressSanitizer, which owns operator new) ----
#if !defined(__SANITIZE_ADDRESS__)
#define SERVEML_COUNT_ALLOCS 1
namespace {
thread_local bool tl_counting = false;
thread_local size_t tl_allocs = 0;
thread_local size_t tl_large_allocs = 0;  // >= kLargeBytes
thread_local size_t tl_large_bytes = 0;
constexpr size_t kLargeBytes = 4096;

void Count(size_t n) {
  if (!tl_counting) return;
  ++tl_allocs;
  if (n >= kLargeBytes) {
    ++tl_large_allocs;
    tl_large_bytes += n;
  }
}
void* Alloc(size_t n) {
  Count(n);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* AllocAligned(size_t n, std::align_val_t a) {
  Count(n);
  const size_t al = static_cast<size_t>(a);
  if (void* p = std::aligned_alloc(al, (n + al - 1) / al * al)) return p;
  throw std::bad_alloc();
}
}  // namespace

void* operator new(size_t n) { return Alloc(n); }
void* operator new[](size_t n) { return Alloc(n); }
void* operator new(size_t n, const std::nothrow_t&) noexcept {
  Count(n);
  return std::malloc(n ? n : 1);
}
void* operator new[](size_t n, const std::nothrow_t&) noexcept {
  Count(n);
  return std::malloc(n ? n : 1);
}
void* operator new(size_t n, std::align_val_t a) { return AllocAligned(n, a); }
void* operator new[](size_t n, std::align_val_t a) { return AllocAligned(n, a); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t, std::align_val_t) noexcept { std::free(p); }
#endif

namespace serveml::engine {
namespace {

using namespace serveml::engine::testing;  // NOLINT

std::vector<float> Floats(const Tensor& t) {
  return std::vector<float>(t.data<float>(), t.data<float>() + t.numel());
}

Tensor Input(int64_t rows, int64_t cols, float seed) {
  std::vector<float> v(static_cast<size_t>(rows * cols));
  for (size_t i = 0; i < v.size(); ++i) {
    v[i] = static_cast<float>((static_cast<int64_t>(i) * 37 + 11) % 101) / 50.0f - 1.0f + seed;
  }
  return Tensor::From<float>({rows, cols}, v);
}

std::vector<float> Weights(size_t n, float scale) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) {
    v[i] = (static_cast<float>((i * 53 + 7) % 97) / 48.0f - 1.0f) * scale;
  }
  return v;
}

// X[N, 64] -> Gemm(64x512) -> Relu -> Gemm(512x512) -> Relu -> Gemm(512x8) -> Y[N, 8].
std::string MlpModel() {
  return ModelBytes(Graph({Node("Gemm", {"X", "W1", "B1"}, {"H1"}), Node("Relu", {"H1"}, {"R1"}),
                           Node("Gemm", {"R1", "W2", "B2"}, {"H2"}), Node("Relu", {"H2"}, {"R2"}),
                           Node("Gemm", {"R2", "W3", "B3"}, {"Y"})},
                          {FloatTensor("W1", {64, 512}, Weights(64 * 512, 0.1f)),
                           FloatTensor("B1", {512}, Weights(512, 0.01f)),
                           FloatTensor("W2", {512, 512}, Weights(512 * 512, 0.05f)),
                           FloatTensor("B2", {512}, Weights(512, 0.01f)),
                           FloatTensor("W3", {512, 8}, Weights(512 * 8, 0.05f)),
                           FloatTensor("B3", {8}, Weights(8, 0.01f))},
                          {ValueInfo("X", 1, {-1, 64})}, {ValueInfo("Y", 1, {-1, 8})}));
}

// 16 complete trees of depth 3 over 4 features -> T[N, 1] -> Add(0.5) -> A -> ReduceMean
// over the rows -> Y[1, 1] (a small output, so large heap allocations can only be
// intermediates).
std::string TreeModel(bool reduce) {
  std::vector<int64_t> tree_ids, node_ids, feature_ids, true_ids, false_ids;
  std::vector<std::string> modes;
  std::vector<float> thresholds;
  std::vector<int64_t> t_tree, t_node, t_id;
  std::vector<float> t_w;
  for (int64_t t = 0; t < 16; ++t) {
    for (int64_t node = 0; node < 15; ++node) {  // heap layout: children 2n+1, 2n+2
      tree_ids.push_back(t);
      node_ids.push_back(node);
      if (node < 7) {
        feature_ids.push_back((t + node) % 4);
        modes.push_back("BRANCH_LEQ");
        thresholds.push_back(static_cast<float>((t * 7 + node * 3) % 11) / 5.0f - 1.0f);
        true_ids.push_back(2 * node + 1);
        false_ids.push_back(2 * node + 2);
      } else {
        feature_ids.push_back(0);
        modes.push_back("LEAF");
        thresholds.push_back(0);
        true_ids.push_back(0);
        false_ids.push_back(0);
        t_tree.push_back(t);
        t_node.push_back(node);
        t_id.push_back(0);
        t_w.push_back(static_cast<float>((t * 5 + node) % 13) / 10.0f);
      }
    }
  }
  std::vector<std::string> attrs = {
      AttrInt("n_targets", 1),
      AttrInts("nodes_treeids", tree_ids),
      AttrInts("nodes_nodeids", node_ids),
      AttrInts("nodes_featureids", feature_ids),
      AttrStrings("nodes_modes", modes),
      AttrFloats("nodes_values", thresholds),
      AttrInts("nodes_truenodeids", true_ids),
      AttrInts("nodes_falsenodeids", false_ids),
      AttrInts("target_treeids", t_tree),
      AttrInts("target_nodeids", t_node),
      AttrInts("target_ids", t_id),
      AttrFloats("target_weights", t_w),
  };
  std::vector<std::string> nodes = {
      Node("TreeEnsembleRegressor", {"X"}, {"T"}, attrs, "ai.onnx.ml"),
      Node("Add", {"T", "Half"}, {reduce ? "A" : "Y"})};
  if (reduce) {
    nodes.push_back(Node("ReduceMean", {"A"}, {"Y"}, {AttrInts("axes", {0})}));
  }
  return ModelBytes(
      Graph(nodes, {FloatTensor("Half", {1}, {0.5f})}, {ValueInfo("X", 1, {-1, 4})},
            {ValueInfo("Y", 1, reduce ? std::vector<int64_t>{1, 1} : std::vector<int64_t>{-1, 1})}),
      17, 3);
}

std::shared_ptr<Model> Load(const std::string& bytes) {
  auto r = Model::LoadOnnx(bytes);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : nullptr;
}

ValueType TypeOf(const Model& m, const std::string& name) {
  auto t = InferredType(m, name);
  EXPECT_TRUE(t.has_value()) << name;
  return t.value_or(ValueType());
}

// ---------------------------------------------------------------- shape inference

TEST(ShapeInference, SymbolicBatchFlowsThroughAnMlp) {
  auto m = Load(MlpModel());
  ASSERT_TRUE(m);
  EXPECT_EQ(TypeOf(*m, "X").ToString(), "float32[N0, 64]");
  EXPECT_EQ(TypeOf(*m, "H1").ToString(), "float32[N0, 512]");
  EXPECT_EQ(TypeOf(*m, "R2").ToString(), "float32[N0, 512]");
  EXPECT_EQ(TypeOf(*m, "Y").ToString(), "float32[N0, 8]");
}

TEST(ShapeInference, ConvPoolFlattenReshapeConcatReduceCast) {
  auto m = Load(ModelBytes(
      Graph({Node("Conv", {"X", "W"}, {"C"}, {AttrInts("pads", {1, 1, 1, 1})}),
             Node("MaxPool", {"C"}, {"P"},
                  {AttrInts("kernel_shape", {2, 2}), AttrInts("strides", {2, 2})}),
             Node("Flatten", {"P"}, {"F"}), Node("Reshape", {"F", "S"}, {"R"}),
             Node("Transpose", {"R"}, {"TR"}, {AttrInts("perm", {1, 0, 2})}),
             Node("Concat", {"TR", "TR"}, {"CC"}, {AttrInt("axis", 2)}),
             Node("Unsqueeze", {"CC", "Ax"}, {"U"}),
             Node("ReduceMean", {"U"}, {"RM"}, {AttrInts("axes", {3}), AttrInt("keepdims", 0)}),
             Node("Cast", {"RM"}, {"Y"}, {AttrInt("to", 7)}),
             Node("GlobalAveragePool", {"C"}, {"G"}), Node("Greater", {"G", "Zero"}, {"B"})},
            {FloatTensor("W", {4, 3, 3, 3}, std::vector<float>(108, 0.1f)),
             Int64Tensor("S", {3}, {-1, 8, 8}), Int64Tensor("Ax", {1}, {0}),
             FloatTensor("Zero", {1}, {0})},
            {ValueInfo("X", 1, {-1, 3, 8, 8})}, {ValueInfo("Y", 7, {}), ValueInfo("B", 9, {})})));
  ASSERT_TRUE(m);
  EXPECT_EQ(TypeOf(*m, "C").ToString(), "float32[N0, 4, 8, 8]");
  EXPECT_EQ(TypeOf(*m, "P").ToString(), "float32[N0, 4, 4, 4]");
  EXPECT_EQ(TypeOf(*m, "F").ToString(), "float32[N0, 64]");
  EXPECT_EQ(TypeOf(*m, "R").ToString(), "float32[N0, 8, 8]");
  EXPECT_EQ(TypeOf(*m, "TR").ToString(), "float32[8, N0, 8]");
  EXPECT_EQ(TypeOf(*m, "CC").ToString(), "float32[8, N0, 16]");
  EXPECT_EQ(TypeOf(*m, "U").ToString(), "float32[1, 8, N0, 16]");
  EXPECT_EQ(TypeOf(*m, "RM").ToString(), "float32[1, 8, N0]");
  EXPECT_EQ(TypeOf(*m, "Y").ToString(), "int64[1, 8, N0]");
  EXPECT_EQ(TypeOf(*m, "G").ToString(), "float32[N0, 4, 1, 1]");
  EXPECT_EQ(TypeOf(*m, "B").ToString(), "bool[N0, 4, 1, 1]");
  // The inferred shapes are the ones the kernels produce.
  auto out = m->Run(std::vector<Tensor>{Tensor(DType::kFloat32, {2, 3, 8, 8})});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ((*out)[0].shape(), (std::vector<int64_t>{1, 8, 2}));
  EXPECT_EQ((*out)[1].shape(), (std::vector<int64_t>{2, 4, 1, 1}));
}

TEST(ShapeInference, UnknownStaysDynamicAndTheModelStillRuns) {
  // NonZero's output length is data dependent; Shape of it is known to be [2].
  auto m = Load(ModelBytes(Graph({Node("NonZero", {"X"}, {"NZ"}), Node("Shape", {"NZ"}, {"Y"})}, {},
                                 {ValueInfo("X", 1, {2, 3})}, {ValueInfo("Y", 7, {2})})));
  ASSERT_TRUE(m);
  EXPECT_EQ(TypeOf(*m, "NZ").ToString(), "int64[2, ?]");
  EXPECT_EQ(TypeOf(*m, "Y").ToString(), "int64[2]");
  auto out = m->Run(std::vector<Tensor>{Tensor::From<float>({2, 3}, {0, 1, 0, 2, 0, 3})});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ((*out)[0].data<int64_t>()[1], 3);
}

TEST(ShapeInference, CertainDtypeMismatchIsRejectedAtLoadNamingTheNode) {
  WireWriter d;
  d.Int64Field(1, 2);
  d.Int64Field(2, 11);  // DOUBLE
  d.BytesField(8, "D");
  const double dv[2] = {1, 2};
  d.BytesField(9, std::string(reinterpret_cast<const char*>(dv), sizeof dv));
  auto r = Model::LoadOnnx(
      ModelBytes(Graph({Node("Relu", {"X"}, {"R"}), Node("Add", {"R", "D"}, {"Y"}, {}, "", "mix")},
                       {d.str()}, {ValueInfo("X", 1, {-1, 2})}, {ValueInfo("Y", 1, {-1, 2})})));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("node 'mix' (Add)"), std::string::npos)
      << r.status().ToString();
  EXPECT_NE(r.status().message().find("float32 and float64"), std::string::npos)
      << r.status().ToString();
  // An input without a declared type is never guessed: the same graph then loads.
  WireWriter untyped;
  untyped.BytesField(1, "X");
  auto ok = Model::LoadOnnx(
      ModelBytes(Graph({Node("Relu", {"X"}, {"R"}), Node("Add", {"R", "D"}, {"Y"}, {}, "", "mix")},
                       {d.str()}, {untyped.str()}, {ValueInfo("Y", 1, {-1, 2})})));
  EXPECT_TRUE(ok.ok()) << ok.status().ToString();
}

TEST(ShapeInference, StaticShapesArePlanned) {
  // Fixed batch: every intermediate is static, so the plan sizes the arena up front. Each
  // Relu is fused into the Gemm before it, so R1 and R2 are the intermediates, both live
  // while the second Gemm runs.
  auto m = Load(ModelBytes(Graph({Node("Gemm", {"X", "W1"}, {"H1"}), Node("Relu", {"H1"}, {"R1"}),
                                  Node("Gemm", {"R1", "W2"}, {"H2"}), Node("Relu", {"H2"}, {"R2"}),
                                  Node("Gemm", {"R2", "W3"}, {"Y"})},
                                 {FloatTensor("W1", {4, 256}, Weights(4 * 256, 0.1f)),
                                  FloatTensor("W2", {256, 256}, Weights(256 * 256, 0.1f)),
                                  FloatTensor("W3", {256, 2}, Weights(256 * 2, 0.1f))},
                                 {ValueInfo("X", 1, {8, 4})}, {ValueInfo("Y", 1, {8, 2})})));
  ASSERT_TRUE(m);
  const ModelPlanInfo* plan = PlanInfo(*m);
  ASSERT_NE(plan, nullptr);
  EXPECT_EQ(plan->unplanned_bytes, 2u * 8 * 256 * 4);  // R1, R2 (each Relu fused into its Gemm)
  EXPECT_EQ(plan->planned_blocks, 2u);                 // two live at a time
  EXPECT_EQ(plan->planned_bytes, 2u * 8 * 256 * 4);
  auto out = m->Run(std::vector<Tensor>{Input(8, 4, 0)});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(ArenaStats(*m).misses, 0u);  // the pre-sized arena served the first run
}

// ---------------------------------------------------------------- arena

TEST(TensorArena, ReusesBlocksBySizeClassAndOutlivesItsOwner) {
  auto arena = std::make_shared<TensorArena>(1 << 20);
  void* first = nullptr;
  {
    std::shared_ptr<void> a = arena->Allocate(1000);
    first = a.get();
    std::memset(a.get(), 1, 1000);
  }
  std::shared_ptr<void> b = arena->Allocate(900);  // same class (1024)
  EXPECT_EQ(b.get(), first);
  EXPECT_EQ(arena->stats().hits, 1u);
  EXPECT_EQ(arena->stats().misses, 1u);
  std::shared_ptr<void> c = arena->Allocate(1000);  // b is still out: a new block
  EXPECT_NE(c.get(), first);
  // Dropping the owner's reference: outstanding buffers keep the arena alive.
  std::weak_ptr<TensorArena> weak = arena;
  arena.reset();
  EXPECT_FALSE(weak.expired());
  std::memset(b.get(), 2, 900);
  b.reset();
  c.reset();
  EXPECT_TRUE(weak.expired());
}

TEST(TensorArena, CachedBytesStayWithinTheCapAndIdleBlocksAge) {
  auto arena = std::make_shared<TensorArena>(64 << 10);
  {
    std::vector<std::shared_ptr<void>> held;
    for (int i = 0; i < 8; ++i) held.push_back(arena->Allocate(16 << 10));
  }
  // 8 x 16 KiB were live at once: the cap grew to 1.25x that peak, all are cached.
  EXPECT_EQ(arena->stats().cached_blocks, 8u);
  EXPECT_LE(arena->stats().cached_bytes, arena->stats().cap_bytes);
  // Runs that use one small block: the big ones age out and the cap returns to its base.
  for (int run = 0; run < 300; ++run) {
    arena->Allocate(100).reset();
    arena->EndRun(64);
  }
  const TensorArena::Stats s = arena->stats();
  EXPECT_EQ(s.cached_blocks, 1u);
  EXPECT_EQ(s.cap_bytes, 64u << 10);
  EXPECT_EQ(TensorArena::ClassBytes(1), 64u);
  EXPECT_EQ(TensorArena::ClassBytes(257), 320u);
  EXPECT_EQ(TensorArena::ClassBytes(4096), 4096u);
  EXPECT_EQ(TensorArena::ClassBytes(4097), 5120u);
}

// ---------------------------------------------------------------- steady state

struct RunCounts {
  size_t allocs = 0;
  size_t large_allocs = 0;
  size_t large_bytes = 0;
};

// Runs `m` `runs` times on `x` and returns the heap allocations of the last run.
RunCounts SteadyRun(const Model& m, const Tensor& x, int runs) {
  RunCounts c;
  for (int i = 0; i < runs; ++i) {
#ifdef SERVEML_COUNT_ALLOCS
    tl_allocs = tl_large_allocs = tl_large_bytes = 0;
    tl_counting = i == runs - 1;
#endif
    auto out = m.Run(std::vector<Tensor>{x});
#ifdef SERVEML_COUNT_ALLOCS
    tl_counting = false;
    c = RunCounts{tl_allocs, tl_large_allocs, tl_large_bytes};
#endif
    EXPECT_TRUE(out.ok()) << out.status().ToString();
  }
  return c;
}

TEST(MemoryPlan, SteadyStateMlpRunTakesNoIntermediateMemoryFromTheHeap) {
  auto m = Load(MlpModel());
  ASSERT_TRUE(m);
  const Tensor x = Input(16, 64, 0);  // intermediates are [16, 512] float: 32 KiB each
  SteadyRun(*m, x, 5);
  const uint64_t misses = ArenaStats(*m).misses;
  const RunCounts c = SteadyRun(*m, x, 50);
  EXPECT_EQ(ArenaStats(*m).misses, misses) << "intermediates left the arena";
  EXPECT_GT(ArenaStats(*m).hits, 0u);
#ifdef SERVEML_COUNT_ALLOCS
  // The output is [16, 8] float (512 bytes): no heap allocation may be intermediate-sized.
  EXPECT_EQ(c.large_allocs, 0u) << c.large_bytes << " bytes";
  std::printf("[ info ] MLP steady-state run: %zu heap allocations (%zu >= 4 KiB)\n", c.allocs,
              c.large_allocs);
#else
  (void)c;
#endif
}

TEST(MemoryPlan, SteadyStateTreeRunTakesNoIntermediateMemoryFromTheHeap) {
  auto m = Load(TreeModel(true));
  ASSERT_TRUE(m);
  const Tensor x = Input(2048, 4, 0);  // T and A are [2048, 1] float: 8 KiB each
  SteadyRun(*m, x, 5);
  const uint64_t misses = ArenaStats(*m).misses;
  const RunCounts c = SteadyRun(*m, x, 50);
  EXPECT_EQ(ArenaStats(*m).misses, misses) << "intermediates left the arena";
#ifdef SERVEML_COUNT_ALLOCS
  EXPECT_EQ(c.large_allocs, 0u) << c.large_bytes << " bytes";
  std::printf("[ info ] tree steady-state run: %zu heap allocations (%zu >= 4 KiB)\n", c.allocs,
              c.large_allocs);
#else
  (void)c;
#endif
}

// X[N, 3, 16, 16] -> Conv(8, 3x3, pad 1) -> Relu -> MaxPool 2x2 -> Conv(16, 3x3, pad 1) ->
// Relu -> GlobalAveragePool -> Flatten -> Gemm(16x4) -> Y[N, 4].
std::string CnnModel() {
  const std::string pads = AttrInts("pads", {1, 1, 1, 1});
  return ModelBytes(Graph(
      {Node("Conv", {"X", "C1", "CB1"}, {"H1"}, {pads}), Node("Relu", {"H1"}, {"R1"}),
       Node("MaxPool", {"R1"}, {"P1"},
            {AttrInts("kernel_shape", {2, 2}), AttrInts("strides", {2, 2})}),
       Node("Conv", {"P1", "C2", "CB2"}, {"H2"}, {pads}), Node("Relu", {"H2"}, {"R2"}),
       Node("GlobalAveragePool", {"R2"}, {"G"}), Node("Flatten", {"G"}, {"F"}),
       Node("Gemm", {"F", "W", "B"}, {"Y"})},
      {FloatTensor("C1", {8, 3, 3, 3}, Weights(8 * 27, 0.2f)),
       FloatTensor("CB1", {8}, Weights(8, 0.01f)),
       FloatTensor("C2", {16, 8, 3, 3}, Weights(16 * 72, 0.1f)),
       FloatTensor("CB2", {16}, Weights(16, 0.01f)), FloatTensor("W", {16, 4}, Weights(64, 0.1f)),
       FloatTensor("B", {4}, Weights(4, 0.01f))},
      {ValueInfo("X", 1, {-1, 3, 16, 16})}, {ValueInfo("Y", 1, {-1, 4})}));
}

// The engine's own kernels (small-batch GEMM, direct convolution, pooling) keep every shape
// inline and every intermediate in the arena: once warm, a run's only heap allocations are
// its results. Counted per run: the caller's input vector, the returned output vector, the
// output tensor's buffer and that buffer's shared ownership record.
TEST(MemoryPlan, SteadyStateRunsAllocateOnlyTheirResults) {
  auto mlp = Load(MlpModel());
  auto cnn = Load(CnnModel());
  ASSERT_TRUE(mlp && cnn);
  const RunCounts m = SteadyRun(*mlp, Input(4, 64, 0), 20);  // batch <= 8: in-house GEMM
  std::vector<float> pixels(2 * 3 * 16 * 16);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<float>(i % 17) / 8 - 1;
  const RunCounts c = SteadyRun(*cnn, Tensor::From<float>({2, 3, 16, 16}, pixels), 20);
#ifdef SERVEML_COUNT_ALLOCS
  EXPECT_EQ(m.allocs, 4u);
  EXPECT_EQ(c.allocs, 4u);
#else
  (void)m;
  (void)c;
#endif
}

TEST(MemoryPlan, VaryingBatchSizesStayBounded) {
  auto m = Load(MlpModel());
  ASSERT_TRUE(m);
  for (int64_t batch : {1, 512, 3, 256, 1}) {
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(m->Run(std::vector<Tensor>{Input(batch, 64, 0)}).ok());
  }
  for (int i = 0; i < 200; ++i) ASSERT_TRUE(m->Run(std::vector<Tensor>{Input(2, 64, 0)}).ok());
  const TensorArena::Stats s = ArenaStats(*m);
  EXPECT_LE(s.cached_bytes, s.cap_bytes);
  EXPECT_LT(s.cached_bytes, 64u << 10) << "blocks of the large batches should have aged out";
}

// ---------------------------------------------------------------- lifetime and aliasing

TEST(MemoryPlan, AliasedOutputsStayValidAcrossRunsAndAfterTheModelIsGone) {
  // Y = Reshape(Relu(X)): Relu's block is an arena block and Y shares it.
  auto m = Load(ModelBytes(Graph({Node("Relu", {"X"}, {"R"}), Node("Reshape", {"R", "S"}, {"Y"}),
                                  Node("Sigmoid", {"X"}, {"Z"})},
                                 {Int64Tensor("S", {1}, {-1})}, {ValueInfo("X", 1, {-1, 256})},
                                 {ValueInfo("Y", 1, {-1}), ValueInfo("Z", 1, {-1, 256})})));
  ASSERT_TRUE(m);
  auto first = m->Run(std::vector<Tensor>{Input(4, 256, 0.5f)});
  ASSERT_TRUE(first.ok());
  const std::vector<float> expect = Floats((*first)[0]);
  for (int i = 0; i < 10; ++i) {
    auto again = m->Run(std::vector<Tensor>{Input(4, 256, -3.0f)});
    ASSERT_TRUE(again.ok());
  }
  EXPECT_EQ(Floats((*first)[0]), expect);
  m.reset();  // the model and its arenas' owner are gone
  EXPECT_EQ(Floats((*first)[0]), expect);
}

// ---------------------------------------------------------------- concurrency

void ExpectConcurrentRunsMatch(const std::string& bytes, int64_t features,
                               const std::vector<int64_t>& batches) {
  auto m = Load(bytes);
  ASSERT_TRUE(m);
  std::vector<std::vector<float>> expect;
  for (int64_t b : batches) {
    auto out = m->Run(std::vector<Tensor>{Input(b, features, 0.25f)});
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    expect.push_back(Floats((*out)[0]));
  }
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int it = 0; it < 40; ++it) {
        const size_t k = static_cast<size_t>(t + it) % batches.size();
        auto out = m->Run(std::vector<Tensor>{Input(batches[k], features, 0.25f)});
        if (!out.ok() || Floats((*out)[0]) != expect[k]) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST(MemoryPlan, ConcurrentMlpRunsWithDifferentBatchSizesMatchSingleThreaded) {
  ExpectConcurrentRunsMatch(MlpModel(), 64, {1, 3, 17, 64, 130});
}

TEST(MemoryPlan, ConcurrentTreeRunsWithDifferentBatchSizesMatchSingleThreaded) {
  ExpectConcurrentRunsMatch(TreeModel(false), 4, {1, 5, 127, 300, 1000});
}

}  // namespace
}  // namespace serveml::engine
