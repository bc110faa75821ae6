-- 0003: every version keeps the ONNX the isolated importer produced, so the server only
-- ever loads that (never the uploaded file again), and counts how often its validation was
-- started (a version whose validation was interrupted by a stop or crash is retried once).
ALTER TABLE deployment_versions ADD COLUMN onnx_sha256 TEXT NOT NULL DEFAULT '';
ALTER TABLE deployment_versions ADD COLUMN onnx_size_bytes INTEGER NOT NULL DEFAULT 0 CHECK (onnx_size_bytes >= 0);
ALTER TABLE deployment_versions ADD COLUMN validation_attempts INTEGER NOT NULL DEFAULT 0;
CREATE INDEX deployment_versions_onnx_idx ON deployment_versions (onnx_sha256);

-- Session tokens carry the user's generation; logout and password changes bump it, which
-- revokes every token issued before.
ALTER TABLE users ADD COLUMN token_generation INTEGER NOT NULL DEFAULT 0;
