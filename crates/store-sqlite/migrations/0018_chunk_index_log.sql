-- Full-text search of chunks moves from FTS5 to a tantivy index beside the database
-- file (`chunk_index.rs`): FTS5 scored every match before the read scope filtered
-- it. The index follows `document_chunks` through this log, written by triggers in
-- the writer's transaction; it records the last entry it applied in its own commit
-- and applies what follows before every search, so it is never silently behind.
CREATE TABLE chunk_index_log (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    chunk_id INTEGER NOT NULL
) STRICT;

CREATE TRIGGER document_chunks_logged AFTER INSERT ON document_chunks BEGIN
    INSERT INTO chunk_index_log (chunk_id) VALUES (new.id);
END;

CREATE TRIGGER document_chunks_unlogged AFTER DELETE ON document_chunks BEGIN
    INSERT INTO chunk_index_log (chunk_id) VALUES (old.id);
END;

CREATE TRIGGER document_chunks_relogged AFTER UPDATE ON document_chunks BEGIN
    INSERT INTO chunk_index_log (chunk_id) VALUES (new.id);
END;

DROP TRIGGER document_chunks_indexed;
DROP TRIGGER document_chunks_unindexed;
DROP TRIGGER document_chunks_reindexed;
DROP TABLE chunk_vocabulary;
DROP TABLE chunk_fts;
