-- Semantic search keeps each notebook's chunk vectors in memory (`vectors.rs`) and
-- uses them only under the stamp this table holds for the notebook now. The
-- triggers give the notebook a new random stamp, in the writer's transaction,
-- whenever a vector of one of its chunks is stored, replaced or removed, or one of
-- its chunks is deleted (a deleted chunk's id may be reused by the next one).
CREATE TABLE notebook_vector_stamps (
    notebook_id TEXT PRIMARY KEY,
    stamp       INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TRIGGER chunk_vector_stored AFTER INSERT ON chunk_embeddings BEGIN
    INSERT INTO notebook_vector_stamps (notebook_id, stamp)
        SELECT notebook_id, random() FROM document_chunks WHERE id = new.chunk_id
        ON CONFLICT (notebook_id) DO UPDATE SET stamp = excluded.stamp;
END;

CREATE TRIGGER chunk_vector_replaced AFTER UPDATE ON chunk_embeddings BEGIN
    INSERT INTO notebook_vector_stamps (notebook_id, stamp)
        SELECT notebook_id, random() FROM document_chunks WHERE id = new.chunk_id
        ON CONFLICT (notebook_id) DO UPDATE SET stamp = excluded.stamp;
END;

CREATE TRIGGER chunk_vector_removed AFTER DELETE ON chunk_embeddings BEGIN
    INSERT INTO notebook_vector_stamps (notebook_id, stamp)
        SELECT notebook_id, random() FROM document_chunks WHERE id = old.chunk_id
        ON CONFLICT (notebook_id) DO UPDATE SET stamp = excluded.stamp;
END;

CREATE TRIGGER chunk_removed AFTER DELETE ON document_chunks BEGIN
    INSERT INTO notebook_vector_stamps (notebook_id, stamp) VALUES (old.notebook_id, random())
        ON CONFLICT (notebook_id) DO UPDATE SET stamp = excluded.stamp;
END;

-- The per-vector stamp of migration 0016 and its index served the per-chunk cache
-- this replaces.
DROP INDEX chunk_embeddings_stamp;
ALTER TABLE chunk_embeddings DROP COLUMN stamp;
