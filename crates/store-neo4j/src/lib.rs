//! The production graph store: Aether's model in Neo4j 5, over Bolt.
//!
//! Labels, relationship types and property names follow the design's schema:
//! `(:User)-[:OWNS]->(:Notebook)`, `(:RefreshToken)-[:ISSUED_TO]->(:User)`. Neo4j
//! properties cannot hold maps, so map-valued properties (`compliance_settings`) are
//! stored as JSON strings. Timestamps are Neo4j `datetime` values, read back through
//! `toString`. Use cases that read and then write take the node's write lock first
//! (by setting a property), so concurrent requests serialise on the node.
//!
//! The rules a use case applies (patches, depth and cycle bounds, job transitions,
//! what a change records) are `aether_domain`'s; the modules here read and write:
//! one module per port or idea, records and their conversion in `rows`, transactions
//! in `txn`.

mod activity;
mod api_keys;
mod collaborations;
mod documents;
mod ephemeral;
mod hierarchy;
mod migrations;
mod notebooks;
mod outbox;
#[cfg(test)]
mod query_plans;
mod related;
mod rows;
mod search;
mod search_log;
mod sessions;
mod txn;
mod users;

use std::time::Duration;

use aether_domain::store::{Store, StoreResult};
use async_trait::async_trait;
use neo4rs::{ConfigBuilder, Graph, Query, Row, query};

use crate::txn::map_err;

/// How to reach Neo4j.
#[derive(Debug, Clone)]
pub struct Neo4jConfig {
    pub uri: String,
    pub user: String,
    pub password: String,
    pub database: String,
    pub max_connections: usize,
}

#[derive(Clone)]
pub struct Neo4jStore {
    graph: Graph,
    uri: String,
    /// The vector lengths whose own index this process has made sure of (see
    /// `search::vector_index`).
    vector_indexes: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<usize>>>,
}

impl std::fmt::Debug for Neo4jStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Neo4jStore").field("uri", &self.uri).finish_non_exhaustive()
    }
}

impl Neo4jStore {
    /// Builds the connection pool and checks that the server answers.
    pub async fn connect(config: &Neo4jConfig) -> StoreResult<Self> {
        let neo4j_config = ConfigBuilder::default()
            .uri(config.uri.as_str())
            .user(config.user.as_str())
            .password(config.password.as_str())
            .db(config.database.as_str())
            .max_connections(config.max_connections)
            .connection_timeout(Duration::from_secs(10))
            .build()
            .map_err(map_err)?;
        let graph = Graph::connect(neo4j_config).map_err(map_err)?;
        let store = Self { graph, uri: config.uri.clone(), vector_indexes: std::sync::Arc::default() };
        store.ping().await?;
        Ok(store)
    }

    async fn rows(&self, q: Query) -> StoreResult<Vec<Row>> {
        let mut stream = self.graph.execute(q).await.map_err(map_err)?;
        let mut rows = Vec::new();
        while let Some(row) = stream.next().await.map_err(map_err)? {
            rows.push(row);
        }
        Ok(rows)
    }

    async fn optional_row(&self, q: Query) -> StoreResult<Option<Row>> {
        Ok(self.rows(q).await?.into_iter().next())
    }
}

#[async_trait]
impl Store for Neo4jStore {
    fn backend_name(&self) -> &'static str {
        "neo4j"
    }

    async fn migrate(&self) -> StoreResult<Vec<String>> {
        let applied_rows = self.rows(query("MATCH (m:SchemaMigration) RETURN m.version AS version")).await?;
        let applied: Vec<i64> = applied_rows.iter().filter_map(|row| row.get::<i64>("version").ok()).collect();
        let mut newly_applied = Vec::new();
        for migration in migrations::MIGRATIONS {
            if applied.contains(&migration.version) {
                continue;
            }
            // Schema statements cannot share a transaction with data writes, so each runs
            // on its own; all are idempotent, which makes a crashed or concurrent run safe.
            for statement in migration.statements {
                match self.graph.run(query(statement)).await {
                    Ok(()) => {}
                    // `IF NOT EXISTS` is checked before the schema lock is taken: two
                    // replicas migrating at once can both pass the check, and the loser is
                    // told the rule already exists, which is the state it wanted.
                    Err(neo4rs::Error::Neo4j(error))
                        if error.code().starts_with("Neo.ClientError.Schema.")
                            && error.code().ends_with("AlreadyExists") => {}
                    Err(error) => return Err(map_err(error)),
                }
            }
            let record = query(
                "MERGE (m:SchemaMigration {version: $version}) \
                 ON CREATE SET m.name = $name, m.applied_at = datetime()",
            )
            .param("version", migration.version)
            .param("name", migration.name);
            self.graph.run(record).await.map_err(map_err)?;
            let name = format!("{:04}_{}", migration.version, migration.name);
            tracing::info!(migration = %name, "applied neo4j migration");
            newly_applied.push(name);
        }
        Ok(newly_applied)
    }

    async fn ping(&self) -> StoreResult<()> {
        self.rows(query("RETURN 1 AS ok")).await.map(|_| ())
    }
}
