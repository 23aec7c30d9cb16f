-- (:Notebook)-[:PARENT_OF]->(:Notebook): each notebook has at most one parent.
CREATE TABLE parent_of (
    child_id   TEXT PRIMARY KEY NOT NULL REFERENCES notebooks (id),
    parent_id  TEXT NOT NULL REFERENCES notebooks (id),
    created_at TEXT NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX parent_of_parent ON parent_of (parent_id);

-- (:User)-[:COLLABORATES_ON {permission, status, granted_by, granted_at, accepted_at}]->(:Notebook)
CREATE TABLE collaborates_on (
    user_id     TEXT NOT NULL REFERENCES users (id),
    notebook_id TEXT NOT NULL REFERENCES notebooks (id),
    permission  TEXT NOT NULL CHECK (permission IN ('read', 'write', 'admin')),
    status      TEXT NOT NULL CHECK (status IN ('pending', 'active', 'declined', 'revoked')),
    granted_by  TEXT NOT NULL REFERENCES users (id),
    granted_at  TEXT NOT NULL,
    accepted_at TEXT,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (user_id, notebook_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX collaborates_on_notebook ON collaborates_on (notebook_id);
CREATE INDEX collaborates_on_permission ON collaborates_on (permission, status);
