#include "platform/metrics.h"

#include <time.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <mutex>
#include <set>

#include "core/clock.h"
#include "core/log.h"

namespace serveml::platform {

using store::MetricsResolution;
using store::MetricsRow;

namespace {

int64_t CoarseUnixSeconds() {
  struct timespec ts {};
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return static_cast<int64_t>(ts.tv_sec);
}

int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

int64_t AlignDown(int64_t t, int64_t len) { return FloorDiv(t, len) * len; }

void PutVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

bool GetVarint(std::string_view* in, uint64_t* v) {
  uint64_t result = 0;
  for (int shift = 0; shift < 64 && !in->empty(); shift += 7) {
    auto byte = static_cast<uint8_t>(in->front());
    in->remove_prefix(1);
    result |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      *v = result;
      return true;
    }
  }
  return false;
}

constexpr char kEncodingVersion = 1;

}  // namespace

// --- Histogram -------------------------------------------------------------------------

int LatencyBucket(int64_t nanos) {
  if (nanos < (int64_t{1} << kLatencyMinExp)) return 0;
  int e = std::bit_width(static_cast<uint64_t>(nanos)) - 1;  // 2^e <= nanos < 2^(e+1)
  if (e >= kLatencyMaxExp) return kLatencyBuckets - 1;
  int sub = static_cast<int>((static_cast<uint64_t>(nanos) >> (e - 2)) & 3);
  return 1 + (e - kLatencyMinExp) * kLatencySubBuckets + sub;
}

int64_t LatencyBucketLower(int b) {
  if (b <= 0) return 0;
  if (b >= kLatencyBuckets - 1) return int64_t{1} << kLatencyMaxExp;
  int e = kLatencyMinExp + (b - 1) / kLatencySubBuckets;
  int sub = (b - 1) % kLatencySubBuckets;
  return static_cast<int64_t>(4 + sub) << (e - 2);
}

int64_t LatencyBucketUpper(int b) {
  if (b <= 0) return int64_t{1} << kLatencyMinExp;
  if (b >= kLatencyBuckets - 1) return (int64_t{5} << kLatencyMaxExp) / 4;
  return LatencyBucketLower(b + 1);
}

uint64_t CallerHash(std::string_view caller) {
  // FNV-1a, then a murmur finalizer to spread the bits over the table index.
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : caller) {
    h ^= c;
    h *= 1099511628211ull;
  }
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h == 0 ? 1 : h;
}

// --- Aggregate -------------------------------------------------------------------------

void MetricsAggregate::Merge(const MetricsAggregate& o) {
  requests += o.requests;
  errors += o.errors;
  rows += o.rows;
  cold_starts += o.cold_starts;
  latency_sum_ns += o.latency_sum_ns;
  for (int i = 0; i < kLatencyBuckets; ++i) histogram[i] += o.histogram[i];
  if (!o.callers.empty()) AddCallers(o.callers);
}

void MetricsAggregate::AddCallers(const std::vector<uint64_t>& hashes, size_t cap) {
  if (hashes.empty()) return;
  std::vector<uint64_t> sorted = hashes;
  std::sort(sorted.begin(), sorted.end());
  std::vector<uint64_t> merged;
  merged.reserve(callers.size() + sorted.size());
  std::set_union(callers.begin(), callers.end(), sorted.begin(), sorted.end(),
                 std::back_inserter(merged));
  merged.erase(std::unique(merged.begin(), merged.end()), merged.end());
  if (merged.size() > cap) merged.resize(cap);
  callers = std::move(merged);
}

double MetricsAggregate::AvgLatencyMs() const {
  return requests > 0 ? static_cast<double>(latency_sum_ns) / static_cast<double>(requests) / 1e6
                      : 0.0;
}

