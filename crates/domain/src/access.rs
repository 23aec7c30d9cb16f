//! Authorization over the graph (DESIGN.md §4): who may do what to a notebook, and
//! why. The store reports the facts along the notebook's ancestor chain; the rules
//! that turn them into an effective permission live here, once, for every backend.

use serde::{Deserialize, Serialize};

use crate::ValidationError;
use crate::activity::ChangeRecord;
use crate::events::{NewEvent, topics};
use crate::id::{NotebookId, UserId};
use crate::notebook::Visibility;
use crate::time::Timestamp;
use crate::user::Role;

/// What a caller may do to a notebook. Ordered: a higher permission includes the lower.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// See the notebook, its children and documents.
    Read,
    /// Also change them.
    Write,
    /// Also share, change permissions, move and delete.
    Admin,
}

impl Permission {
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Read => "read",
            Permission::Write => "write",
            Permission::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        match text {
            "read" => Ok(Permission::Read),
            "write" => Ok(Permission::Write),
            "admin" => Ok(Permission::Admin),
            _ => Err(ValidationError::new("permission", "must be read, write or admin")),
        }
    }
}

/// The state of a `COLLABORATES_ON` relationship.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CollaborationStatus {
    /// Invited, not yet accepted: grants nothing.
    Pending,
    /// Accepted, or granted directly: grants its permission.
    Active,
    /// The invitee said no: grants nothing.
    Declined,
    /// Taken away: grants nothing; kept as a record of who had access.
    Revoked,
}

impl CollaborationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CollaborationStatus::Pending => "pending",
            CollaborationStatus::Active => "active",
            CollaborationStatus::Declined => "declined",
            CollaborationStatus::Revoked => "revoked",
        }
    }

    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        match text {
            "pending" => Ok(CollaborationStatus::Pending),
            "active" => Ok(CollaborationStatus::Active),
            "declined" => Ok(CollaborationStatus::Declined),
            "revoked" => Ok(CollaborationStatus::Revoked),
            _ => Err(ValidationError::new("status", "must be pending, active, declined or revoked")),
        }
    }
}

/// One notebook on the path from the addressed notebook (first) up to its root
/// (last), with the caller's own relationship to it. Serializable so that the read
/// cache can keep it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainLink {
    pub notebook_id: NotebookId,
    pub owner_id: UserId,
    pub visibility: Visibility,
    /// The caller's active `COLLABORATES_ON` permission on this notebook, if any.
    pub grant: Option<Permission>,
}

/// One reason a caller has access, as the explain endpoint reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AccessSource {
    /// `(user)-[:OWNS]->(notebook)`, on the notebook itself or an ancestor.
    Owner { notebook_id: NotebookId, inherited: bool },
    /// `(user)-[:COLLABORATES_ON {permission, status: active}]->(notebook)`.
    Collaborator { notebook_id: NotebookId, permission: Permission, inherited: bool },
    /// The notebook's own visibility is `public`.
    Public { notebook_id: NotebookId },
    /// A realm role with a global capability.
    Role { role: Role, permission: Permission },
}

impl AccessSource {
    pub fn permission(&self) -> Permission {
        match self {
            AccessSource::Owner { .. } => Permission::Admin,
            AccessSource::Collaborator { permission, .. } | AccessSource::Role { permission, .. } => *permission,
            AccessSource::Public { .. } => Permission::Read,
        }
    }

    /// Whether the access reaches the notebook's descendants too. Visibility does
    /// not: a public notebook's private child stays private.
    pub fn is_inheritable(&self) -> bool {
        !matches!(self, AccessSource::Public { .. })
    }
}

/// The effective access of a caller to one notebook.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Access {
    pub permission: Permission,
    /// Every reason found, the strongest first.
    pub sources: Vec<AccessSource>,
    /// Set when a role caps what the sources would grant (`aether-viewer` only reads).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capped_by: Option<Role>,
}

impl Access {
    pub fn allows(&self, needed: Permission) -> bool {
        self.permission >= needed
    }

