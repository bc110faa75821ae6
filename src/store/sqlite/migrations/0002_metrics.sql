-- 0002: per-deployment prediction metrics, aggregated per minute, 5 minutes, hour and day.
-- bucket_start is Unix seconds (UTC), a multiple of the table's bucket length. histogram is
-- a sparse varint encoding of latency bucket counts and callers a sorted list of 64-bit
-- caller hashes (both written by src/platform/metrics.cc). Rows go with their deployment.

CREATE TABLE metrics_minute (
  deployment_id  TEXT    NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
  bucket_start   INTEGER NOT NULL,
  request_count  INTEGER NOT NULL DEFAULT 0 CHECK (request_count >= 0),
  error_count    INTEGER NOT NULL DEFAULT 0 CHECK (error_count >= 0),
  row_count      INTEGER NOT NULL DEFAULT 0,
  cold_starts    INTEGER NOT NULL DEFAULT 0,
  latency_sum_ns INTEGER NOT NULL DEFAULT 0,
  histogram      BLOB    NOT NULL,
  callers        BLOB    NOT NULL,
  PRIMARY KEY (deployment_id, bucket_start)
) STRICT, WITHOUT ROWID;
-- Roll-ups and retention scan by time across deployments.
CREATE INDEX metrics_minute_time_idx ON metrics_minute (bucket_start);

CREATE TABLE metrics_5m (
  deployment_id  TEXT    NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
  bucket_start   INTEGER NOT NULL,
  request_count  INTEGER NOT NULL DEFAULT 0 CHECK (request_count >= 0),
  error_count    INTEGER NOT NULL DEFAULT 0 CHECK (error_count >= 0),
  row_count      INTEGER NOT NULL DEFAULT 0,
  cold_starts    INTEGER NOT NULL DEFAULT 0,
  latency_sum_ns INTEGER NOT NULL DEFAULT 0,
  histogram      BLOB    NOT NULL,
  callers        BLOB    NOT NULL,
  PRIMARY KEY (deployment_id, bucket_start)
) STRICT, WITHOUT ROWID;
CREATE INDEX metrics_5m_time_idx ON metrics_5m (bucket_start);

CREATE TABLE metrics_hour (
  deployment_id  TEXT    NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
  bucket_start   INTEGER NOT NULL,
  request_count  INTEGER NOT NULL DEFAULT 0 CHECK (request_count >= 0),
  error_count    INTEGER NOT NULL DEFAULT 0 CHECK (error_count >= 0),
  row_count      INTEGER NOT NULL DEFAULT 0,
  cold_starts    INTEGER NOT NULL DEFAULT 0,
  latency_sum_ns INTEGER NOT NULL DEFAULT 0,
  histogram      BLOB    NOT NULL,
  callers        BLOB    NOT NULL,
  PRIMARY KEY (deployment_id, bucket_start)
) STRICT, WITHOUT ROWID;
CREATE INDEX metrics_hour_time_idx ON metrics_hour (bucket_start);

CREATE TABLE metrics_day (
  deployment_id  TEXT    NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
  bucket_start   INTEGER NOT NULL,
  request_count  INTEGER NOT NULL DEFAULT 0 CHECK (request_count >= 0),
  error_count    INTEGER NOT NULL DEFAULT 0 CHECK (error_count >= 0),
  row_count      INTEGER NOT NULL DEFAULT 0,
  cold_starts    INTEGER NOT NULL DEFAULT 0,
  latency_sum_ns INTEGER NOT NULL DEFAULT 0,
  histogram      BLOB    NOT NULL,
  callers        BLOB    NOT NULL,
  PRIMARY KEY (deployment_id, bucket_start)
) STRICT, WITHOUT ROWID;
CREATE INDEX metrics_day_time_idx ON metrics_day (bucket_start);

-- All-time counters per deployment, updated in the same transaction as the minute rows, so
-- they never disagree with the rows and retention never lowers them.
CREATE TABLE metrics_totals (
  deployment_id  TEXT    NOT NULL PRIMARY KEY REFERENCES deployments (id) ON DELETE CASCADE,
  request_count  INTEGER NOT NULL DEFAULT 0,
  error_count    INTEGER NOT NULL DEFAULT 0,
  row_count      INTEGER NOT NULL DEFAULT 0,
  cold_starts    INTEGER NOT NULL DEFAULT 0,
  latency_sum_ns INTEGER NOT NULL DEFAULT 0
) STRICT, WITHOUT ROWID;

-- How far each coarser table has been rolled up from the finer one ('5m', '1h', '1d'):
-- every bucket starting before rolled_up_until is complete.
CREATE TABLE metrics_rollup_state (
  resolution      TEXT    NOT NULL PRIMARY KEY,
  rolled_up_until INTEGER NOT NULL
) STRICT;
