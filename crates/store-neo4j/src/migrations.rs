//! Versioned schema migrations. Each is a list of idempotent schema statements
//! (`IF NOT EXISTS`), recorded as a `(:SchemaMigration {version})` node once applied.
//! Neo4j Community supports uniqueness constraints, property, relationship and
//! full-text indexes; existence and key constraints are Enterprise-only, so the
//! domain enforces required properties instead.

pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub statements: &'static [&'static str],
}

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "design_schema",
        statements: &[
            "CREATE CONSTRAINT schema_migration_version_unique IF NOT EXISTS FOR (m:SchemaMigration) REQUIRE m.version IS UNIQUE",
            // Uniqueness constraints from the design.
            "CREATE CONSTRAINT user_id_unique IF NOT EXISTS FOR (u:User) REQUIRE u.id IS UNIQUE",
            "CREATE CONSTRAINT user_keycloak_id_unique IF NOT EXISTS FOR (u:User) REQUIRE u.keycloak_id IS UNIQUE",
            "CREATE CONSTRAINT user_email_unique IF NOT EXISTS FOR (u:User) REQUIRE u.email IS UNIQUE",
            "CREATE CONSTRAINT notebook_id_unique IF NOT EXISTS FOR (n:Notebook) REQUIRE n.id IS UNIQUE",
            "CREATE CONSTRAINT document_id_unique IF NOT EXISTS FOR (d:Document) REQUIRE d.id IS UNIQUE",
            "CREATE CONSTRAINT agent_id_unique IF NOT EXISTS FOR (a:Agent) REQUIRE a.id IS UNIQUE",
            "CREATE CONSTRAINT workflow_id_unique IF NOT EXISTS FOR (w:Workflow) REQUIRE w.id IS UNIQUE",
            "CREATE CONSTRAINT tag_name_unique IF NOT EXISTS FOR (t:Tag) REQUIRE t.name IS UNIQUE",
            "CREATE CONSTRAINT community_id_unique IF NOT EXISTS FOR (c:Community) REQUIRE c.id IS UNIQUE",
            // Aether additions: local logins need unique usernames; refresh tokens are looked up by digest.
            "CREATE CONSTRAINT user_username_unique IF NOT EXISTS FOR (u:User) REQUIRE u.username IS UNIQUE",
            "CREATE CONSTRAINT refresh_token_hash_unique IF NOT EXISTS FOR (t:RefreshToken) REQUIRE t.token_hash IS UNIQUE",
            // Full-text indexes.
            "CREATE FULLTEXT INDEX notebook_search IF NOT EXISTS FOR (n:Notebook) ON EACH [n.name, n.description, n.search_text]",
            "CREATE FULLTEXT INDEX document_search IF NOT EXISTS FOR (d:Document) ON EACH [d.original_filename, d.extracted_text, d.search_text]",
            "CREATE FULLTEXT INDEX user_search IF NOT EXISTS FOR (u:User) ON EACH [u.username, u.full_name, u.email]",
            "CREATE FULLTEXT INDEX tag_search IF NOT EXISTS FOR (t:Tag) ON EACH [t.name, t.description]",
            "CREATE FULLTEXT INDEX community_search IF NOT EXISTS FOR (c:Community) ON EACH [c.name, c.description]",
            // Property indexes.
            "CREATE INDEX user_status IF NOT EXISTS FOR (u:User) ON (u.status)",
            "CREATE INDEX user_created_at IF NOT EXISTS FOR (u:User) ON (u.created_at)",
            "CREATE INDEX user_last_login IF NOT EXISTS FOR (u:User) ON (u.last_login_at)",
            "CREATE INDEX notebook_status IF NOT EXISTS FOR (n:Notebook) ON (n.status)",
            "CREATE INDEX notebook_visibility IF NOT EXISTS FOR (n:Notebook) ON (n.visibility)",
            "CREATE INDEX notebook_created_at IF NOT EXISTS FOR (n:Notebook) ON (n.created_at)",
            "CREATE INDEX notebook_updated_at IF NOT EXISTS FOR (n:Notebook) ON (n.updated_at)",
            "CREATE INDEX document_status IF NOT EXISTS FOR (d:Document) ON (d.processing_status)",
            "CREATE INDEX document_content_type IF NOT EXISTS FOR (d:Document) ON (d.content_type)",
            "CREATE INDEX document_uploaded_at IF NOT EXISTS FOR (d:Document) ON (d.uploaded_at)",
            "CREATE INDEX document_file_hash IF NOT EXISTS FOR (d:Document) ON (d.file_hash)",
            "CREATE INDEX activity_event_type IF NOT EXISTS FOR (ae:ActivityEvent) ON (ae.event_type)",
            "CREATE INDEX activity_created_at IF NOT EXISTS FOR (ae:ActivityEvent) ON (ae.created_at)",
            "CREATE INDEX audit_action IF NOT EXISTS FOR (al:AuditLog) ON (al.action)",
            "CREATE INDEX audit_created_at IF NOT EXISTS FOR (al:AuditLog) ON (al.created_at)",
            "CREATE INDEX refresh_token_family IF NOT EXISTS FOR (t:RefreshToken) ON (t.family_id)",
            "CREATE INDEX refresh_token_expires IF NOT EXISTS FOR (t:RefreshToken) ON (t.expires_at)",
            // Composite indexes.
            "CREATE INDEX user_status_created IF NOT EXISTS FOR (u:User) ON (u.status, u.created_at)",
            "CREATE INDEX notebook_owner_status IF NOT EXISTS FOR (n:Notebook) ON (n.status, n.visibility)",
            "CREATE INDEX document_notebook_status IF NOT EXISTS FOR (d:Document) ON (d.processing_status, d.uploaded_at)",
            // Relationship indexes.
            "CREATE INDEX owns_created_at IF NOT EXISTS FOR ()-[r:OWNS]-() ON (r.created_at)",
            "CREATE INDEX collaborates_on_permission IF NOT EXISTS FOR ()-[r:COLLABORATES_ON]-() ON (r.permission, r.status)",
            "CREATE INDEX contains_added_at IF NOT EXISTS FOR ()-[r:CONTAINS]-() ON (r.added_at)",
            "CREATE INDEX accessed_at IF NOT EXISTS FOR ()-[r:ACCESSED]-() ON (r.accessed_at, r.access_type)",
            "CREATE INDEX shared_at IF NOT EXISTS FOR ()-[r:SHARED]-() ON (r.shared_at, r.visibility)",
            "CREATE INDEX tagged_with_at IF NOT EXISTS FOR ()-[r:TAGGED_WITH]-() ON (r.tagged_at)",
        ],
    },
    Migration {
        version: 2,
        name: "activity_audit",
        statements: &[
            "CREATE CONSTRAINT activity_event_id_unique IF NOT EXISTS FOR (ae:ActivityEvent) REQUIRE ae.id IS UNIQUE",
            "CREATE CONSTRAINT audit_log_id_unique IF NOT EXISTS FOR (al:AuditLog) REQUIRE al.id IS UNIQUE",
            "CREATE INDEX audit_resource IF NOT EXISTS FOR (al:AuditLog) ON (al.resource_id)",
        ],
    },
    Migration {
        version: 3,
        name: "outbox",
        statements: &[
            "CREATE CONSTRAINT outbox_event_id_unique IF NOT EXISTS FOR (e:OutboxEvent) REQUIRE e.id IS UNIQUE",
            "CREATE INDEX outbox_event_published IF NOT EXISTS FOR (e:OutboxEvent) ON (e.published_at)",
        ],
    },
    Migration {
        version: 4,
        name: "identity",
        statements: &[
            "CREATE CONSTRAINT api_key_id_unique IF NOT EXISTS FOR (k:ApiKey) REQUIRE k.id IS UNIQUE",
            "CREATE CONSTRAINT api_key_hash_unique IF NOT EXISTS FOR (k:ApiKey) REQUIRE k.secret_hash IS UNIQUE",
            "CREATE CONSTRAINT ephemeral_key_unique IF NOT EXISTS FOR (e:Ephemeral) REQUIRE e.key IS UNIQUE",
            "CREATE INDEX ephemeral_expires IF NOT EXISTS FOR (e:Ephemeral) ON (e.expires_at)",
            "CREATE INDEX audit_performed_by IF NOT EXISTS FOR (al:AuditLog) ON (al.performed_by)",
        ],
    },
    Migration {
        version: 5,
        name: "documents",
        statements: &[
            "CREATE CONSTRAINT upload_job_id_unique IF NOT EXISTS FOR (j:UploadJob) REQUIRE j.id IS UNIQUE",
            "CREATE CONSTRAINT document_version_id_unique IF NOT EXISTS FOR (v:DocumentVersion) REQUIRE v.id IS UNIQUE",
            "CREATE CONSTRAINT blob_deletion_id_unique IF NOT EXISTS FOR (b:BlobDeletion) REQUIRE b.id IS UNIQUE",
            "CREATE INDEX upload_job_status IF NOT EXISTS FOR (j:UploadJob) ON (j.status)",
            "CREATE INDEX upload_job_notebook IF NOT EXISTS FOR (j:UploadJob) ON (j.notebook_id)",
            "CREATE INDEX upload_job_blob_key IF NOT EXISTS FOR (j:UploadJob) ON (j.blob_key)",
            "CREATE INDEX document_version_storage_path IF NOT EXISTS FOR (v:DocumentVersion) ON (v.storage_path)",
        ],
    },
    Migration {
        version: 6,
        name: "document_search_without_original_text",
        statements: &[
            // A redacted document's original text must not be searchable by its readers:
            // the index covers `search_text` (file name and the text readers may see) only.
            "DROP INDEX document_search IF EXISTS",
            "CREATE FULLTEXT INDEX document_search_text IF NOT EXISTS FOR (d:Document) ON EACH [d.original_filename, d.search_text]",
        ],
    },
    Migration {
        version: 7,
        name: "fulltext_eventually_consistent",
        statements: &[
            // A full-text index that is not eventually consistent is brought up to date
            // inside every commit that touches its label: Lucene flushes a segment and
            // reopens its reader while the database's one index-update lock is held, so
            // every concurrent commit queues behind it (issue 14: 16 clients creating
            // notebooks spent their time there, 38 → 12 creates/s). Updated in the
            // background instead, the indexes lag a commit by moments; no use case reads
            // them yet, and one that does can call `db.awaitEventuallyConsistentIndexRefresh()`.
            "DROP INDEX notebook_search IF EXISTS",
            "CREATE FULLTEXT INDEX notebook_search IF NOT EXISTS FOR (n:Notebook) ON EACH [n.name, n.description, n.search_text] \
             OPTIONS {indexConfig: {`fulltext.eventually_consistent`: true}}",
            "DROP INDEX document_search_text IF EXISTS",
            "CREATE FULLTEXT INDEX document_search_text IF NOT EXISTS FOR (d:Document) ON EACH [d.original_filename, d.search_text] \
             OPTIONS {indexConfig: {`fulltext.eventually_consistent`: true}}",
            "DROP INDEX user_search IF EXISTS",
            "CREATE FULLTEXT INDEX user_search IF NOT EXISTS FOR (u:User) ON EACH [u.username, u.full_name, u.email] \
             OPTIONS {indexConfig: {`fulltext.eventually_consistent`: true}}",
            "DROP INDEX tag_search IF EXISTS",
            "CREATE FULLTEXT INDEX tag_search IF NOT EXISTS FOR (t:Tag) ON EACH [t.name, t.description] \
             OPTIONS {indexConfig: {`fulltext.eventually_consistent`: true}}",
            "DROP INDEX community_search IF EXISTS",
            "CREATE FULLTEXT INDEX community_search IF NOT EXISTS FOR (c:Community) ON EACH [c.name, c.description] \
             OPTIONS {indexConfig: {`fulltext.eventually_consistent`: true}}",
        ],
    },
    Migration {
        version: 8,
        name: "keyset_listings",
        statements: &[
            // Every listing is a walk along a range index, from its cursor (issue 14):
            // `WHERE x.key = $k AND x.id < $bound ORDER BY x.key, x.id LIMIT $n` seeks a
            // composite index and reads n rows in its order, whatever the listing's size.
            // A relationship cannot be indexed by the nodes it joins, so each listed node
            // (or relationship) carries a copy of the id it is listed under, written by
            // the statement that writes the relationship (`owner_id` with `OWNS`,
            // `parent_id` with `PARENT_OF`, …). These fill them in on existing data, in
            // batches; a node that already has its copy is skipped, so a rerun is cheap.
            "MATCH (u:User)-[:OWNS]->(n:Notebook) WHERE n.owner_id IS NULL \
             CALL { WITH u, n SET n.owner_id = u.id } IN TRANSACTIONS OF 10000 ROWS",
            "MATCH (p:Notebook)-[:PARENT_OF]->(n:Notebook) WHERE n.parent_id IS NULL \
             CALL { WITH p, n SET n.parent_id = p.id } IN TRANSACTIONS OF 10000 ROWS",
            "MATCH (n:Notebook)-[:CONTAINS]->(d:Document) WHERE d.notebook_id IS NULL \
             CALL { WITH n, d SET d.notebook_id = n.id } IN TRANSACTIONS OF 10000 ROWS",
            "MATCH (d:Document)-[:VERSION_OF]->(v:DocumentVersion) WHERE v.document_id IS NULL \
             CALL { WITH d, v SET v.document_id = d.id } IN TRANSACTIONS OF 10000 ROWS",
            "MATCH (ae:ActivityEvent)-[:ABOUT]->(n:Notebook) WHERE ae.notebook_id IS NULL \
             CALL { WITH ae, n SET ae.notebook_id = n.id } IN TRANSACTIONS OF 10000 ROWS",
            "MATCH (u:User)-[:HAS_API_KEY]->(k:ApiKey) WHERE k.user_id IS NULL \
             CALL { WITH u, k SET k.user_id = u.id } IN TRANSACTIONS OF 10000 ROWS",
            "MATCH (u:User)-[c:COLLABORATES_ON]->(n:Notebook) WHERE c.user_id IS NULL \
             CALL { WITH u, c, n SET c.user_id = u.id, c.notebook_id = n.id } IN TRANSACTIONS OF 10000 ROWS",
            // The indexes, each named for the listing it serves.
            "CREATE INDEX notebook_owner_keyset IF NOT EXISTS FOR (n:Notebook) ON (n.owner_id, n.id)",
            "CREATE INDEX notebook_parent_keyset IF NOT EXISTS FOR (n:Notebook) ON (n.parent_id, n.id)",
            "CREATE INDEX notebook_visibility_keyset IF NOT EXISTS FOR (n:Notebook) ON (n.visibility, n.id)",
            "CREATE INDEX document_notebook_keyset IF NOT EXISTS FOR (d:Document) ON (d.notebook_id, d.id)",
            "CREATE INDEX document_version_keyset IF NOT EXISTS FOR (v:DocumentVersion) ON (v.document_id, v.version_number)",
            "CREATE INDEX upload_job_notebook_keyset IF NOT EXISTS FOR (j:UploadJob) ON (j.notebook_id, j.id)",
            "CREATE INDEX activity_notebook_keyset IF NOT EXISTS FOR (ae:ActivityEvent) ON (ae.notebook_id, ae.id)",
            "CREATE INDEX audit_resource_keyset IF NOT EXISTS FOR (al:AuditLog) ON (al.resource_id, al.id)",
            "CREATE INDEX api_key_user_keyset IF NOT EXISTS FOR (k:ApiKey) ON (k.user_id, k.id)",
            "CREATE INDEX collaborates_on_notebook_keyset IF NOT EXISTS FOR ()-[c:COLLABORATES_ON]-() ON (c.notebook_id, c.user_id)",
            "CREATE INDEX collaborates_on_user_keyset IF NOT EXISTS FOR ()-[c:COLLABORATES_ON]-() \
             ON (c.user_id, c.status, c.notebook_id)",
            // Listings name their index (`USING INDEX`), which must be online.
            "CALL db.awaitIndexes(600)",
        ],
    },
    Migration {
        version: 9,
        name: "outbox_pending_label",
        statements: &[
            // Unpublished events carry `OutboxPending`, which the relay polls (see
            // `outbox.rs`); these are the events written before the label existed.
            "MATCH (e:OutboxEvent) WHERE e.published_at IS NULL \
             CALL { WITH e SET e:OutboxPending } IN TRANSACTIONS OF 10000 ROWS",
        ],
    },
    Migration {
        version: 10,
        name: "search_chunks",
        statements: &[
            // Search (issue 15): documents are searched by their chunks, each a
            // `(:Chunk)` written with its document. What is indexed is the words of the
            // text (`aether_domain::words`: `report.pdf` is two words, as in FTS5), and
            // folding analyzers compare them without diacritics, as FTS5 does. Notebooks
            // are searched by `search_text`, the words of name, description and tags.
            "CREATE INDEX chunk_document IF NOT EXISTS FOR (c:Chunk) ON (c.document_id)",
            "CREATE FULLTEXT INDEX chunk_search IF NOT EXISTS FOR (c:Chunk) ON EACH [c.words] \
             OPTIONS {indexConfig: {`fulltext.analyzer`: 'standard-folding', `fulltext.eventually_consistent`: true}}",
            "DROP INDEX notebook_search IF EXISTS",
            "CREATE FULLTEXT INDEX notebook_search IF NOT EXISTS FOR (n:Notebook) ON EACH [n.search_text] \
             OPTIONS {indexConfig: {`fulltext.analyzer`: 'standard-folding', `fulltext.eventually_consistent`: true}}",
            // People search for callers who may not see e-mail addresses: names only.
            "CREATE FULLTEXT INDEX user_public_search IF NOT EXISTS FOR (u:User) ON EACH [u.username, u.full_name] \
             OPTIONS {indexConfig: {`fulltext.analyzer`: 'standard-folding', `fulltext.eventually_consistent`: true}}",
            "CALL db.awaitIndexes(600)",
        ],
    },
    Migration {
        version: 11,
        name: "chunk_embeddings",
        statements: &[
            // Semantic search (issue 15): each chunk's vector, from the built-in
            // all-MiniLM-L6-v2 (384 dimensions), in Neo4j's approximate (HNSW) vector
            // index. Chunks wait for theirs under `EmbeddingPending`, which the
            // embedding worker polls and storing a vector removes.
            "CREATE CONSTRAINT chunk_id_unique IF NOT EXISTS FOR (c:Chunk) REQUIRE c.id IS UNIQUE",
            "MATCH (c:Chunk) WHERE c.id IS NULL CALL { WITH c SET c.id = randomUUID(), c:EmbeddingPending } \
             IN TRANSACTIONS OF 10000 ROWS",
            "CREATE VECTOR INDEX chunk_embedding IF NOT EXISTS FOR (c:Chunk) ON c.embedding \
             OPTIONS {indexConfig: {`vector.dimensions`: 384, `vector.similarity_function`: 'cosine'}}",
            "CALL db.awaitIndexes(600)",
        ],
    },
    Migration {
        version: 12,
        name: "search_queries",
        statements: &[
            // The record of searches (issue 15): each user's history, newest first,
            // walked by (user_id, id); analytics by time.
            "CREATE CONSTRAINT search_query_id_unique IF NOT EXISTS FOR (q:SearchQuery) REQUIRE q.id IS UNIQUE",
            "CREATE INDEX search_query_user_keyset IF NOT EXISTS FOR (q:SearchQuery) ON (q.user_id, q.id)",
            "CREATE INDEX search_query_created_at IF NOT EXISTS FOR (q:SearchQuery) ON (q.created_at)",
            "CALL db.awaitIndexes(600)",
        ],
    },
    Migration {
        version: 13,
        name: "chunk_scope",
        statements: &[
            // Search at scale (issue 15): each chunk names its notebook in `scope` (the
            // id without hyphens, one token), indexed with its words, so that a search
            // asks the index for chunks of the notebooks the caller may read instead of
            // every match. A document never changes notebook, so the token never changes.
            "MATCH (c:Chunk) WHERE c.scope IS NULL \
             CALL { WITH c SET c.scope = replace(c.notebook_id, '-', '') } IN TRANSACTIONS OF 10000 ROWS",
            "DROP INDEX chunk_search IF EXISTS",
            "CREATE FULLTEXT INDEX chunk_search IF NOT EXISTS FOR (c:Chunk) ON EACH [c.words, c.scope] \
             OPTIONS {indexConfig: {`fulltext.analyzer`: 'standard-folding', `fulltext.eventually_consistent`: true}}",
            "CALL db.awaitIndexes(600)",
        ],
    },
];
