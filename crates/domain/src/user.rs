//! Users: accounts known to Aether, local or synchronised from Keycloak.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ValidationError;
use crate::id::UserId;
use crate::time::Timestamp;

/// A login name: 1–64 characters of ASCII letters, digits, `.`, `_`, `-` and `@`,
/// stored in lower case so that `Alice` and `alice` are the same account.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Username(String);

impl Username {
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        let too_long = text.chars().count() > 64;
        let text = text.trim();
        if text.is_empty() || too_long {
            return Err(ValidationError::new("username", "must be 1 to 64 characters"));
        }
        if !text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@')) {
            return Err(ValidationError::new("username", "may contain only letters, digits, '.', '_', '-' and '@'"));
        }
        Ok(Self(text.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An e-mail address, checked for shape only (one `@`, non-empty parts, no spaces),
/// stored in lower case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        let too_long = text.chars().count() > 254;
        let text = text.trim();
        let valid = !too_long
            && text.len() <= 254
            && !text.chars().any(char::is_whitespace)
            && matches!(text.split_once('@'), Some((local, domain))
                if !local.is_empty() && !domain.is_empty() && !domain.contains('@'));
        if !valid {
            return Err(ValidationError::new("email", "must be an e-mail address"));
        }
        Ok(Self(text.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password as typed by a person. Never logged: its `Debug` is redacted.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub const MIN_LEN: usize = 8;

    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        let chars = text.chars().count();
        if !(Self::MIN_LEN..=1024).contains(&chars) {
            return Err(ValidationError::new("password", format!("must be {} to 1024 characters", Self::MIN_LEN)));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// A realm role, as Keycloak names them. Roles grant global capabilities; access to
/// individual resources comes from graph relationships instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    #[serde(rename = "aether-admin")]
    Admin,
    #[serde(rename = "aether-user")]
    User,
    #[serde(rename = "aether-viewer")]
    Viewer,
    #[serde(rename = "notebook-admin")]
    NotebookAdmin,
    #[serde(rename = "compliance-officer")]
    ComplianceOfficer,
}

impl Role {
    pub const ALL: [Role; 5] = [Role::Admin, Role::User, Role::Viewer, Role::NotebookAdmin, Role::ComplianceOfficer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "aether-admin",
            Role::User => "aether-user",
            Role::Viewer => "aether-viewer",
            Role::NotebookAdmin => "notebook-admin",
            Role::ComplianceOfficer => "compliance-officer",
        }
    }
}

impl FromStr for Role {
    type Err = ValidationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Role::ALL.into_iter().find(|role| role.as_str() == text).ok_or_else(|| {
            ValidationError::new(
                "role",
                format!("unknown role '{text}'; expected one of {}", Role::ALL.map(Role::as_str).join(", ")),
            )
        })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    Active,
    Inactive,
    Suspended,
    /// Soft-deleted: kept for audit and referential integrity, invisible to reads.
    Deleted,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Inactive => "inactive",
            UserStatus::Suspended => "suspended",
            UserStatus::Deleted => "deleted",
        }
    }

    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        match text {
            "active" => Ok(UserStatus::Active),
            "inactive" => Ok(UserStatus::Inactive),
            "suspended" => Ok(UserStatus::Suspended),
            "deleted" => Ok(UserStatus::Deleted),
            _ => Err(ValidationError::new("status", "must be active, inactive, suspended or deleted")),
        }
    }
}

/// A user as stored. Credentials are not part of it: they are read only by the
/// login use case, through [`crate::store::UserStore::find_local_credentials`].
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: UserId,
    pub keycloak_id: Option<String>,
    pub username: Username,
    pub email: Option<Email>,
    pub full_name: Option<String>,
    pub avatar_url: Option<String>,
    pub roles: Vec<Role>,
    /// Group names from the identity provider.
    pub groups: Vec<String>,
    /// Attributes from the identity provider, as it gave them.
    pub attributes: serde_json::Map<String, serde_json::Value>,
    /// The user's own settings (language, theme, notification choices…), free-form.
    pub preferences: serde_json::Map<String, serde_json::Value>,
    pub status: UserStatus,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub last_login_at: Option<Timestamp>,
    /// When the profile was last copied from the identity provider.
    pub last_sync_at: Option<Timestamp>,
}