double MetricsAggregate::PercentileMs(double q) const {
  int64_t n = 0;
  for (int64_t c : histogram) n += c;
  if (n == 0) return 0.0;
  q = std::clamp(q, 0.0, 1.0);
  // Rank of the sample (1-based, nearest-rank definition).
  auto rank = static_cast<int64_t>(std::ceil(q * static_cast<double>(n)));
  rank = std::clamp<int64_t>(rank, 1, n);
  int64_t seen = 0;
  for (int b = 0; b < kLatencyBuckets; ++b) {
    int64_t c = histogram[b];
    if (c == 0) continue;
    if (seen + c >= rank) {
      double lo = static_cast<double>(LatencyBucketLower(b));
      double hi = static_cast<double>(LatencyBucketUpper(b));
      double frac = (static_cast<double>(rank - seen) - 0.5) / static_cast<double>(c);
      return (lo + (hi - lo) * frac) / 1e6;
    }
    seen += c;
  }
  return static_cast<double>(LatencyBucketLower(kLatencyBuckets - 1)) / 1e6;
}

// --- Encoding --------------------------------------------------------------------------

std::string EncodeHistogram(const std::array<int64_t, kLatencyBuckets>& h) {
  std::string out(1, kEncodingVersion);
  int prev = -1;
  for (int b = 0; b < kLatencyBuckets; ++b) {
    if (h[b] <= 0) continue;
    PutVarint(&out, static_cast<uint64_t>(b - prev));
    PutVarint(&out, static_cast<uint64_t>(h[b]));
    prev = b;
  }
  return out;
}

bool DecodeHistogram(std::string_view blob, std::array<int64_t, kLatencyBuckets>* h) {
  h->fill(0);
  if (blob.empty()) return true;
  if (blob.front() != kEncodingVersion) return false;
  blob.remove_prefix(1);
  int64_t b = -1;
  while (!blob.empty()) {
    uint64_t delta = 0, count = 0;
    if (!GetVarint(&blob, &delta) || !GetVarint(&blob, &count)) return false;
    b += static_cast<int64_t>(delta);
    if (delta == 0 || b >= kLatencyBuckets) return false;
    (*h)[b] = static_cast<int64_t>(count);
  }
  return true;
}

std::string EncodeCallers(const std::vector<uint64_t>& sorted_hashes) {
  std::string out(1, kEncodingVersion);
  PutVarint(&out, sorted_hashes.size());
  uint64_t prev = 0;
  for (uint64_t v : sorted_hashes) {
    PutVarint(&out, v - prev);  // sorted: deltas are non-negative
    prev = v;
  }
  return out;
}

bool DecodeCallers(std::string_view blob, std::vector<uint64_t>* hashes) {
  hashes->clear();
  if (blob.empty()) return true;
  if (blob.front() != kEncodingVersion) return false;
  blob.remove_prefix(1);
  uint64_t n = 0;
  if (!GetVarint(&blob, &n) || n > blob.size()) return false;
  hashes->reserve(n);
  uint64_t v = 0;
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t d = 0;
    if (!GetVarint(&blob, &d)) return false;
    v += d;
    hashes->push_back(v);
  }
  return blob.empty();
}

MetricsRow ToRow(const std::string& deployment_id, int64_t bucket_start,
                 const MetricsAggregate& a) {
  MetricsRow r;
  r.deployment_id = deployment_id;
  r.bucket_start = bucket_start;
  r.request_count = a.requests;
  r.error_count = a.errors;
  r.row_count = a.rows;
  r.cold_starts = a.cold_starts;
  r.latency_sum_ns = a.latency_sum_ns;
  r.histogram = EncodeHistogram(a.histogram);
  std::vector<uint64_t> callers = a.callers;
  if (callers.size() > kMaxCallersPerRow) callers.resize(kMaxCallersPerRow);
  r.callers = EncodeCallers(callers);
  return r;
}

MetricsAggregate FromRow(const MetricsRow& row) {
  MetricsAggregate a;
  a.requests = row.request_count;
  a.errors = row.error_count;
  a.rows = row.row_count;
  a.cold_starts = row.cold_starts;
  a.latency_sum_ns = row.latency_sum_ns;
  if (!DecodeHistogram(row.histogram, &a.histogram)) a.histogram.fill(0);
  if (!DecodeCallers(row.callers, &a.callers)) a.callers.clear();
  return a;
}

// --- DeploymentMetrics -----------------------------------------------------------------

