// Per-deployment prediction metrics: lock-free recording on the prediction hot path,
// per-minute aggregates flushed to the MetadataStore, roll-ups into 5-minute, hourly and
// daily rows, retention per resolution, and the queries behind GET /api/v1/metrics/{id},
// the deployment's metrics_summary and the user's total_predictions.
//
// Recording (DeploymentMetrics::Record) takes no lock. Each deployment owns a ring of four
// minute slots; a slot is a block of relaxed atomics (counters, a fixed-bucket latency
// histogram and a small lock-free open-addressing set of caller hashes) tagged with the
// minute it collects. A prediction computes the current minute, checks the tag of slot
// `minute % 4` (one acquire load) and adds to it. The flusher (a scheduler job) pre-tags the
// next minute's slot ahead of time and drains a finished minute's slot with atomic
// exchanges, so counts are conserved even if a straggling writer adds to a slot while it is
// drained (its increment lands in the next drain). Only if a slot's tag is wrong (the flusher
// stalled for a minute, or the clock jumped) does a writer take the deployment's mutex to
// retag the slot, moving what it held aside first. More than kCallerSlots distinct callers
// within one minute spill into a mutex-guarded set (the only contended case).
//
// Consistency: a query holds a shared lock that the flusher holds exclusively while it moves
// drained data into the store, so every recorded prediction is counted exactly once: either
// from the store or from memory (the unflushed current minute shows up immediately).
//
// Thread safety: every public method is thread safe. Times are Unix seconds (UTC) unless
// named otherwise; latencies are nanoseconds.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/status.h"
#include "store/metadata_store.h"

namespace serveml::platform {

// --- Latency histogram -----------------------------------------------------------------
// Log-linear buckets: bucket 0 holds [0, 1.024 µs); then each power of two from 2^10 ns to
// 2^36 ns (~68.7 s) is split into 4 equal sub-buckets (upper/lower <= 1.25); the last bucket
// holds everything >= 2^36 ns.
inline constexpr int kLatencySubBuckets = 4;
inline constexpr int kLatencyMinExp = 10;
inline constexpr int kLatencyMaxExp = 36;
inline constexpr int kLatencyBuckets =
    1 + (kLatencyMaxExp - kLatencyMinExp) * kLatencySubBuckets + 1;

// Index of the bucket holding `nanos` (negative counts as 0).
int LatencyBucket(int64_t nanos);
// Inclusive lower and exclusive upper bound of bucket `b`, in nanoseconds (the last
// bucket's upper bound is reported as its lower bound times 1.25).
int64_t LatencyBucketLower(int b);
int64_t LatencyBucketUpper(int b);

// 64-bit hash of a caller identity (user id, API key id or anonymous address); never 0.
uint64_t CallerHash(std::string_view caller);

// At most this many caller hashes are kept per stored row; beyond it unique_users is a
// lower bound.
inline constexpr size_t kMaxCallersPerRow = 4096;

// A mergeable aggregate of predictions (a plain value; not thread safe).
struct MetricsAggregate {
  int64_t requests = 0;
  int64_t errors = 0;
  int64_t rows = 0;
  int64_t cold_starts = 0;
  int64_t latency_sum_ns = 0;
  std::array<int64_t, kLatencyBuckets> histogram{};
  std::vector<uint64_t> callers;  // sorted, unique