/// Everything needed to create a user.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: UserId,
    pub keycloak_id: Option<String>,
    pub username: Username,
    pub email: Option<Email>,
    pub full_name: Option<String>,
    pub roles: Vec<Role>,
    /// The argon2id PHC string of a local account; `None` for accounts that log in elsewhere.
    pub password_hash: Option<String>,
    pub created_at: Timestamp,
}

/// A partial update of a user's profile. `None` leaves a field as it is; for the
/// optional fields `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub email: Option<Option<Email>>,
    pub full_name: Option<Option<String>>,
    pub avatar_url: Option<Option<String>>,
    pub preferences: Option<serde_json::Map<String, serde_json::Value>>,
    pub roles: Option<Vec<Role>>,
    pub status: Option<UserStatus>,
}

impl User {
    /// Applies a profile patch in memory: every field it sets, updated at `at`.
    pub fn apply_patch(&mut self, patch: UserPatch, at: Timestamp) {
        if let Some(email) = patch.email {
            self.email = email;
        }
        if let Some(full_name) = patch.full_name {
            self.full_name = full_name;
        }
        if let Some(avatar_url) = patch.avatar_url {
            self.avatar_url = avatar_url;
        }
        if let Some(roles) = patch.roles {
            self.roles = roles;
        }
        if let Some(preferences) = patch.preferences {
            self.preferences = preferences;
        }
        if let Some(status) = patch.status {
            self.status = status;
        }
        self.updated_at = at;
    }
}

/// What a user search looks for: the text trimmed and in lower case, found anywhere
/// in a username, e-mail address or full name (matched in lower case too).
pub fn search_needle(text: &str) -> String {
    text.trim().to_lowercase()
}

/// A local account's stored credentials, for the password grant.
#[derive(Debug, Clone)]
pub struct LocalCredentials {
    pub user: User,
    pub password_hash: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_normalised_and_checked() {
        assert_eq!(Username::parse(" Alice ").map(|u| u.0), Ok("alice".to_owned()));
        assert!(Username::parse("").is_err());
        assert!(Username::parse("a b").is_err());
        assert!(Username::parse(&"x".repeat(65)).is_err());
    }

    #[test]
    fn a_patch_changes_what_it_sets_and_nothing_else() {
        let at = crate::time::now();
        let mut user = User {
            id: UserId::new(),
            keycloak_id: None,
            username: Username::parse("alice").expect("valid"),
            email: Some(Email::parse("a@b.example").expect("valid")),
            full_name: Some("Alice".into()),
            avatar_url: None,
            roles: vec![Role::User],
            groups: Vec::new(),
            attributes: serde_json::Map::new(),
            preferences: serde_json::Map::new(),
            status: UserStatus::Active,
            created_at: at,
            updated_at: at,
            last_login_at: None,
            last_sync_at: None,
        };
        let later = crate::time::after(at, std::time::Duration::from_secs(1));
        let patch = UserPatch { email: Some(None), roles: Some(vec![Role::Viewer]), ..UserPatch::default() };
        user.apply_patch(patch, later);
        assert_eq!((user.email, user.full_name.as_deref()), (None, Some("Alice")));
        assert_eq!((user.roles, user.status, user.updated_at), (vec![Role::Viewer], UserStatus::Active, later));
    }

    #[test]
    fn search_needles_are_trimmed_lower_case() {
        assert_eq!(search_needle("  Alice@Example "), "alice@example");
    }

    #[test]
    fn emails_need_one_at_sign() {
        assert!(Email::parse("a@b.example").is_ok());
        assert!(Email::parse("a@@b").is_err());
        assert!(Email::parse("@b").is_err());
        assert!(Email::parse("a b@c").is_err());
    }

    #[test]
    fn roles_parse_by_their_keycloak_names() {
        assert_eq!("aether-admin".parse::<Role>(), Ok(Role::Admin));
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn password_debug_is_redacted() {
        let password = Password::parse("correct horse").expect("valid");
        assert!(!format!("{password:?}").contains("horse"));
        assert!(Password::parse("short").is_err());
    }
}
