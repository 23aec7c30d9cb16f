//! The embedded graph store: Aether's model on one SQLite file.
//!
//! Nodes are tables, relationships are join tables (see `migrations/`). The file runs
//! in WAL mode with `synchronous = FULL`, so a write acknowledged to a client survives
//! a crash of the process or the machine. Write use cases run in `BEGIN IMMEDIATE`
//! transactions, which take the write lock up front instead of failing on upgrade.
//!
//! The rules a use case applies (patches, depth and cycle bounds, job transitions,
//! what a change records) are `aether_domain`'s; the modules here read and write:
//! one module per port or idea, row types and their conversion in `rows`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use aether_domain::StoreError;
use aether_domain::store::{Store, StoreResult};
use async_trait::async_trait;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use tokio::sync::{Mutex, MutexGuard};

#[macro_use]
mod rows;
mod activity;
mod api_keys;
mod chunk_index;
mod collaborations;
mod documents;
mod ephemeral;
mod hierarchy;
mod notebooks;
mod outbox;
#[cfg(test)]
mod query_plans;
mod related;
mod search;
mod search_log;
mod sessions;
mod users;
mod vectors;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// SQLite has one writer at a time. Queuing writers here, rather than letting
    /// them spin in SQLite's busy handler (which sleeps in growing steps), keeps
    /// write latency flat under concurrency.
    writer: Arc<Mutex<()>>,
    /// Chunk vectors in memory by notebook, for semantic search (see `vectors`).
    vectors: vectors::VectorShelves,
    /// The full-text index of document chunks beside the file (see `chunk_index`).
    chunks: Arc<chunk_index::ChunkIndex>,
}

/// A write transaction (`BEGIN IMMEDIATE`) with this process's writer slot.
type WriteTxn<'a> = (MutexGuard<'a, ()>, sqlx::Transaction<'static, sqlx::Sqlite>);

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path`. Does not migrate.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new().max_connections(8).connect_with(options).await.map_err(map_err)?;
        let chunks = chunk_index::ChunkIndex::open(path)?;
        chunks.follow(pool.clone());
        Ok(Self { pool, writer: Arc::new(Mutex::new(())), vectors: vectors::VectorShelves::new(), chunks })
    }

    /// Opens and migrates, the usual way to start.
    pub async fn open_and_migrate(path: &Path) -> StoreResult<Self> {
        let store = Self::open(path).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Starts a write transaction, holding this process's writer slot until dropped.
    async fn begin_write(&self) -> StoreResult<WriteTxn<'_>> {
        let writer = self.writer.lock().await;
        let tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        Ok((writer, tx))
    }

    /// Waits for in-flight queries and checkpoints the WAL.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn map_err(error: sqlx::Error) -> StoreError {
    match error {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            // SQLite names the column: "UNIQUE constraint failed: users.username".
            let message = db.message();
            let field = message.rsplit('.').next().unwrap_or("unique").trim().to_owned();
            StoreError::Conflict(field)
        }
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound,
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            StoreError::Unavailable(error.to_string())
        }
        sqlx::Error::Database(db) if db.message().contains("database is locked") => {
            StoreError::Unavailable(db.message().to_owned())
        }
        other => StoreError::Internal(other.to_string()),
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend_name(&self) -> &'static str {
        "sqlite"
    }

    async fn migrate(&self) -> StoreResult<Vec<String>> {
        let before: Vec<i64> = applied_versions(&self.pool).await;
        MIGRATOR.run(&self.pool).await.map_err(|error| StoreError::Internal(error.to_string()))?;
        let applied = MIGRATOR
            .iter()
            .filter(|migration| !before.contains(&migration.version))
            .map(|migration| format!("{:04}_{}", migration.version, migration.description))
            .collect::<Vec<_>>();
        for name in &applied {
            tracing::info!(migration = %name, "applied sqlite migration");
        }
        Ok(applied)
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(map_err)?;
        Ok(())
    }
}

async fn applied_versions(pool: &SqlitePool) -> Vec<i64> {
    // The table does not exist before the first migration; that simply means none.
    sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success = 1")
        .fetch_all(pool)
        .await
        .unwrap_or_default()
}