DeploymentMetrics::DeploymentMetrics(std::string deployment_id, int64_t now_unix_seconds)
    : id_(std::move(deployment_id)) {
  int64_t m = FloorDiv(now_unix_seconds, 60);
  std::lock_guard lock(mu_);
  RetagLocked(slots_[static_cast<size_t>(m & (kRing - 1))], m);
  RetagLocked(slots_[static_cast<size_t>((m + 1) & (kRing - 1))], m + 1);
}

DeploymentMetrics::Slot& DeploymentMetrics::SlotFor(int64_t minute) {
  Slot& s = slots_[static_cast<size_t>(minute & (kRing - 1))];
  if (s.tag.load(std::memory_order_acquire) != minute) [[unlikely]] {
    std::lock_guard lock(mu_);
    if (s.tag.load(std::memory_order_relaxed) != minute) RetagLocked(s, minute);
  }
  return s;
}

void DeploymentMetrics::RecordAt(int64_t unix_seconds, int64_t latency_ns, bool ok, int64_t rows,
                                 uint64_t caller) {
  int64_t minute = FloorDiv(unix_seconds, 60);
  Slot& s = SlotFor(minute);
  s.requests.fetch_add(1, std::memory_order_relaxed);
  if (!ok) s.errors.fetch_add(1, std::memory_order_relaxed);
  if (rows > 0) s.rows.fetch_add(rows, std::memory_order_relaxed);
  if (latency_ns < 0) latency_ns = 0;
  s.latency_sum_ns.fetch_add(latency_ns, std::memory_order_relaxed);
  s.histogram[static_cast<size_t>(LatencyBucket(latency_ns))].fetch_add(1,
                                                                        std::memory_order_relaxed);
  if (caller != 0) AddCaller(s, minute, caller);
}

void DeploymentMetrics::Record(int64_t latency_ns, bool ok, int64_t rows, uint64_t caller) {
  RecordAt(CoarseUnixSeconds(), latency_ns, ok, rows, caller);
}

void DeploymentMetrics::RecordColdStartAt(int64_t unix_seconds) {
  SlotFor(FloorDiv(unix_seconds, 60)).cold_starts.fetch_add(1, std::memory_order_relaxed);
}

void DeploymentMetrics::RecordColdStart() { RecordColdStartAt(CoarseUnixSeconds()); }

void DeploymentMetrics::AddCaller(Slot& s, int64_t minute, uint64_t caller) {
  // Linear probing; a repeat caller is found with loads only (no write to a shared line).
  constexpr int kMaxProbes = 64;
  size_t i = static_cast<size_t>(caller) & (kCallerSlots - 1);
  for (int p = 0; p < kMaxProbes; ++p, i = (i + 1) & (kCallerSlots - 1)) {
    uint64_t cur = s.callers[i].load(std::memory_order_relaxed);
    if (cur == caller) return;
    if (cur == 0) {
      if (s.callers[i].compare_exchange_strong(cur, caller, std::memory_order_relaxed)) return;
      if (cur == caller) return;
    }
  }
  // More distinct callers this minute than the lock-free table holds: the one contended case.
  std::lock_guard lock(mu_);
  overflow_callers_[minute].insert(caller);
}

void DeploymentMetrics::RetagLocked(Slot& s, int64_t minute) {
  int64_t old = TagMinute(s.tag.load(std::memory_order_relaxed));
  if (old >= 0) {
    MetricsAggregate leftover = DrainLocked(s, old);
    if (!leftover.empty() || !leftover.callers.empty()) pending_[old].Merge(leftover);
  }
  s.tag.store(minute, std::memory_order_release);
}

MetricsAggregate DeploymentMetrics::DrainLocked(Slot& s, int64_t minute) {
  MetricsAggregate a;
  a.requests = s.requests.exchange(0, std::memory_order_relaxed);
  a.errors = s.errors.exchange(0, std::memory_order_relaxed);
  a.rows = s.rows.exchange(0, std::memory_order_relaxed);
  a.cold_starts = s.cold_starts.exchange(0, std::memory_order_relaxed);
  a.latency_sum_ns = s.latency_sum_ns.exchange(0, std::memory_order_relaxed);
  for (int b = 0; b < kLatencyBuckets; ++b) {
    a.histogram[b] = s.histogram[b].exchange(0, std::memory_order_relaxed);
  }
  std::vector<uint64_t> callers;
  for (auto& c : s.callers) {
    uint64_t v = c.exchange(0, std::memory_order_relaxed);
    if (v != 0) callers.push_back(v);
  }
  if (auto it = overflow_callers_.find(minute); it != overflow_callers_.end()) {
    callers.insert(callers.end(), it->second.begin(), it->second.end());
    overflow_callers_.erase(it);
  }
  a.AddCallers(callers);
  return a;
}

