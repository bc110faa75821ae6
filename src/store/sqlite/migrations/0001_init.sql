-- 0001: users, API keys, deployments and their versions.
-- Times are Unix microseconds (UTC). Booleans are 0/1 integers.

CREATE TABLE users (
  id            TEXT    NOT NULL PRIMARY KEY,
  email         TEXT    NOT NULL CHECK (email = lower(email)),
  username      TEXT    NOT NULL COLLATE NOCASE,
  full_name     TEXT    NOT NULL DEFAULT '',
  password_hash TEXT    NOT NULL,
  created_at    INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX users_email_key ON users (email);
-- Usernames are unique regardless of case ("Alice" and "alice" are the same user name).
CREATE UNIQUE INDEX users_username_key ON users (username COLLATE NOCASE);

CREATE TABLE api_keys (
  id           TEXT    NOT NULL PRIMARY KEY,
  user_id      TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  name         TEXT    NOT NULL DEFAULT '',
  prefix       TEXT    NOT NULL,
  key_hash     TEXT    NOT NULL,
  scopes       TEXT    NOT NULL DEFAULT '',
  created_at   INTEGER NOT NULL,
  last_used_at INTEGER NOT NULL DEFAULT 0,
  revoked      INTEGER NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1))
) STRICT;
CREATE UNIQUE INDEX api_keys_key_hash_key ON api_keys (key_hash);
CREATE INDEX api_keys_user_created_idx ON api_keys (user_id, created_at DESC);

CREATE TABLE deployments (
  id              TEXT    NOT NULL PRIMARY KEY,
  user_id         TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  name            TEXT    NOT NULL,
  status          TEXT    NOT NULL CHECK (status IN ('validating', 'active', 'failed')),
  error_message   TEXT    NOT NULL DEFAULT '',
  framework       TEXT    NOT NULL DEFAULT '',
  model_type      TEXT    NOT NULL DEFAULT '',
  size_bytes      INTEGER NOT NULL DEFAULT 0 CHECK (size_bytes >= 0),
  current_version TEXT    NOT NULL DEFAULT '',
  metadata_json   TEXT    NOT NULL DEFAULT '',
  memory_mb       INTEGER NOT NULL,
  timeout_seconds INTEGER NOT NULL,
  min_instances   INTEGER NOT NULL,
  max_instances   INTEGER NOT NULL,
  is_public       INTEGER NOT NULL DEFAULT 0 CHECK (is_public IN (0, 1)),
  requirements    TEXT    NOT NULL DEFAULT '',
  created_at      INTEGER NOT NULL,
  updated_at      INTEGER NOT NULL
) STRICT;
-- Listing is always per owner, newest first (id breaks ties deterministically).
CREATE INDEX deployments_user_created_idx ON deployments (user_id, created_at DESC, id DESC);
CREATE INDEX deployments_status_idx ON deployments (status);

CREATE TABLE deployment_versions (
  deployment_id TEXT    NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
  version       TEXT    NOT NULL,
  blob_sha256   TEXT    NOT NULL,
  size_bytes    INTEGER NOT NULL DEFAULT 0 CHECK (size_bytes >= 0),
  status        TEXT    NOT NULL CHECK (status IN ('validating', 'active', 'failed')),
  error_message TEXT    NOT NULL DEFAULT '',
  framework     TEXT    NOT NULL DEFAULT '',
  model_type    TEXT    NOT NULL DEFAULT '',
  metadata_json TEXT    NOT NULL DEFAULT '',
  filename      TEXT    NOT NULL DEFAULT '',
  created_at    INTEGER NOT NULL,
  PRIMARY KEY (deployment_id, version)
) STRICT;
CREATE INDEX deployment_versions_blob_idx ON deployment_versions (blob_sha256);