  bool empty() const { return requests == 0 && cold_starts == 0; }
  void Merge(const MetricsAggregate& o);
  // Adds caller hashes (sorted+unique afterwards, capped at `cap`).
  void AddCallers(const std::vector<uint64_t>& hashes, size_t cap = SIZE_MAX);
  // Mean latency in milliseconds (0 without requests).
  double AvgLatencyMs() const;
  // The q-quantile (0 < q <= 1) of the latency histogram in milliseconds, interpolated
  // linearly inside the bucket that holds it; 0 without requests.
  double PercentileMs(double q) const;
};

// Row encoding (the blobs the store keeps opaque).
std::string EncodeHistogram(const std::array<int64_t, kLatencyBuckets>& h);
bool DecodeHistogram(std::string_view blob, std::array<int64_t, kLatencyBuckets>* h);
std::string EncodeCallers(const std::vector<uint64_t>& sorted_hashes);
bool DecodeCallers(std::string_view blob, std::vector<uint64_t>* hashes);
store::MetricsRow ToRow(const std::string& deployment_id, int64_t bucket_start,
                        const MetricsAggregate& a);
// Corrupt blobs decode as empty (the counters still count).
MetricsAggregate FromRow(const store::MetricsRow& row);

// --- Recording -------------------------------------------------------------------------

// The live, not yet flushed metrics of one deployment. Record() and RecordColdStart() are
// the hot path: lock-free (see the file comment). Owned by Metrics; the prediction path
// holds a shared_ptr through its ServingHandle.
class DeploymentMetrics {
 public:
  // Lock-free slots of the caller set in each minute slot.
  static constexpr int kCallerSlots = 256;
  static constexpr int kRing = 4;

  DeploymentMetrics(std::string deployment_id, int64_t now_unix_seconds);
  DeploymentMetrics(const DeploymentMetrics&) = delete;
  DeploymentMetrics& operator=(const DeploymentMetrics&) = delete;

  const std::string& deployment_id() const { return id_; }

  // Records one prediction request that reached this deployment: `ok` false for every
  // failure (bad input, model error), `rows` its batch size (0 if unknown), `caller` from
  // CallerHash (0 = do not count a caller). Uses the coarse wall clock.
  void Record(int64_t latency_ns, bool ok, int64_t rows, uint64_t caller);
  // As Record, at an explicit time (tests, replays).
  void RecordAt(int64_t unix_seconds, int64_t latency_ns, bool ok, int64_t rows, uint64_t caller);
  // Counts a cold start (a model load a request had to wait for).
  void RecordColdStart();
  void RecordColdStartAt(int64_t unix_seconds);

 private:
  friend class Metrics;

  // Tag values: >= 0 live minute; -1 never used; <= -2 drained minute (-2 - tag).
  struct alignas(64) Slot {
    std::atomic<int64_t> tag{-1};
    alignas(64) std::atomic<int64_t> requests{0};
    std::atomic<int64_t> errors{0};
    std::atomic<int64_t> rows{0};
    std::atomic<int64_t> cold_starts{0};
    std::atomic<int64_t> latency_sum_ns{0};
    std::array<std::atomic<int64_t>, kLatencyBuckets> histogram{};
    std::array<std::atomic<uint64_t>, kCallerSlots> callers{};
  };

  static int64_t TagMinute(int64_t tag) { return tag >= 0 ? tag : (tag <= -2 ? -2 - tag : -1); }
  Slot& SlotFor(int64_t minute);
  void AddCaller(Slot& s, int64_t minute, uint64_t caller);
  // The following need mu_.
  void RetagLocked(Slot& s, int64_t minute);
  MetricsAggregate DrainLocked(Slot& s, int64_t minute);
  MetricsAggregate PeekLocked(const Slot& s, int64_t minute) const;