MetricsAggregate DeploymentMetrics::PeekLocked(const Slot& s, int64_t minute) const {
  MetricsAggregate a;
  a.requests = s.requests.load(std::memory_order_relaxed);
  a.errors = s.errors.load(std::memory_order_relaxed);
  a.rows = s.rows.load(std::memory_order_relaxed);
  a.cold_starts = s.cold_starts.load(std::memory_order_relaxed);
  a.latency_sum_ns = s.latency_sum_ns.load(std::memory_order_relaxed);
  for (int b = 0; b < kLatencyBuckets; ++b)
    a.histogram[b] = s.histogram[b].load(std::memory_order_relaxed);
  std::vector<uint64_t> callers;
  for (const auto& c : s.callers) {
    uint64_t v = c.load(std::memory_order_relaxed);
    if (v != 0) callers.push_back(v);
  }
  if (auto it = overflow_callers_.find(minute); it != overflow_callers_.end()) {
    callers.insert(callers.end(), it->second.begin(), it->second.end());
  }
  a.AddCallers(callers);
  return a;
}

// --- Metrics ---------------------------------------------------------------------------

Metrics::Metrics(store::MetadataStore* store, MetricsOptions options,
                 std::function<int64_t()> clock)
    : store_(store), options_(options), clock_(std::move(clock)) {
  if (!clock_) clock_ = [] { return NowUnixSeconds(); };
}

std::shared_ptr<DeploymentMetrics> Metrics::ForDeployment(const std::string& deployment_id) {
  std::lock_guard lock(map_mu_);
  auto& slot = deployments_[deployment_id];
  if (!slot) slot = std::make_shared<DeploymentMetrics>(deployment_id, clock_());
  return slot;
}

void Metrics::Forget(const std::string& deployment_id) {
  std::lock_guard lock(map_mu_);
  deployments_.erase(deployment_id);
}

std::vector<std::shared_ptr<DeploymentMetrics>> Metrics::Snapshot() {
  std::lock_guard lock(map_mu_);
  std::vector<std::shared_ptr<DeploymentMetrics>> out;
  out.reserve(deployments_.size());
  for (const auto& [id, dm] : deployments_) out.push_back(dm);
  return out;
}

Status Metrics::Flush() { return FlushImpl(false); }
Status Metrics::FlushAll() { return FlushImpl(true); }

