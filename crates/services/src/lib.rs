//! Aether's use cases. Each service takes validated domain values, enforces the
//! rules no single store call can (authorization, password checks, token rotation),
//! and talks to the outside world only through the domain's ports.

pub mod access;
pub mod accounts;
pub mod avatars;
pub mod cache;
pub mod documents;
pub mod error;
pub mod events;
pub mod identity;
pub mod limits;
pub mod live;
pub mod notebooks;
pub mod ports;
pub mod search;
pub mod search_cache;

pub use access::Authorizer;
pub use accounts::{AccountService, SessionSettings, TokenPair};
pub use avatars::AvatarService;
pub use cache::{CachedReads, InProcessReadCache};
pub use documents::{DocumentService, DocumentSettings};
pub use error::ServiceError;
pub use identity::{IdentityProvider, IdentityService, IdentitySettings};
pub use notebooks::NotebookService;
pub use ports::{AccountPorts, DocumentPorts, IdentityPorts, NotebookPorts, ReadPorts, SearchPorts};
pub use search::SearchService;
