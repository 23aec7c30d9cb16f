-- (:UploadJob): every upload, recorded before its bytes are written so that the
-- blob it may leave behind is always known.
CREATE TABLE upload_jobs (
    id               TEXT PRIMARY KEY NOT NULL,
    notebook_id      TEXT NOT NULL REFERENCES notebooks (id),
    uploaded_by      TEXT NOT NULL REFERENCES users (id),
    document_id      TEXT NOT NULL,
    version_id       TEXT NOT NULL UNIQUE,
    new_version      INTEGER NOT NULL,
    filename         TEXT NOT NULL,
    change_summary   TEXT,
    callback_url     TEXT,
    status           TEXT NOT NULL CHECK (status IN
                       ('pending', 'uploading', 'validating', 'processing', 'completed', 'failed', 'cancelled')),
    stage            TEXT NOT NULL,
    bytes_received   INTEGER NOT NULL DEFAULT 0,
    expected_bytes   INTEGER,
    file_size        INTEGER,
    file_hash        TEXT,
    content_type     TEXT,
    blob_key         TEXT NOT NULL,
    storage_provider TEXT NOT NULL,
    failure_code     TEXT,
    failure_message  TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    lease_until      TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    finished_at      TEXT
) STRICT;

CREATE INDEX upload_jobs_claim ON upload_jobs (status, id);
CREATE INDEX upload_jobs_notebook ON upload_jobs (notebook_id, id);

-- (:Document), with (:Notebook)-[:CONTAINS]->(:Document) as `notebook_id`.
CREATE TABLE documents (
    id                      TEXT PRIMARY KEY NOT NULL,
    notebook_id             TEXT NOT NULL REFERENCES notebooks (id),
    added_at                TEXT NOT NULL,
    original_filename       TEXT NOT NULL,
    description             TEXT,
    tags                    TEXT NOT NULL DEFAULT '[]',
    content_type            TEXT NOT NULL,
    file_size               INTEGER NOT NULL,
    file_hash               TEXT NOT NULL,
    storage_provider        TEXT NOT NULL,
    storage_path            TEXT NOT NULL,
    processing_status       TEXT NOT NULL CHECK (processing_status IN ('pending', 'processing', 'completed', 'failed')),
    format                  TEXT NOT NULL,
    supported               INTEGER NOT NULL,
    extracted_text          TEXT,
    extracted_metadata      TEXT NOT NULL DEFAULT '{}',
    processing_metadata     TEXT NOT NULL DEFAULT '{}',
    compliance_scan_results TEXT NOT NULL DEFAULT '{}',
    pii_detected            INTEGER NOT NULL DEFAULT 0,
    redaction_applied       INTEGER NOT NULL DEFAULT 0,
    redacted_path           TEXT,
    thumbnail_path          TEXT,
    processing_error_code   TEXT,
    processing_error        TEXT,
    search_text             TEXT NOT NULL DEFAULT '',
    current_version         INTEGER NOT NULL,
    uploaded_by             TEXT NOT NULL REFERENCES users (id),
    uploaded_at             TEXT NOT NULL,
    processed_at            TEXT,
    updated_at              TEXT NOT NULL
) STRICT;

CREATE INDEX document_notebook ON documents (notebook_id, id);
CREATE INDEX document_file_hash ON documents (file_hash);
CREATE INDEX document_status ON documents (processing_status, uploaded_at);

-- (:DocumentVersion), with (:Document)-[:VERSION_OF]->(:DocumentVersion) as `document_id`.
CREATE TABLE document_versions (
    id                TEXT PRIMARY KEY NOT NULL,
    document_id       TEXT NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    version_number    INTEGER NOT NULL,
    original_filename TEXT NOT NULL,
    content_type      TEXT NOT NULL,
    storage_path      TEXT NOT NULL,
    redacted_path     TEXT,
    thumbnail_path    TEXT,
    file_size         INTEGER NOT NULL,
    file_hash         TEXT NOT NULL,
    change_summary    TEXT,
    created_by        TEXT NOT NULL REFERENCES users (id),
    created_at        TEXT NOT NULL,
    UNIQUE (document_id, version_number)
) STRICT;

-- Blobs no longer referenced, deleted from object storage by the worker.
CREATE TABLE blob_deletions (
    id        TEXT PRIMARY KEY NOT NULL,
    blob_key  TEXT NOT NULL,
    queued_at TEXT NOT NULL
) STRICT, WITHOUT ROWID;
