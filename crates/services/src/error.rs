use aether_domain::{StoreError, ValidationError};

/// The error of every use case. The API maps each variant to one status and code.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// The resource does not exist, or the caller may not know that it does.
    #[error("not found")]
    NotFound,
    /// The caller may see the resource but not do this to it.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// A uniqueness rule; the string names the field.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The request conflicts with the state of the graph (too deep, a cycle, live
    /// children …); `code` is stable, `detail` is for people.
    #[error("rejected: {code}")]
    Rejected { code: &'static str, detail: String },
    /// The client's precondition (`If-Match`) no longer holds: someone else changed
    /// the resource since the client read it.
    #[error("precondition failed")]
    PreconditionFailed,
    /// Wrong username or password, or an unusable refresh token (RFC 6749 `invalid_grant`).
    #[error("invalid grant")]
    InvalidGrant,
    /// The presented credential (token, session, API key) is not acceptable.
    #[error(transparent)]
    Unauthenticated(#[from] aether_domain::token::TokenError),
    /// A dependency is down; retrying later may succeed.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A bug or corrupt data; details are logged, never shown to clients.
    #[error("internal: {0}")]
    Internal(String),
}

impl From<StoreError> for ServiceError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => ServiceError::NotFound,
            StoreError::Conflict(field) => ServiceError::Conflict(field),
            StoreError::Unavailable(message) => ServiceError::Unavailable(message),
            StoreError::Corrupt(message) | StoreError::Internal(message) => ServiceError::Internal(message),
        }
    }
}

pub type ServiceResult<T> = Result<T, ServiceError>;
