//! The domain model of Aether and the ports its services depend on.
//!
//! Everything here is plain data and traits: no IO, no async runtime, no framework.
//! Values are validated when they are constructed (`parse`), so a service that holds
//! a [`notebook::NotebookName`] knows it is a valid name without checking again.

pub mod access;
pub mod activity;
pub mod api_key;
pub mod auth;
pub mod blob;
pub mod cache;
pub mod capability;
pub mod chunk;
pub mod compliance;
pub mod document;
pub mod embedding;
pub mod ephemeral;
pub mod error;
pub mod events;
pub mod external;
pub mod id;
pub mod identity;
pub mod job;
pub mod limits;
pub mod net;
pub mod notebook;
pub mod outbound;
pub mod page;
pub mod processing;
pub mod related;
pub mod scan;
pub mod search;
pub mod search_log;
pub mod semantic;
pub mod session;
pub mod snippet;
pub mod store;
pub mod time;
pub mod token;
pub mod transcription;
pub mod user;
pub mod words;

pub use error::{StoreError, ValidationError};
