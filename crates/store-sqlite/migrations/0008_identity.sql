-- Identity: users synchronised from Keycloak, personal API keys, and the short-lived
-- state of browser sessions (pending logins, sessions, revoked token sessions).


-- (:User)-[:HAS_API_KEY]->(:ApiKey). Only the SHA-256 of the secret is stored.
CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY NOT NULL,
    user_id      TEXT NOT NULL REFERENCES users (id),
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    secret_hash  TEXT NOT NULL UNIQUE,
    scopes       TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT,
    last_used_at TEXT,
    revoked_at   TEXT
) STRICT;

CREATE INDEX api_keys_user ON api_keys (user_id, id);
CREATE INDEX audit_performed_by ON audit_log (performed_by, id);

-- Key/value entries with a time to live; expired rows read as absent and are purged.
CREATE TABLE ephemeral (
    key        TEXT PRIMARY KEY NOT NULL,
    value      BLOB NOT NULL,
    expires_at TEXT NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX ephemeral_expiry ON ephemeral (expires_at);