  const std::string id_;
  std::array<Slot, kRing> slots_;
  mutable std::mutex mu_;  // slow path (retag, caller overflow), drains, peeks
  std::map<int64_t, MetricsAggregate> pending_;  // minute -> drained, unwritten
  std::map<int64_t, std::unordered_set<uint64_t>> overflow_callers_;  // minute -> callers
};

// --- The service -----------------------------------------------------------------------

struct MetricsOptions {
  // A finished minute is flushed this long after it ends (lets stragglers land).
  int64_t flush_grace_seconds = 2;
  // Retention per resolution, in days.
  int64_t minute_retention_days = 2;
  int64_t five_minute_retention_days = 14;
  int64_t hour_retention_days = 90;
  int64_t day_retention_days = 730;
  // Cost estimate prices (USD).
  double price_per_million_requests = 0.20;
  double price_per_gb_second = 0.0000166667;
};

// One point of a time series.
struct MetricsPoint {
  int64_t bucket_start = 0;
  MetricsAggregate aggregate;
};

// The answer to a metrics query over [start, end).
struct MetricsReport {
  std::string deployment_id;
  store::MetricsResolution resolution = store::MetricsResolution::kMinute;
  int64_t start = 0;  // aligned down to the resolution
  int64_t end = 0;    // now
  MetricsAggregate total;
  std::vector<MetricsPoint> series;  // every bucket of the period, empty ones included
  double cost_requests_usd = 0;
  double cost_compute_usd = 0;
  double gb_seconds = 0;
};

class Metrics {
 public:
  // `store` must outlive this object. `clock` returns Unix seconds (default: wall clock);
  // tests inject one to drive flushes and roll-ups.
  Metrics(store::MetadataStore* store, MetricsOptions options,
          std::function<int64_t()> clock = nullptr);
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  const MetricsOptions& options() const { return options_; }

  // The recorder of a deployment, created on first use. Never null.
  std::shared_ptr<DeploymentMetrics> ForDeployment(const std::string& deployment_id);
  // Drops the in-memory data of a deleted deployment (its stored rows go with its row).
  void Forget(const std::string& deployment_id);

  // Scheduler jobs. Blocking (database writes); call from one thread at a time.
  // Writes every finished minute (grace elapsed) and pre-tags the next minute's slots.
  Status Flush();
  // Writes everything, the current partial minute included (at shutdown).
  Status FlushAll();
  // Rolls finished minutes into 5-minute rows, those into hours, those into days.
  Status RollUp();
  // Deletes rows older than each resolution's retention.
  Status ApplyRetention();

  // Blocking queries (read the store).
  // Metrics of the last `hours` hours at `r` (period aligned down to `r`).
  Result<MetricsReport> Query(const std::string& deployment_id, int64_t memory_mb, int64_t hours,
                              store::MetricsResolution r);
  // All-time totals of one deployment, unflushed data included.
  Result<store::MetricsTotals> Totals(const std::string& deployment_id);
  // All-time requests over `deployment_ids` (all of one user), unflushed included.
  Result<int64_t> UserTotalRequests(const std::string& user_id,
                                    const std::vector<std::string>& deployment_ids);

  // The resolution a query of `hours` uses by default: 1m up to 6 h, 5m up to 48 h, 1h up to
  // 30 days, 1d beyond.
  static store::MetricsResolution DefaultResolution(int64_t hours);

  // Roll-up step, exposed for tests: aggregates `rows` of a finer resolution into buckets of
  // `to` (totals are preserved exactly).
  static std::vector<store::MetricsRow> RollRows(const std::vector<store::MetricsRow>& rows,
                                                 store::MetricsResolution to);

 private:
  std::vector<std::shared_ptr<DeploymentMetrics>> Snapshot();
  Status FlushImpl(bool everything);
  Status RollUpLevel(store::MetricsResolution from, store::MetricsResolution to,
                     int64_t source_complete_until);
  // Unflushed data of one deployment by minute. Needs flush_mu_ (any mode).
  std::map<int64_t, MetricsAggregate> Unflushed(const std::string& deployment_id);

  store::MetadataStore* store_;
  const MetricsOptions options_;
  std::function<int64_t()> clock_;

  std::mutex map_mu_;  // guards deployments_ (not on the hot path)
  std::unordered_map<std::string, std::shared_ptr<DeploymentMetrics>> deployments_;

  // Exclusive while the flusher moves drained data into the store; shared by queries.
  std::shared_mutex flush_mu_;
  std::atomic<int64_t> flushed_until_{0};  // every minute before this is in the store
};

}  // namespace serveml::platform
