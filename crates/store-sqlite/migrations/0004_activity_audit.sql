-- (:User)-[:TRIGGERED]->(:ActivityEvent)-[:ABOUT]->(:Notebook). Both relationships
-- are one-to-one from the event, so they are columns here. The actor has no
-- foreign key: the record outlives accounts, and system changes have no actor.
CREATE TABLE activity_events (
    id          TEXT PRIMARY KEY NOT NULL,
    event_type  TEXT NOT NULL,
    details     TEXT NOT NULL DEFAULT '{}',
    visibility  TEXT NOT NULL DEFAULT 'private',
    created_at  TEXT NOT NULL,
    actor_id    TEXT,
    notebook_id TEXT NOT NULL REFERENCES notebooks (id)
) STRICT, WITHOUT ROWID;

CREATE INDEX activity_notebook ON activity_events (notebook_id, id);
CREATE INDEX activity_event_type ON activity_events (event_type);

-- (:AuditLog)-[:PERFORMED_BY]->(:User), (:AuditLog)-[:ON_RESOURCE]->(resource).
CREATE TABLE audit_log (
    id            TEXT PRIMARY KEY NOT NULL,
    action        TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id   TEXT NOT NULL,
    details       TEXT NOT NULL DEFAULT '{}',
    ip_address    TEXT,
    user_agent    TEXT,
    created_at    TEXT NOT NULL,
    performed_by  TEXT
) STRICT, WITHOUT ROWID;

CREATE INDEX audit_resource ON audit_log (resource_id, id);
CREATE INDEX audit_action ON audit_log (action);
