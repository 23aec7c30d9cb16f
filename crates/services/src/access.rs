//! The one authorization decision of the services: a caller's effective access to a
//! notebook, from the ancestor chain the store reports
//! ([`aether_domain::store::NotebookStore::access_chain`], read through
//! [`CachedReads`]) and the domain's rule
//! ([`aether_domain::access::effective_access`]). Notebooks and documents both ask
//! here, so the rule is written once: a notebook the caller may not read is
//! `NotFound` (its existence stays hidden), one it may read but not change is
//! `Forbidden`.

use aether_domain::access::{self, Access, ChainLink, Permission};
use aether_domain::auth::Principal;
use aether_domain::capability::Capability;
use aether_domain::id::NotebookId;

use crate::cache::CachedReads;
use crate::error::{ServiceError, ServiceResult};

/// Decides what a caller may do with a notebook (and so with its documents and jobs).
#[derive(Debug, Clone)]
pub struct Authorizer {
    reads: CachedReads,
}

impl Authorizer {
    /// Reads permission chains through `reads`; every service that changes
    /// permissions must invalidate the same `reads`.
    pub fn new(reads: CachedReads) -> Self {
        Self { reads }
    }

    /// The cached reads behind the chains, for the invalidations of the services
    /// sharing this authorizer.
    pub fn reads(&self) -> &CachedReads {
        &self.reads
    }

    /// The caller's effective access; `NotFound` when it cannot read the notebook.
    /// A credential without the write capability (a `read` API key) reads only.
    pub async fn access(&self, caller: &Principal, id: NotebookId) -> ServiceResult<Access> {
        let chain = self.reads.access_chain(caller.user_id, id).await?;
        Self::access_in(caller, &chain)
    }

    /// The caller's effective access given its chain to the notebook.
    pub fn access_in(caller: &Principal, chain: &[ChainLink]) -> ServiceResult<Access> {
        let mut access =
            access::effective_access(caller.user_id, &caller.roles, chain).ok_or(ServiceError::NotFound)?;
        if !caller.can(Capability::Write) && access.permission > Permission::Read {
            access.permission = Permission::Read;
        }
        Ok(access)
    }

    /// Requires `needed` on the notebook: `NotFound` when the caller cannot even read
    /// it (so its existence stays hidden), `Forbidden` when it can read but not this.
    pub async fn require(&self, caller: &Principal, id: NotebookId, needed: Permission) -> ServiceResult<Access> {
        let access = self.access(caller, id).await?;
        Self::require_in(access, needed)
    }

    /// [`Self::require`] on access already decided.
    pub fn require_in(access: Access, needed: Permission) -> ServiceResult<Access> {
        if !access.allows(needed) {
            return Err(ServiceError::Forbidden(match needed {
                Permission::Read => "read access is required",
                Permission::Write => "write access is required",
                Permission::Admin => "admin access is required",
            }));
        }
        Ok(access)
    }
}
