//! Personal API keys: their scopes, names and records.

use serde::{Deserialize, Serialize};

use crate::ValidationError;
use crate::capability::Capability;
use crate::id::{ApiKeyId, UserId};
use crate::time::Timestamp;

/// What a personal API key may do, on top of (never beyond) its owner's roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiKeyScope {
    Read,
    Write,
    Admin,
}

impl ApiKeyScope {
    pub fn as_str(self) -> &'static str {
        match self {
            ApiKeyScope::Read => "read",
            ApiKeyScope::Write => "write",
            ApiKeyScope::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        match text {
            "read" => Ok(ApiKeyScope::Read),
            "write" => Ok(ApiKeyScope::Write),
            "admin" => Ok(ApiKeyScope::Admin),
            other => {
                Err(ValidationError::new("scopes", format!("unknown scope '{other}'; expected read, write or admin")))
            }
        }
    }

    /// The capabilities a key with this scope may exercise (still capped by its owner's roles).
    pub fn capabilities(self) -> &'static [Capability] {
        match self {
            ApiKeyScope::Read => &[Capability::Read],
            ApiKeyScope::Write => &[Capability::Read, Capability::Write],
            ApiKeyScope::Admin => &Capability::ALL,
        }
    }
}

/// A key's human-readable label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyName(String);

impl ApiKeyName {
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        // Lengths count the text as sent, as the OpenAPI document's `maxLength` does.
        let too_long = text.chars().count() > 100;
        let text = text.trim();
        if text.is_empty() || too_long || text.chars().any(char::is_control) {
            return Err(ValidationError::new("name", "must be 1–100 characters, without control characters"));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A personal API key as stored: never the secret, only its digest (kept by the store
/// and not part of this type) and a prefix to recognise it by.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub user_id: UserId,
    pub name: ApiKeyName,
    /// The first characters of the key, shown in lists so users can tell keys apart.
    pub prefix: String,
    pub scopes: Vec<ApiKeyScope>,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

impl ApiKey {
    /// Usable at `now`: not revoked and not expired.
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|expires| expires > now)
    }

    pub fn capabilities(&self) -> Vec<Capability> {
        let mut capabilities: Vec<Capability> =
            self.scopes.iter().flat_map(|scope| scope.capabilities()).copied().collect();
        capabilities.sort();
        capabilities.dedup();
        capabilities
    }
}

/// A key to create.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub id: ApiKeyId,
    pub user_id: UserId,
    pub name: ApiKeyName,
    pub prefix: String,
    /// SHA-256 of the whole key, hex.
    pub secret_hash: String,
    pub scopes: Vec<ApiKeyScope>,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_scopes_parse_and_map() {
        assert_eq!(ApiKeyScope::parse("write"), Ok(ApiKeyScope::Write));
        assert!(ApiKeyScope::parse("root").is_err());
        assert!(!ApiKeyScope::Read.capabilities().contains(&Capability::Write));
    }

    #[test]
    fn key_names_are_checked() {
        assert!(ApiKeyName::parse("  ci  ").is_ok_and(|name| name.as_str() == "ci"));
        assert!(ApiKeyName::parse("").is_err());
        assert!(ApiKeyName::parse("a\nb").is_err());
    }
}