Status Metrics::FlushImpl(bool everything) {
  const int64_t now = clock_();
  const int64_t cur = FloorDiv(now, 60);
  std::unique_lock flush_lock(flush_mu_);

  // 1. Drain finished minutes into each deployment's pending map and take those out.
  struct Taken {
    std::shared_ptr<DeploymentMetrics> dm;
    std::map<int64_t, MetricsAggregate> minutes;
  };
  std::vector<Taken> taken;
  for (auto& dm : Snapshot()) {
    std::lock_guard lock(dm->mu_);
    for (auto& s : dm->slots_) {
      int64_t tag = s.tag.load(std::memory_order_relaxed);
      if (tag == -1) continue;
      if (tag <= -2) {
        // Already drained; at shutdown sweep what stragglers may have added since.
        if (!everything) continue;
        int64_t minute = DeploymentMetrics::TagMinute(tag);
        MetricsAggregate a = dm->DrainLocked(s, minute);
        if (!a.empty() || !a.callers.empty()) dm->pending_[minute].Merge(a);
        continue;
      }
      bool finished = tag < cur && now >= (tag + 1) * 60 + options_.flush_grace_seconds;
      if (!everything && !finished) continue;
      MetricsAggregate a = dm->DrainLocked(s, tag);
      s.tag.store(-2 - tag, std::memory_order_release);
      if (!a.empty() || !a.callers.empty()) dm->pending_[tag].Merge(a);
    }
    if (!everything) {
      // Pre-tag this minute's and the next minute's slots so writers never retag.
      for (int64_t m : {cur, cur + 1}) {
        auto& s = dm->slots_[static_cast<size_t>(m & (DeploymentMetrics::kRing - 1))];
        if (s.tag.load(std::memory_order_relaxed) != m) dm->RetagLocked(s, m);
      }
    }
    // Pre-tagging may have moved stragglers of an old minute into pending_; take it all.
    if (!dm->pending_.empty()) taken.push_back({dm, std::move(dm->pending_)});
    dm->pending_.clear();
  }

  // 2. Merge with rows already stored for the same minutes (a restart within a minute, or
  // stragglers) and write rows and totals in one transaction.
  std::vector<MetricsRow> rows, totals;
  Status st;
  for (const Taken& t : taken) {
    if (t.minutes.empty()) continue;
    int64_t lo = t.minutes.begin()->first * 60;
    int64_t hi = (t.minutes.rbegin()->first + 1) * 60;
    auto existing = store_->ListMetrics(MetricsResolution::kMinute, t.dm->deployment_id(), lo, hi);
    if (!existing.ok()) {
      st = existing.status();
      break;
    }
    std::map<int64_t, MetricsAggregate> merged;
    for (const auto& r : *existing) {
      if (t.minutes.count(r.bucket_start / 60)) merged[r.bucket_start / 60] = FromRow(r);
    }
    MetricsAggregate delta;
    for (const auto& [minute, a] : t.minutes) {
      merged[minute].Merge(a);
      delta.Merge(
          MetricsAggregate{a.requests, a.errors, a.rows, a.cold_starts, a.latency_sum_ns, {}, {}});
      rows.push_back(ToRow(t.dm->deployment_id(), minute * 60, merged[minute]));
    }
    totals.push_back(ToRow(t.dm->deployment_id(), 0, delta));
  }
  if (st.ok() && !rows.empty())
    st = store_->WriteMetrics(MetricsResolution::kMinute, rows, totals, std::nullopt);
  if (!st.ok()) {
    // Keep the data for the next attempt.
    for (Taken& t : taken) {
      std::lock_guard lock(t.dm->mu_);
      for (auto& [minute, a] : t.minutes) t.dm->pending_[minute].Merge(a);
    }
    return st;
  }
  int64_t complete =
      everything ? (cur + 1) * 60 : AlignDown(now - options_.flush_grace_seconds, 60);
  int64_t prev = flushed_until_.load();
  if (complete > prev) flushed_until_.store(complete);
  return Status::Ok();
}

std::vector<MetricsRow> Metrics::RollRows(const std::vector<MetricsRow>& rows,
                                          MetricsResolution to) {
  const int64_t len = store::MetricsBucketSeconds(to);
  std::map<std::pair<std::string, int64_t>, MetricsAggregate> acc;
  for (const auto& r : rows)
    acc[{r.deployment_id, AlignDown(r.bucket_start, len)}].Merge(FromRow(r));
  std::vector<MetricsRow> out;
  out.reserve(acc.size());
  for (const auto& [key, a] : acc) out.push_back(ToRow(key.first, key.second, a));
  return out;
}