    /// Whether the same access holds for every descendant.
    pub fn is_inheritable(&self) -> bool {
        self.sources.iter().any(|source| source.is_inheritable() && source.permission() >= Permission::Read)
    }
}

/// The global capability of a realm role over notebooks. `aether-admin` and
/// `notebook-admin` administer every notebook; `compliance-officer` reads every
/// notebook (to audit it); the others grant nothing by themselves.
pub fn role_permission(role: Role) -> Option<Permission> {
    match role {
        Role::Admin | Role::NotebookAdmin => Some(Permission::Admin),
        Role::ComplianceOfficer => Some(Permission::Read),
        Role::User | Role::Viewer => None,
    }
}

/// The effective permission of `user` (with `roles`) on `chain[0]`: the highest of
/// ownership or active grants on the notebook or any ancestor, its own public
/// visibility, and global roles. `None` means the notebook is invisible to the user.
pub fn effective_access(user: UserId, roles: &[Role], chain: &[ChainLink]) -> Option<Access> {
    let mut sources = Vec::new();
    for (depth, link) in chain.iter().enumerate() {
        let inherited = depth > 0;
        if link.owner_id == user {
            sources.push(AccessSource::Owner { notebook_id: link.notebook_id, inherited });
        }
        if let Some(permission) = link.grant {
            sources.push(AccessSource::Collaborator { notebook_id: link.notebook_id, permission, inherited });
        }
    }
    if let Some(target) = chain.first().filter(|target| target.visibility == Visibility::Public) {
        sources.push(AccessSource::Public { notebook_id: target.notebook_id });
    }
    for role in roles {
        if let Some(permission) = role_permission(*role) {
            sources.push(AccessSource::Role { role: *role, permission });
        }
    }
    // Strongest first; among equals, the closest relationship first (stable sort).
    sources.sort_by_key(|source| std::cmp::Reverse(source.permission()));
    let mut permission = sources.first()?.permission();
    let mut capped_by = None;
    // Roles without the write capability (`aether-viewer`, and no role granting write
    // beside it) cap whatever the graph grants at read: `Role::capabilities` decides.
    if !crate::capability::capabilities_of(roles).contains(&crate::capability::Capability::Write)
        && permission > Permission::Read
    {
        permission = Permission::Read;
        capped_by = roles.iter().copied().find(|role| *role == Role::Viewer).or_else(|| {
            roles.iter().copied().find(|role| !role.capabilities().contains(&crate::capability::Capability::Write))
        });
    }
    Some(Access { permission, sources, capped_by })
}

/// A `(user)-[:COLLABORATES_ON]->(notebook)` relationship.
#[derive(Debug, Clone, PartialEq)]
pub struct Collaboration {
    pub notebook_id: NotebookId,
    pub user_id: UserId,
    pub permission: Permission,
    pub status: CollaborationStatus,
    pub granted_by: UserId,
    pub granted_at: Timestamp,
    /// When the relationship last became active.
    pub accepted_at: Option<Timestamp>,
    pub updated_at: Timestamp,
}

