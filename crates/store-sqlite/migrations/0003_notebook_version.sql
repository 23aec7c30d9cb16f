-- Optimistic concurrency: every change increments the version, which the API
-- exposes as the ETag and checks against If-Match.
ALTER TABLE notebooks ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
