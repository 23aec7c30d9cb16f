-- The id an external processor (AudiModal) gave the job's file.
ALTER TABLE upload_jobs ADD COLUMN external_id TEXT;
