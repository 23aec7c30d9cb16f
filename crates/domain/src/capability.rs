//! Global capabilities and the one table mapping realm roles to them. Resource access
//! (who may read or change *this* notebook) comes from the graph (`access.rs`); a
//! capability only caps it.

use serde::{Deserialize, Serialize};

use crate::StoreError;
use crate::user::Role;

/// A global capability. Realm roles grant capabilities; resource access (who may read
/// or change *this* notebook) still comes from graph relationships, and a capability
/// only caps it: a caller without [`Capability::Write`] writes nothing, whatever the
/// notebook says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// Read what the graph lets the caller read.
    Read,
    /// Create and change content: notebooks, sharing, documents, API keys with write scope.
    Write,
    /// Administer users: list them, change their roles, read the audit log.
    AdministerUsers,
    /// Read the audit log.
    ReadAudit,
    /// Administer every notebook regardless of ownership.
    AdministerNotebooks,
    /// Manage compliance settings and read compliance findings.
    ManageCompliance,
}

impl Capability {
    pub const ALL: [Capability; 6] = [
        Capability::Read,
        Capability::Write,
        Capability::AdministerUsers,
        Capability::ReadAudit,
        Capability::AdministerNotebooks,
        Capability::ManageCompliance,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Read => "read",
            Capability::Write => "write",
            Capability::AdministerUsers => "administer_users",
            Capability::ReadAudit => "read_audit",
            Capability::AdministerNotebooks => "administer_notebooks",
            Capability::ManageCompliance => "manage_compliance",
        }
    }
}

impl Role {
    /// The one place where realm roles become capabilities:
    ///
    /// | role                 | capabilities                                          |
    /// |----------------------|-------------------------------------------------------|
    /// | `aether-admin`       | all                                                   |
    /// | `aether-user`        | read, write                                           |
    /// | `aether-viewer`      | read                                                  |
    /// | `notebook-admin`     | read, write, administer notebooks                     |
    /// | `compliance-officer` | read, read audit, manage compliance                   |
    pub fn capabilities(self) -> &'static [Capability] {
        use Capability::*;
        match self {
            Role::Admin => &Capability::ALL,
            Role::User => &[Read, Write],
            Role::Viewer => &[Read],
            Role::NotebookAdmin => &[Read, Write, AdministerNotebooks],
            Role::ComplianceOfficer => &[Read, ReadAudit, ManageCompliance],
        }
    }
}

/// The conflict a role change answers when it would leave no active administrator.
pub const LAST_ADMINISTRATOR: &str = "last_administrator";

/// A role change must not take `aether-admin` from the last active administrator: without
/// one, nobody could grant the role again (short of the command line). Stores call this
/// inside the role change's transaction with the user's roles before and after it and the
/// number of active administrators after it, and roll back on `Err`.
pub fn check_administrators_remain(before: &[Role], after: &[Role], remaining: u64) -> Result<(), StoreError> {
    let demoted = before.contains(&Role::Admin) && !after.contains(&Role::Admin);
    if demoted && remaining == 0 { Err(StoreError::Conflict(LAST_ADMINISTRATOR.into())) } else { Ok(()) }
}

/// The capabilities of a set of roles, sorted and without repeats.
pub fn capabilities_of(roles: &[Role]) -> Vec<Capability> {
    let mut capabilities: Vec<Capability> = roles.iter().flat_map(|role| role.capabilities()).copied().collect();
    capabilities.sort();
    capabilities.dedup();
    capabilities
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viewers_cannot_write_and_admins_can_do_everything() {
        assert_eq!(capabilities_of(&[Role::Viewer]), vec![Capability::Read]);
        assert!(!capabilities_of(&[Role::Viewer, Role::ComplianceOfficer]).contains(&Capability::Write));
        assert_eq!(capabilities_of(&[Role::Admin]), Capability::ALL.to_vec());
        assert_eq!(capabilities_of(&[Role::User, Role::Viewer]), vec![Capability::Read, Capability::Write]);
    }

    #[test]
    fn only_taking_the_role_from_the_last_administrator_is_refused() {
        use Role::{Admin, User, Viewer};
        assert!(check_administrators_remain(&[Admin, User], &[User], 0).is_err());
        assert!(check_administrators_remain(&[Admin, User], &[User], 1).is_ok());
        assert!(check_administrators_remain(&[Admin], &[Admin, Viewer], 0).is_ok(), "still an administrator");
        assert!(check_administrators_remain(&[User], &[Viewer], 0).is_ok(), "no administrator to lose");
    }
}
