-- Nodes become tables and relationships join tables, mirroring the Neo4j schema:
-- (:User), (:Notebook), (:User)-[:OWNS]->(:Notebook). Ids are UUID v7 text, so
-- ordering by id is ordering by creation. Timestamps are fixed-width RFC 3339 UTC.

CREATE TABLE users (
    id                  TEXT PRIMARY KEY NOT NULL,
    keycloak_id         TEXT UNIQUE,
    username            TEXT NOT NULL UNIQUE,
    email               TEXT UNIQUE,
    full_name           TEXT,
    avatar_url          TEXT,
    keycloak_roles      TEXT NOT NULL DEFAULT '[]',
    keycloak_groups     TEXT NOT NULL DEFAULT '[]',
    keycloak_attributes TEXT NOT NULL DEFAULT '{}',
    preferences         TEXT NOT NULL DEFAULT '{}',
    status              TEXT NOT NULL CHECK (status IN ('active', 'inactive', 'suspended', 'deleted')),
    password_hash       TEXT,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    last_login_at       TEXT,
    last_sync_at        TEXT
) STRICT;

CREATE INDEX user_status_created ON users (status, created_at);
CREATE INDEX user_last_login ON users (last_login_at);

CREATE TABLE notebooks (
    id                  TEXT PRIMARY KEY NOT NULL,
    name                TEXT NOT NULL,
    description         TEXT,
    visibility          TEXT NOT NULL CHECK (visibility IN ('private', 'shared', 'public')),
    status              TEXT NOT NULL CHECK (status IN ('active', 'archived', 'deleted')),
    compliance_settings TEXT NOT NULL DEFAULT '{}',
    document_count      INTEGER NOT NULL DEFAULT 0,
    total_size_bytes    INTEGER NOT NULL DEFAULT 0,
    tags                TEXT NOT NULL DEFAULT '[]',
    search_text         TEXT NOT NULL DEFAULT '',
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL
) STRICT;

CREATE INDEX notebook_status_visibility ON notebooks (status, visibility);
CREATE INDEX notebook_updated_at ON notebooks (updated_at);

-- (:User)-[:OWNS {created_at}]->(:Notebook)
CREATE TABLE owns (
    user_id     TEXT NOT NULL REFERENCES users (id),
    notebook_id TEXT NOT NULL REFERENCES notebooks (id),
    created_at  TEXT NOT NULL,
    PRIMARY KEY (user_id, notebook_id)
) STRICT, WITHOUT ROWID;

CREATE UNIQUE INDEX owns_notebook ON owns (notebook_id);

-- Refresh tokens, stored by SHA-256 digest only.
CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id),
    family_id  TEXT NOT NULL,
    issued_at  TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    spent_at   TEXT,
    revoked_at TEXT
) STRICT, WITHOUT ROWID;

CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_expires ON refresh_tokens (expires_at);