Status Metrics::RollUpLevel(MetricsResolution from, MetricsResolution to,
                            int64_t source_complete_until) {
  const int64_t len = store::MetricsBucketSeconds(to);
  const int64_t target = AlignDown(source_complete_until, len);
  ASSIGN_OR_RETURN(std::optional<int64_t> wm, store_->GetMetricsWatermark(to));
  int64_t start = 0;
  if (wm) {
    start = *wm;
  } else {
    // First roll-up: source rows cannot be older than the source's retention.
    int64_t days = from == MetricsResolution::kMinute        ? options_.minute_retention_days
                   : from == MetricsResolution::kFiveMinutes ? options_.five_minute_retention_days
                                                             : options_.hour_retention_days;
    start = AlignDown(target - (days + 1) * 86400, len);
  }
  if (start >= target) {
    if (!wm) return store_->WriteMetrics(to, {}, {}, target);
    return Status::Ok();
  }
  // One day (or one bucket, whichever is longer) per transaction.
  const int64_t chunk = std::max<int64_t>(len, 86400);
  for (int64_t a = start; a < target;) {
    int64_t b = std::min(target, a + chunk);
    ASSIGN_OR_RETURN(auto src, store_->ListMetrics(from, "", a, b));
    std::vector<MetricsRow> rows;
    if (!src.empty()) {
      // Normally no rows exist yet past the watermark; merge in case one does.
      ASSIGN_OR_RETURN(auto existing, store_->ListMetrics(to, "", a, b));
      src.insert(src.end(), existing.begin(), existing.end());
      rows = RollRows(src, to);
    }
    if (!rows.empty() || b == target) RETURN_IF_ERROR(store_->WriteMetrics(to, rows, {}, b));
    a = b;
  }
  return Status::Ok();
}

Status Metrics::RollUp() {
  int64_t flushed = flushed_until_.load();
  if (flushed <= 0) return Status::Ok();  // nothing flushed by this process yet
  // Exclusive, so a query never sees a roll-up half-way (it reads watermark, then rows).
  std::unique_lock flush_lock(flush_mu_);
  RETURN_IF_ERROR(
      RollUpLevel(MetricsResolution::kMinute, MetricsResolution::kFiveMinutes, flushed));
  ASSIGN_OR_RETURN(auto wm5, store_->GetMetricsWatermark(MetricsResolution::kFiveMinutes));
  if (wm5)
    RETURN_IF_ERROR(RollUpLevel(MetricsResolution::kFiveMinutes, MetricsResolution::kHour, *wm5));
  ASSIGN_OR_RETURN(auto wmh, store_->GetMetricsWatermark(MetricsResolution::kHour));
  if (wmh) RETURN_IF_ERROR(RollUpLevel(MetricsResolution::kHour, MetricsResolution::kDay, *wmh));
  return Status::Ok();
}

Status Metrics::ApplyRetention() {
  const int64_t now = clock_();
  std::unique_lock flush_lock(flush_mu_);
  struct Level {
    MetricsResolution r;
    int64_t days;
    std::optional<MetricsResolution> next;  // never delete what is not rolled up yet
  };
  const Level levels[] = {
      {MetricsResolution::kMinute, options_.minute_retention_days, MetricsResolution::kFiveMinutes},
      {MetricsResolution::kFiveMinutes, options_.five_minute_retention_days,
       MetricsResolution::kHour},
      {MetricsResolution::kHour, options_.hour_retention_days, MetricsResolution::kDay},
      {MetricsResolution::kDay, options_.day_retention_days, std::nullopt},
  };
  for (const Level& l : levels) {
    if (l.days <= 0) continue;
    int64_t cutoff = now - l.days * 86400;
    if (l.next) {
      ASSIGN_OR_RETURN(auto wm, store_->GetMetricsWatermark(*l.next));
      cutoff = std::min(cutoff, wm.value_or(0));
    }
    if (cutoff <= 0) continue;
    ASSIGN_OR_RETURN(int64_t n, store_->DeleteMetricsBefore(l.r, cutoff));
    if (n > 0)
      LOG_INFO("metrics retention")
          .Int("resolution_seconds", store::MetricsBucketSeconds(l.r))
          .Int("rows_deleted", n);
  }
  return Status::Ok();
}

std::map<int64_t, MetricsAggregate> Metrics::Unflushed(const std::string& deployment_id) {
  std::shared_ptr<DeploymentMetrics> dm;
  {
    std::lock_guard lock(map_mu_);
    auto it = deployments_.find(deployment_id);
    if (it == deployments_.end()) return {};
    dm = it->second;
  }
  std::map<int64_t, MetricsAggregate> out;
  std::lock_guard lock(dm->mu_);
  for (const auto& s : dm->slots_) {
    int64_t minute = DeploymentMetrics::TagMinute(s.tag.load(std::memory_order_acquire));
    if (minute < 0) continue;
    MetricsAggregate a = dm->PeekLocked(s, minute);
    if (!a.empty() || !a.callers.empty()) out[minute].Merge(a);
  }
  for (const auto& [minute, a] : dm->pending_) out[minute].Merge(a);
  return out;
}

