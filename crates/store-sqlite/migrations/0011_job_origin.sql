-- The request that started a job: its X-Request-ID and W3C traceparent, so that
-- the job's spans can name it and link to its trace.
ALTER TABLE upload_jobs ADD COLUMN origin_request_id TEXT;
ALTER TABLE upload_jobs ADD COLUMN origin_traceparent TEXT;
