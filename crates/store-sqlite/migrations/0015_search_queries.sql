-- (:User)-[:SEARCHED]->(:SearchQuery) as `user_id`, and
-- (:SearchQuery)-[:RETURNED {rank}]->(:Document|:Notebook) as `search_returned`
-- (issue 15): each user's history and frequent queries, and search analytics.
CREATE TABLE search_queries (
    id               TEXT PRIMARY KEY NOT NULL,
    user_id          TEXT NOT NULL REFERENCES users (id),
    query_text       TEXT NOT NULL,
    normalized       TEXT NOT NULL,
    query_type       TEXT NOT NULL,
    target           TEXT NOT NULL,
    filters          TEXT NOT NULL DEFAULT '{}',
    results_count    INTEGER NOT NULL,
    response_time_ms INTEGER NOT NULL,
    created_at       TEXT NOT NULL
) STRICT;

-- A user's history, newest first, and their queries by prefix.
CREATE INDEX search_queries_user ON search_queries (user_id, id);
CREATE INDEX search_queries_user_normalized ON search_queries (user_id, normalized);
-- Analytics over a period.
CREATE INDEX search_queries_created ON search_queries (created_at);

CREATE TABLE search_returned (
    query_id TEXT NOT NULL REFERENCES search_queries (id) ON DELETE CASCADE,
    rank     INTEGER NOT NULL,
    kind     TEXT NOT NULL CHECK (kind IN ('document', 'notebook')),
    item_id  TEXT NOT NULL,
    PRIMARY KEY (query_id, kind, rank)
) STRICT, WITHOUT ROWID;
