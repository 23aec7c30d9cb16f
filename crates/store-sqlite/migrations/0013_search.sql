-- Search (issue 15). Every index here is written in the transaction of the change it
-- follows, by the store or by a trigger, so it is never behind its rows, and a
-- `kill -9` leaves nothing to catch up on. Permissions are not indexed: queries read
-- them from the graph tables at query time.

-- The chunks of each document's readers' text, heading first (`aether_domain::chunk`),
-- written by the store with the document. `id` is the FTS row id.
CREATE TABLE document_chunks (
    id          INTEGER PRIMARY KEY,
    document_id TEXT NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    notebook_id TEXT NOT NULL,
    ordinal     INTEGER NOT NULL,
    page        INTEGER NOT NULL,
    char_offset INTEGER NOT NULL,
    text        TEXT NOT NULL,
    UNIQUE (document_id, ordinal)
) STRICT;

CREATE INDEX document_chunks_notebook ON document_chunks (notebook_id);

-- Words are runs of letters and digits, folded to lower case without diacritics (the
-- domain's `search::words` cuts query text the same way).
CREATE VIRTUAL TABLE chunk_fts USING fts5 (
    text,
    content = 'document_chunks',
    content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TRIGGER document_chunks_indexed AFTER INSERT ON document_chunks BEGIN
    INSERT INTO chunk_fts (rowid, text) VALUES (new.id, new.text);
END;

CREATE TRIGGER document_chunks_unindexed AFTER DELETE ON document_chunks BEGIN
    INSERT INTO chunk_fts (chunk_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;

CREATE TRIGGER document_chunks_reindexed AFTER UPDATE OF text ON document_chunks BEGIN
    INSERT INTO chunk_fts (chunk_fts, rowid, text) VALUES ('delete', old.id, old.text);
    INSERT INTO chunk_fts (rowid, text) VALUES (new.id, new.text);
END;

-- The indexed words, for typo tolerance: candidates near a query word that is not one.
CREATE VIRTUAL TABLE chunk_vocabulary USING fts5vocab (chunk_fts, 'row');

-- What notebook search reads of each notebook, with a stable integer row id for FTS
-- (a rowid table's implicit row ids may change on VACUUM). Kept by triggers.
CREATE TABLE notebook_search_rows (
    id          INTEGER PRIMARY KEY,
    notebook_id TEXT NOT NULL UNIQUE REFERENCES notebooks (id),
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    tags        TEXT NOT NULL
) STRICT;

CREATE VIRTUAL TABLE notebook_fts USING fts5 (
    name,
    description,
    tags,
    content = 'notebook_search_rows',
    content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE VIRTUAL TABLE notebook_vocabulary USING fts5vocab (notebook_fts, 'row');

CREATE TRIGGER notebook_search_rows_indexed AFTER INSERT ON notebook_search_rows BEGIN
    INSERT INTO notebook_fts (rowid, name, description, tags) VALUES (new.id, new.name, new.description, new.tags);
END;

CREATE TRIGGER notebook_search_rows_unindexed AFTER DELETE ON notebook_search_rows BEGIN
    INSERT INTO notebook_fts (notebook_fts, rowid, name, description, tags)
        VALUES ('delete', old.id, old.name, old.description, old.tags);
END;

CREATE TRIGGER notebook_search_rows_reindexed AFTER UPDATE ON notebook_search_rows BEGIN
    INSERT INTO notebook_fts (notebook_fts, rowid, name, description, tags)
        VALUES ('delete', old.id, old.name, old.description, old.tags);
    INSERT INTO notebook_fts (rowid, name, description, tags) VALUES (new.id, new.name, new.description, new.tags);
END;

-- Tags are stored as a JSON list; the index holds them as words.
CREATE TRIGGER notebook_created_searchable AFTER INSERT ON notebooks BEGIN
    INSERT INTO notebook_search_rows (notebook_id, name, description, tags)
        VALUES (new.id, new.name, coalesce(new.description, ''),
                coalesce((SELECT group_concat(value, ' ') FROM json_each(new.tags)), ''));
END;

CREATE TRIGGER notebook_changed_searchable AFTER UPDATE OF name, description, tags ON notebooks BEGIN
    UPDATE notebook_search_rows SET name = new.name, description = coalesce(new.description, ''),
        tags = coalesce((SELECT group_concat(value, ' ') FROM json_each(new.tags)), '')
        WHERE notebook_id = new.id;
END;

INSERT INTO notebook_search_rows (notebook_id, name, description, tags)
    SELECT id, name, coalesce(description, ''), coalesce((SELECT group_concat(value, ' ') FROM json_each(tags)), '')
    FROM notebooks;

-- What people search reads of each user, kept by triggers like notebooks'. E-mail
-- is its own column: only administrators' searches match it.
CREATE TABLE user_search_rows (
    id        INTEGER PRIMARY KEY,
    user_id   TEXT NOT NULL UNIQUE REFERENCES users (id),
    username  TEXT NOT NULL,
    full_name TEXT NOT NULL,
    email     TEXT NOT NULL
) STRICT;

CREATE VIRTUAL TABLE user_fts USING fts5 (
    username,
    full_name,
    email,
    content = 'user_search_rows',
    content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE VIRTUAL TABLE user_vocabulary USING fts5vocab (user_fts, 'row');

CREATE TRIGGER user_search_rows_indexed AFTER INSERT ON user_search_rows BEGIN
    INSERT INTO user_fts (rowid, username, full_name, email) VALUES (new.id, new.username, new.full_name, new.email);
END;

CREATE TRIGGER user_search_rows_unindexed AFTER DELETE ON user_search_rows BEGIN
    INSERT INTO user_fts (user_fts, rowid, username, full_name, email)
        VALUES ('delete', old.id, old.username, old.full_name, old.email);
END;

CREATE TRIGGER user_search_rows_reindexed AFTER UPDATE ON user_search_rows BEGIN
    INSERT INTO user_fts (user_fts, rowid, username, full_name, email)
        VALUES ('delete', old.id, old.username, old.full_name, old.email);
    INSERT INTO user_fts (rowid, username, full_name, email) VALUES (new.id, new.username, new.full_name, new.email);
END;

CREATE TRIGGER user_created_searchable AFTER INSERT ON users BEGIN
    INSERT INTO user_search_rows (user_id, username, full_name, email)
        VALUES (new.id, new.username, coalesce(new.full_name, ''), coalesce(new.email, ''));
END;

CREATE TRIGGER user_changed_searchable AFTER UPDATE OF username, full_name, email ON users BEGIN
    UPDATE user_search_rows SET username = new.username, full_name = coalesce(new.full_name, ''),
        email = coalesce(new.email, '') WHERE user_id = new.id;
END;

INSERT INTO user_search_rows (user_id, username, full_name, email)
    SELECT id, username, coalesce(full_name, ''), coalesce(email, '') FROM users;