MetricsResolution Metrics::DefaultResolution(int64_t hours) {
  if (hours <= 6) return MetricsResolution::kMinute;
  if (hours <= 48) return MetricsResolution::kFiveMinutes;
  if (hours <= 720) return MetricsResolution::kHour;
  return MetricsResolution::kDay;
}

Result<MetricsReport> Metrics::Query(const std::string& deployment_id, int64_t memory_mb,
                                     int64_t hours, MetricsResolution r) {
  const int64_t now = clock_();
  const int64_t len = store::MetricsBucketSeconds(r);
  MetricsReport rep;
  rep.deployment_id = deployment_id;
  rep.resolution = r;
  rep.start = AlignDown(now - hours * 3600, len);
  rep.end = now;
  const int64_t last_bucket = AlignDown(now, len);
  const int64_t to = last_bucket + len;

  std::map<int64_t, MetricsAggregate> buckets;
  {
    std::shared_lock flush_lock(flush_mu_);
    // Coarse rows up to their roll-up watermark, then finer rows, then memory.
    std::vector<MetricsResolution> chain;
    for (int lvl = static_cast<int>(r); lvl >= 0; --lvl)
      chain.push_back(static_cast<MetricsResolution>(lvl));
    int64_t seg_start = rep.start;
    for (MetricsResolution lvl : chain) {
      int64_t seg_end = to;
      if (lvl != MetricsResolution::kMinute) {
        ASSIGN_OR_RETURN(auto wm, store_->GetMetricsWatermark(lvl));
        seg_end = std::min(to, wm.value_or(0));
      }
      if (seg_end > seg_start) {
        ASSIGN_OR_RETURN(auto rows, store_->ListMetrics(lvl, deployment_id, seg_start, seg_end));
        for (const auto& row : rows) buckets[AlignDown(row.bucket_start, len)].Merge(FromRow(row));
        seg_start = seg_end;
      }
    }
    for (const auto& [minute, a] : Unflushed(deployment_id)) {
      int64_t t = minute * 60;
      if (t >= rep.start && t < to) buckets[AlignDown(t, len)].Merge(a);
    }
  }
  for (int64_t t = rep.start; t <= last_bucket; t += len) {
    MetricsPoint p;
    p.bucket_start = t;
    if (auto it = buckets.find(t); it != buckets.end()) p.aggregate = std::move(it->second);
    rep.total.Merge(p.aggregate);
    rep.series.push_back(std::move(p));
  }
  rep.gb_seconds =
      static_cast<double>(memory_mb) / 1024.0 * static_cast<double>(rep.total.latency_sum_ns) / 1e9;
  rep.cost_requests_usd =
      static_cast<double>(rep.total.requests) / 1e6 * options_.price_per_million_requests;
  rep.cost_compute_usd = rep.gb_seconds * options_.price_per_gb_second;
  return rep;
}

Result<store::MetricsTotals> Metrics::Totals(const std::string& deployment_id) {
  std::shared_lock flush_lock(flush_mu_);
  ASSIGN_OR_RETURN(store::MetricsTotals t, store_->GetMetricsTotals(deployment_id));
  for (const auto& [minute, a] : Unflushed(deployment_id)) {
    t.request_count += a.requests;
    t.error_count += a.errors;
    t.row_count += a.rows;
    t.cold_starts += a.cold_starts;
    t.latency_sum_ns += a.latency_sum_ns;
  }
  return t;
}

Result<int64_t> Metrics::UserTotalRequests(const std::string& user_id,
                                           const std::vector<std::string>& deployment_ids) {
  std::shared_lock flush_lock(flush_mu_);
  ASSIGN_OR_RETURN(int64_t total, store_->SumUserRequests(user_id));
  for (const auto& id : deployment_ids) {
    for (const auto& [minute, a] : Unflushed(id)) total += a.requests;
  }
  return total;
}

}  // namespace serveml::platform