/// The records of access changes, written with them (see `crate::activity`).
impl ChangeRecord {
    /// The record of a change to a `COLLABORATES_ON` relationship, now in `c`'s
    /// state. `answered` tells an invitee's answer from a grantor's action.
    pub fn for_collaboration(c: &Collaboration, answered: bool) -> Self {
        let (event_type, action) = match (c.status, answered) {
            (CollaborationStatus::Pending, _) => ("invited", "share"),
            (CollaborationStatus::Active, false) => ("permission_granted", "share"),
            (CollaborationStatus::Active, true) => ("invitation_accepted", "update"),
            (CollaborationStatus::Declined, _) => ("invitation_declined", "update"),
            (CollaborationStatus::Revoked, _) => ("permission_revoked", "revoke"),
        };
        let mut record = Self::new(c.notebook_id, event_type, action)
            .with("user_id", c.user_id.to_string())
            .with("permission", c.permission.as_str())
            .with("status", c.status.as_str());
        // Inviting and granting share the notebook: the design's `aether.notebooks.shared`.
        if matches!(event_type, "invited" | "permission_granted") {
            record.event = Some(NewEvent {
                topic: topics::NOTEBOOKS_SHARED,
                key: c.notebook_id.to_string(),
                payload: serde_json::json!({
                    "notebook_id": c.notebook_id.to_string(),
                    "user_id": c.user_id.to_string(),
                    "permission": c.permission.as_str(),
                    "status": c.status.as_str(),
                    "granted_by": c.granted_by.to_string(),
                    "granted_at": crate::time::to_storage(&c.granted_at),
                }),
            });
        }
        record
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(owner: UserId, visibility: Visibility, grant: Option<Permission>) -> ChainLink {
        ChainLink { notebook_id: NotebookId::new(), owner_id: owner, visibility, grant }
    }

    #[test]
    fn owners_administer_their_notebooks_and_descendants() {
        let alice = UserId::new();
        let chain = [link(UserId::new(), Visibility::Private, None), link(alice, Visibility::Private, None)];
        let access = effective_access(alice, &[Role::User], &chain).expect("access");
        assert_eq!(access.permission, Permission::Admin);
        assert!(matches!(access.sources[0], AccessSource::Owner { inherited: true, .. }));
    }

    #[test]
    fn the_highest_grant_along_the_chain_wins() {
        let bob = UserId::new();
        let owner = UserId::new();
        let chain = [
            link(owner, Visibility::Private, Some(Permission::Read)),
            link(owner, Visibility::Private, None),
            link(owner, Visibility::Private, Some(Permission::Write)),
        ];
        let access = effective_access(bob, &[Role::User], &chain).expect("access");
        assert_eq!(access.permission, Permission::Write);
        assert!(matches!(
            access.sources[0],
            AccessSource::Collaborator { permission: Permission::Write, inherited: true, .. }
        ));
        assert_eq!(access.sources.len(), 2);
    }

    #[test]
    fn strangers_see_only_public_notebooks_and_not_their_children() {
        let stranger = UserId::new();
        let owner = UserId::new();
        let public = [link(owner, Visibility::Public, None)];
        let access = effective_access(stranger, &[Role::User], &public).expect("public is readable");
        assert_eq!(access.permission, Permission::Read);
        assert!(!access.is_inheritable());
        let child_of_public = [link(owner, Visibility::Private, None), link(owner, Visibility::Public, None)];
        assert_eq!(effective_access(stranger, &[Role::User], &child_of_public), None);
        let shared = [link(owner, Visibility::Shared, None)];
        assert_eq!(effective_access(stranger, &[Role::User], &shared), None);
    }

    #[test]
    fn roles_grant_and_cap() {
        let user = UserId::new();
        let chain = [link(UserId::new(), Visibility::Private, None)];
        assert_eq!(effective_access(user, &[Role::Admin], &chain).map(|a| a.permission), Some(Permission::Admin));
        assert_eq!(
            effective_access(user, &[Role::ComplianceOfficer], &chain).map(|a| a.permission),
            Some(Permission::Read)
        );
        let granted = [link(UserId::new(), Visibility::Private, Some(Permission::Admin))];
        let viewer = effective_access(user, &[Role::Viewer], &granted).expect("access");
        assert_eq!(viewer.permission, Permission::Read);
        assert_eq!(viewer.capped_by, Some(Role::Viewer));
        // The cap follows the capability table: another role that writes lifts it…
        let both = effective_access(user, &[Role::User, Role::Viewer], &granted).expect("access");
        assert_eq!((both.permission, both.capped_by), (Permission::Admin, None));
        // …and a role that only reads caps even what the user owns.
        let owned = [link(user, Visibility::Private, None)];
        let auditor = effective_access(user, &[Role::ComplianceOfficer], &owned).expect("access");
        assert_eq!((auditor.permission, auditor.capped_by), (Permission::Read, Some(Role::ComplianceOfficer)));
    }
}
