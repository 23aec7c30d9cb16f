-- Chunk vectors (issue 15): one per chunk, with the model that made it, as
-- little-endian f32s. A chunk waits in `chunk_embedding_queue` from its creation
-- until the embedding worker stores its vector. A chunk's text never changes (a
-- changed chunk is a new row), so a vector always belongs to the text beside it.
CREATE TABLE chunk_embeddings (
    chunk_id INTEGER PRIMARY KEY REFERENCES document_chunks (id) ON DELETE CASCADE,
    model    TEXT NOT NULL,
    vector   BLOB NOT NULL
) STRICT;

CREATE INDEX chunk_embeddings_model ON chunk_embeddings (model);

CREATE TABLE chunk_embedding_queue (
    chunk_id INTEGER PRIMARY KEY REFERENCES document_chunks (id) ON DELETE CASCADE
) STRICT;

CREATE TRIGGER document_chunks_await_embedding AFTER INSERT ON document_chunks BEGIN
    INSERT OR IGNORE INTO chunk_embedding_queue (chunk_id) VALUES (new.id);
END;

INSERT OR IGNORE INTO chunk_embedding_queue (chunk_id) SELECT id FROM document_chunks;
