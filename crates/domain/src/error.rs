//! Errors shared by every backend and every validated type.

/// The backend-neutral error of every store port. Each backend converts its own
/// driver errors into one of these, so services never see SQL or Cypher failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The addressed entity does not exist (or is soft-deleted).
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was violated; the message names the rule (e.g. `username`).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The backend could not be reached or timed out; the request may be retried.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The backend answered with data the domain cannot accept (a bug or manual edit).
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// Any other backend failure.
    #[error("store failure: {0}")]
    Internal(String),
}

/// A value from outside the system failed validation. `field` names the offending
/// input so that the API can point at it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    pub field: &'static str,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self { field, message: message.into() }
    }
}
