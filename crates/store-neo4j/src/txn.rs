//! Transactions and driver errors: every multi-statement use case runs in
//! [`in_txn`], and every driver error becomes a `StoreError` here.

use std::time::Duration;

use aether_domain::StoreError;
use aether_domain::store::StoreResult;
use neo4rs::{Graph, Query, Row, Txn};

/// Runs `body` in one transaction: committed when it returns `Ok`, rolled back when
/// it returns `Err`. An explicit rollback matters: a dropped transaction would keep
/// its locks until its pooled connection happens to be reused.
pub(crate) async fn in_txn<T>(graph: &Graph, body: impl AsyncFnOnce(&mut Txn) -> StoreResult<T>) -> StoreResult<T> {
    let mut txn = graph.start_txn().await.map_err(map_err)?;
    match body(&mut txn).await {
        Ok(value) => {
            txn.commit().await.map_err(map_err)?;
            Ok(value)
        }
        Err(error) => {
            if let Err(rollback) = txn.rollback().await {
                tracing::warn!(error = %rollback, "neo4j rollback failed");
            }
            Err(error)
        }
    }
}

/// [`in_txn`] for use cases that run concurrently on the same nodes (the document
/// workers): Neo4j ends one of two transactions that wait for each other's locks
/// with a transient error (`DeadlockDetected`), and, as its manual advises, such a
/// transaction is run again, a few times, after a short random pause.
pub(crate) async fn in_txn_retrying<T>(
    graph: &Graph,
    body: impl AsyncFn(&mut Txn) -> StoreResult<T>,
) -> StoreResult<T> {
    const ATTEMPTS: u32 = 5;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let error = match in_txn(graph, async |txn: &mut Txn| body(txn).await).await {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        if attempt >= ATTEMPTS || !is_transient(&error) {
            return Err(error);
        }
        tracing::debug!(%error, attempt, "retrying a transaction after a transient error");
        let pause = 10 * u64::from(attempt) + u64::from(rand_jitter());
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

fn is_transient(error: &StoreError) -> bool {
    matches!(error, StoreError::Unavailable(code) if code.starts_with("Neo.TransientError"))
}

/// 0–31 ms, from the clock: enough to keep two retrying transactions apart.
fn rand_jitter() -> u8 {
    (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos()) % 32) as u8
}

/// Every row of a query run in the transaction.
pub(crate) async fn txn_rows(txn: &mut Txn, q: Query) -> StoreResult<Vec<Row>> {
    let mut stream = txn.execute(q).await.map_err(map_err)?;
    let mut rows = Vec::new();
    while let Some(row) = stream.next(txn.handle()).await.map_err(map_err)? {
        rows.push(row);
    }
    Ok(rows)
}

/// The first row of a query run in the transaction, if any.
pub(crate) async fn txn_row(txn: &mut Txn, q: Query) -> StoreResult<Option<Row>> {
    Ok(txn_rows(txn, q).await?.into_iter().next())
}

/// The integer `column` of a query's one row.
pub(crate) async fn single_value(txn: &mut Txn, q: Query, column: &str) -> StoreResult<i64> {
    let row = txn_row(txn, q).await?.ok_or_else(|| StoreError::Internal("no row".into()))?;
    row.get::<i64>(column).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn map_err(error: neo4rs::Error) -> StoreError {
    use neo4rs::{Error, Neo4jErrorKind};
    match &error {
        Error::Neo4j(neo) if neo.code() == "Neo.ClientError.Schema.ConstraintValidationFailed" => {
            // "Node(12) already exists with label `User` and property `username` = 'alice'"
            let field = neo
                .message()
                .split("property `")
                .nth(1)
                .and_then(|rest| rest.split('`').next())
                .unwrap_or("unique")
                .to_owned();
            StoreError::Conflict(field)
        }
        Error::Neo4j(neo) if matches!(neo.kind(), Neo4jErrorKind::Transient) => {
            StoreError::Unavailable(neo.code().to_owned())
        }
        Error::IOError { .. }
        | Error::ConnectionError
        | Error::ConnectionTimedOut
        | Error::ServerUnavailableError(_)
        | Error::AuthenticationError(_) => StoreError::Unavailable(error.to_string()),
        _ => StoreError::Internal(error.to_string()),
    }
}
