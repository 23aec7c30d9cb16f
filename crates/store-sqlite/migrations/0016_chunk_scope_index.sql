-- Semantic search walks the chunks of the notebooks a caller may read, by notebook,
-- needing each chunk's document, then the chunk's vector of the model and its stamp
-- (which tells the vector held in memory from one stored for a later chunk that
-- reused the id). These two indexes answer all of it without reading a chunk's row
-- (its text) or a vector's (its blob); the first serves every lookup by notebook
-- the index it replaces did.
CREATE INDEX document_chunks_scope ON document_chunks (notebook_id, document_id);
DROP INDEX document_chunks_notebook;

ALTER TABLE chunk_embeddings ADD COLUMN stamp INTEGER NOT NULL DEFAULT 0;
UPDATE chunk_embeddings SET stamp = random();
CREATE INDEX chunk_embeddings_stamp ON chunk_embeddings (chunk_id, model, stamp);
