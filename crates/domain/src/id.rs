//! Typed identifiers. All ids are UUID v7, so they sort by creation time; cursor
//! pagination relies on that order.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ValidationError;

macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident, $field:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            pub fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }

            /// Parses the hyphenated textual form used on the wire and in stores.
            pub fn parse(text: &str) -> Result<Self, ValidationError> {
                Uuid::try_parse(text)
                    .map(Self)
                    .map_err(|_| ValidationError::new($field, "must be a UUID"))
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }
    };
}

uuid_id!(
    /// Identifies a [`crate::user::User`].
    UserId,
    "user_id"
);
uuid_id!(
    /// Identifies a [`crate::notebook::Notebook`].
    NotebookId,
    "notebook_id"
);
uuid_id!(
    /// Groups the chain of refresh tokens that descend from one login.
    TokenFamilyId,
    "token_family_id"
);

uuid_id!(
    /// Identifies a personal [`crate::api_key::ApiKey`].
    ApiKeyId,
    "api_key_id"
);

uuid_id!(
    /// Identifies a [`crate::document::Document`].
    DocumentId,
    "document_id"
);

uuid_id!(
    /// Identifies a [`crate::document::DocumentVersion`].
    VersionId,
    "version_id"
);

uuid_id!(
    /// Identifies an [`crate::job::UploadJob`].
    JobId,
    "job_id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_sort_by_creation() {
        let first = NotebookId::new();
        let second = NotebookId::new();
        assert!(first < second);
        assert_eq!(NotebookId::parse(&first.to_string()).ok(), Some(first));
        assert!(first.to_string() < second.to_string());
    }

    #[test]
    fn malformed_id_is_rejected() {
        assert_eq!(NotebookId::parse("nope").unwrap_err().field, "notebook_id");
    }
}
