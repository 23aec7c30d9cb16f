-- (:Tag {name, created_at}) and (:Notebook)-[:TAGGED_WITH {tagged_at, tagged_by}]->(:Tag),
-- kept in step with each notebook's `tags` list.
CREATE TABLE tags (
    name       TEXT PRIMARY KEY NOT NULL,
    created_at TEXT NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE tagged_with (
    notebook_id TEXT NOT NULL REFERENCES notebooks (id),
    tag_name    TEXT NOT NULL REFERENCES tags (name),
    tagged_at   TEXT NOT NULL,
    tagged_by   TEXT,
    PRIMARY KEY (notebook_id, tag_name)
) STRICT, WITHOUT ROWID;

CREATE INDEX tagged_with_tag ON tagged_with (tag_name);

-- Notebooks tagged before this migration.
INSERT OR IGNORE INTO tags (name, created_at)
    SELECT DISTINCT j.value, n.created_at FROM notebooks n, json_each(n.tags) j;
INSERT OR IGNORE INTO tagged_with (notebook_id, tag_name, tagged_at)
    SELECT n.id, j.value, n.created_at FROM notebooks n, json_each(n.tags) j;
