-- The durable outbox: events written with the change that caused them, published
-- afterwards by a worker. Published rows are kept as a record.
CREATE TABLE outbox (
    id           TEXT PRIMARY KEY NOT NULL,
    topic        TEXT NOT NULL,
    key          TEXT NOT NULL,
    payload      TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    published_at TEXT
) STRICT, WITHOUT ROWID;

CREATE INDEX outbox_pending ON outbox (published_at, id);
