//! Notebook use cases, authorised through the graph (DESIGN.md §4): the caller's
//! effective permission comes from ownership or active grants on the notebook or
//! any ancestor, the notebook's own public visibility, and global roles
//! ([`aether_domain::access::effective_access`]). A notebook the caller may not read
//! is reported as not found; one it may read but not change, as forbidden.

use std::sync::Arc;

use aether_domain::StoreError;
use aether_domain::access::Collaboration;
use aether_domain::access::{self, Access, CollaborationStatus, Permission};
use aether_domain::activity::{ActivityEvent, AuditEntry};
use aether_domain::auth::Principal;
use aether_domain::capability::Capability;
use aether_domain::id::{NotebookId, UserId};
use aether_domain::notebook::{
    BulkAction, Description, NewNotebook, Notebook, NotebookName, NotebookPatch, NotebookQuery, Tag, Visibility,
};
use aether_domain::page::{Page, PageRequest};

use aether_domain::time;

use crate::access::Authorizer;
use crate::cache::CachedReads;
use crate::error::{ServiceError, ServiceResult};
use crate::ports::{NotebookPorts, ReadPorts};

/// A validated request to create a notebook.
#[derive(Debug, Clone)]
pub struct CreateNotebook {
    pub parent_id: Option<NotebookId>,
    pub name: NotebookName,
    pub description: Option<Description>,
    pub visibility: Visibility,
    pub tags: Vec<Tag>,
    pub compliance_settings: aether_domain::compliance::ComplianceSettings,
    pub is_template: bool,
    /// Start from a copy of this template (its fields and child notebooks).
    pub template_id: Option<NotebookId>,
}

/// A validated update: the field changes plus, optionally, a new parent
/// (`Some(None)` moves the notebook to the root).
#[derive(Debug, Clone, Default)]
pub struct UpdateNotebook {
    pub patch: NotebookPatch,
    pub parent_id: Option<Option<NotebookId>>,
    /// The version the client last saw (`If-Match`); the update fails if it moved on.
    pub expected_version: Option<u64>,
}

/// The effective access of a user to a notebook, for the explain endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessReport {
    pub user_id: UserId,
    pub notebook_id: NotebookId,
    pub access: Option<Access>,
}

#[derive(Debug, Clone)]
pub struct NotebookService {
    store: NotebookPorts,
    reads: CachedReads,
    authorizer: Authorizer,
    max_depth: u32,
}

fn rejected(code: &'static str, detail: &str) -> ServiceError {
    ServiceError::Rejected { code, detail: detail.to_owned() }
}

/// Turns a store's rule conflicts into stable, explained rejections.
fn structure_error(error: StoreError, max_depth: u32) -> ServiceError {
    match error {
        StoreError::Conflict(rule) if rule == "depth" => ServiceError::Rejected {
            code: "depth_exceeded",
            detail: format!("Notebooks may be nested at most {max_depth} levels deep."),
        },
        StoreError::Conflict(rule) if rule == "cycle" => {
            rejected("cycle", "A notebook cannot be moved into itself or one of its descendants.")
        }
        StoreError::Conflict(rule) if rule == "version" => ServiceError::PreconditionFailed,
        StoreError::Conflict(rule) if rule == "children" => {
            rejected("has_children", "The notebook has child notebooks; delete with cascade=true to delete them too.")
        }
        other => other.into(),
    }
}

impl NotebookService {
    pub fn new(store: NotebookPorts, max_depth: u32) -> Self {
        let reads = CachedReads::uncached(ReadPorts {
            users: Arc::clone(&store.users),
            notebooks: Arc::clone(&store.notebooks),
        });
        Self { authorizer: Authorizer::new(reads.clone()), reads, store, max_depth }
    }

    /// Reads permissions through `reads`, and invalidates it on every change of them.
    /// Every service that changes permissions must share the same `reads`.
    pub fn with_reads(mut self, reads: CachedReads) -> Self {
        self.authorizer = Authorizer::new(reads.clone());
        self.reads = reads;
        self
    }

    /// The caller's effective access; `NotFound` when it cannot read the notebook.
    pub async fn access(&self, caller: &Principal, id: NotebookId) -> ServiceResult<Access> {
        self.authorizer.access(caller, id).await
    }

    /// The one permission check (see [`Authorizer::require`]).
    async fn require(&self, caller: &Principal, id: NotebookId, needed: Permission) -> ServiceResult<Access> {
        self.authorizer.require(caller, id, needed).await
    }

    /// Decides access the way this service does, for the services of what notebooks hold.
    pub fn authorizer(&self) -> &Authorizer {
        &self.authorizer
    }

    pub async fn create(&self, caller: &Principal, request: CreateNotebook) -> ServiceResult<Notebook> {
        if !caller.can(Capability::Write) {
            return Err(ServiceError::Forbidden("your role allows reading only"));
        }
        if let Some(template) = request.template_id {
            let (source, _) = self.get(caller, template).await?;
            if !source.is_template {
                return Err(ServiceError::Validation(aether_domain::ValidationError::new(
                    "template_id",
                    "is not a template",
                )));
            }
            return self.duplicate(caller, template, Some(request.name), request.parent_id).await;
        }
        if let Some(parent) = request.parent_id {
            self.require(caller, parent, Permission::Write).await?;
        }
        let new = NewNotebook {
            id: NotebookId::new(),
            owner_id: caller.user_id,
            parent_id: request.parent_id,
            name: request.name,
            description: request.description,
            visibility: request.visibility,
            tags: request.tags,
            compliance_settings: request.compliance_settings,
            is_template: request.is_template,
            created_at: time::now(),
        };
        let notebook =
            self.store.notebooks.create_notebook(new, self.max_depth, &caller.change()).await.map_err(|error| {
                match error {
                    // The parent was checked above, so a missing node is the caller's own account.
                    StoreError::NotFound if request.parent_id.is_none() => {
                        ServiceError::Forbidden("account is not active")
                    }
                    other => structure_error(other, self.max_depth),
                }
            })?;
        tracing::info!(notebook_id = %notebook.id, owner_id = %caller.user_id, "created notebook");
        // A new notebook is found by searches from now on.
        self.reads.search_content_changed().await;
        Ok(notebook)
    }

    /// The notebook and the caller's access to it. With the caller's chain cached, the
    /// notebook is read through the cache too; without, both are read together.
    pub async fn get(&self, caller: &Principal, id: NotebookId) -> ServiceResult<(Notebook, Access)> {
        let (store, user) = (Arc::clone(&self.store.notebooks), caller.user_id);
        let (chain, notebook) = self
            .reads
            .access_chain_with(user, id, async move {
                let (notebook, chain) = store.notebook_with_access_chain(user, id).await?;
                Ok((chain, notebook))
            })
            .await?;
        let access = Authorizer::require_in(Authorizer::access_in(caller, &chain)?, Permission::Read)?;
        let notebook = match notebook {
            Some(notebook) => notebook,
            None => self.reads.notebook(id).await?,
        };
        Ok((notebook, access))
    }

    /// A listing scoped to the caller: every notebook in it is one the caller may
    /// read (owned, shared with it, or public), so no per-item check is needed.
    pub async fn list(&self, query: NotebookQuery) -> ServiceResult<Page<Notebook>> {
        Ok(self.store.notebooks.list_notebooks(query).await?)
    }

    /// Child notebooks the caller may read: all of them when its access to the parent
    /// is inherited by descendants, only the public ones when it reads the parent
    /// merely because the parent is public.
    pub async fn children(
        &self,
        caller: &Principal,
        id: NotebookId,
        page: PageRequest,
    ) -> ServiceResult<Page<Notebook>> {
        let access = self.require(caller, id, Permission::Read).await?;
        Ok(self.store.notebooks.list_children(id, !access.is_inheritable(), page).await?)
    }

    /// Changing content needs write access; changing visibility, compliance settings
    /// or the parent needs admin access (and write access to the new parent).
    pub async fn update(&self, caller: &Principal, id: NotebookId, update: UpdateNotebook) -> ServiceResult<Notebook> {
        let patch = update.patch;
        let visibility_changed = patch.visibility.is_some();
        let needs_admin = patch.visibility.is_some()
            || patch.compliance_settings.is_some()
            || patch.is_template.is_some()
            || update.parent_id.is_some();
        self.require(caller, id, if needs_admin { Permission::Admin } else { Permission::Write }).await?;
        if let Some(Some(parent)) = update.parent_id {
            self.require(caller, parent, Permission::Write).await?;
        }
        let change = caller.change();
        let mut notebook = None;
        let mut expected_version = update.expected_version;
        if let Some(parent) = update.parent_id {
            let moved = self
                .store
                .notebooks
                .move_notebook(id, parent, expected_version, self.max_depth, &change)
                .await
                .map_err(|error| structure_error(error, self.max_depth))?;
            // The notebook's chain, and those of its descendants, changed with it: say
            // so now, before the field changes below can fail.
            self.reads.access_changed().await;
            self.reads.notebooks_changed().await;
            // The field changes below apply on top of the move, not of an older version.
            expected_version = expected_version.map(|_| moved.version);
            notebook = Some(moved);
        }
        if !patch.is_empty() {
            notebook = Some(
                self.store
                    .notebooks
                    .update_notebook(id, patch, expected_version, &change)
                    .await
                    .map_err(|error| structure_error(error, self.max_depth))?,
            );
            self.reads.notebooks_changed().await;
        }
        if visibility_changed {
            self.reads.access_changed().await;
        }
        tracing::info!(notebook_id = %id, "updated notebook");
        match notebook {
            Some(notebook) => Ok(notebook),
            None => Ok(self.store.notebooks.get_notebook(id).await?),
        }
    }

    pub async fn delete(&self, caller: &Principal, id: NotebookId, cascade: bool) -> ServiceResult<()> {
        self.require(caller, id, Permission::Admin).await?;
        self.store
            .notebooks
            .soft_delete_notebook(id, cascade, &caller.change())
            .await
            .map_err(|error| structure_error(error, self.max_depth))?;
        self.reads.access_changed().await;
        self.reads.notebooks_changed().await;
        tracing::info!(notebook_id = %id, cascade, "deleted notebook");
        Ok(())
    }

    /// Deep-copies a notebook the caller can read, with its live descendants, into a
    /// new tree the caller owns: under `parent` (which it must be able to write) or
    /// at the root. The copy is named `name`, or "<name> (copy)".
    pub async fn duplicate(
        &self,
        caller: &Principal,
        id: NotebookId,
        name: Option<NotebookName>,
        parent: Option<NotebookId>,
    ) -> ServiceResult<Notebook> {
        if !caller.can(Capability::Write) {
            return Err(ServiceError::Forbidden("your role allows reading only"));
        }
        let (source, _) = self.get(caller, id).await?;
        if let Some(parent) = parent {
            self.require(caller, parent, Permission::Write).await?;
        }
        let name = match name {
            Some(name) => name,
            None => {
                let base: String = source.name.as_str().chars().take(NotebookName::MAX_CHARS - 7).collect();
                NotebookName::parse(&format!("{base} (copy)"))?
            }
        };
        let copy = self
            .store
            .notebooks
            .duplicate_notebook(id, caller.user_id, parent, name, self.max_depth, &caller.change())
            .await
            .map_err(|error| structure_error(error, self.max_depth))?;
        tracing::info!(source = %id, copy = %copy.id, "duplicated notebook");
        self.reads.search_content_changed().await;
        Ok(copy)
    }

    /// Applies one action to up to 100 notebooks, all or nothing. Each notebook is
    /// checked first (admin access to move or delete, write access otherwise; write
    /// access to a new parent), so that a refusal names no notebook the caller may
    /// not see and changes nothing.
    pub async fn bulk(
        &self,
        caller: &Principal,
        ids: &[NotebookId],
        action: &BulkAction,
    ) -> ServiceResult<Vec<Notebook>> {
        let needed = match action {
            BulkAction::Move { .. } | BulkAction::Delete { .. } => Permission::Admin,
            _ => Permission::Write,
        };
        for &id in ids {
            self.require(caller, id, needed).await?;
        }
        if let BulkAction::Move { parent: Some(parent) } = action {
            self.require(caller, *parent, Permission::Write).await?;
        }
        let updated =
            self.store.notebooks.bulk_update(ids, action, self.max_depth, &caller.change()).await.map_err(|error| {
                match error {
                    StoreError::Conflict(rule) if rule == "tags" => {
                        rejected("too_many_tags", "A notebook would carry more than 50 tags.")
                    }
                    other => structure_error(other, self.max_depth),
                }
            })?;
        if matches!(action, BulkAction::Move { .. } | BulkAction::Delete { .. }) {
            self.reads.access_changed().await;
        }
        self.reads.notebooks_changed().await;
        tracing::info!(count = ids.len(), ?action, "bulk notebook update");
        Ok(updated)
    }

    /// Tag usage among the caller's own notebooks (`public == false`) or among public
    /// notebooks: never counts that would reveal others' private notebooks.
    pub async fn tags(&self, caller: &Principal, public: bool, limit: u32) -> ServiceResult<Vec<(Tag, u64)>> {
        let owner = (!public).then_some(caller.user_id);
        Ok(self.store.notebooks.tag_usage(owner, limit).await?)
    }

    /// Restores a deleted notebook. Allowed to its owner, to global administrators,
    /// and to admins of its (live) parent; to anyone else it does not exist.
    pub async fn restore(&self, caller: &Principal, id: NotebookId) -> ServiceResult<Notebook> {
        let deleted = self.store.notebooks.get_deleted_notebook(id).await?;
        let global_admin = caller.roles.iter().any(|role| access::role_permission(*role) == Some(Permission::Admin));
        let parent_admin = match deleted.parent_id {
            Some(parent) => self.access(caller, parent).await.is_ok_and(|access| access.allows(Permission::Admin)),
            None => false,
        };
        if deleted.owner_id != caller.user_id && !global_admin && !parent_admin {
            return Err(ServiceError::NotFound);
        }
        let notebook =
            self.store.notebooks.restore_notebook(id, &caller.change()).await.map_err(|error| match error {
                StoreError::Conflict(rule) if rule == "parent" => {
                    rejected("parent_deleted", "The parent notebook is deleted; restore it first or move this one.")
                }
                other => other.into(),
            })?;
        self.reads.access_changed().await;
        self.reads.notebooks_changed().await;
        tracing::info!(notebook_id = %id, "restored notebook");
        Ok(notebook)
    }

    /// Invites `user` to collaborate with `permission`; the grant takes effect when
    /// the invitee accepts. Re-inviting replaces a pending or declined invitation.
    pub async fn share(
        &self,
        caller: &Principal,
        id: NotebookId,
        user: UserId,
        permission: Permission,
    ) -> ServiceResult<Collaboration> {
        self.require(caller, id, Permission::Admin).await?;
        let notebook = self.store.notebooks.get_notebook(id).await?;
        if user == notebook.owner_id {
            return Err(rejected("already_owner", "The user owns this notebook."));
        }
        let now = time::now();
        let invitation = Collaboration {
            notebook_id: id,
            user_id: user,
            permission,
            status: CollaborationStatus::Pending,
            granted_by: caller.user_id,
            granted_at: now,
            accepted_at: None,
            updated_at: now,
        };
        let stored = self.store.collaborations.put_collaboration(invitation, &caller.change()).await.map_err(
            |error| match error {
                StoreError::NotFound => {
                    ServiceError::Validation(aether_domain::ValidationError::new("user_id", "no such user"))
                }
                other => other.into(),
            },
        )?;
        // An invitation grants nothing yet, but it replaces an earlier relationship,
        // which may have been an active grant.
        self.reads.access_changed().await;
        tracing::info!(notebook_id = %id, invitee = %user, permission = permission.as_str(), "shared notebook");
        Ok(stored)
    }

    /// Grants, changes (`Some`) or revokes (`None`) a user's permission directly,
    /// without an invitation.
    pub async fn set_permission(
        &self,
        caller: &Principal,
        id: NotebookId,
        user: UserId,
        permission: Option<Permission>,
    ) -> ServiceResult<Option<Collaboration>> {
        self.require(caller, id, Permission::Admin).await?;
        let notebook = self.store.notebooks.get_notebook(id).await?;
        if user == notebook.owner_id {
            return Err(rejected("already_owner", "The owner's access cannot be changed."));
        }
        let Some(permission) = permission else {
            self.store.collaborations.revoke_collaboration(id, user, &caller.change()).await?;
            self.reads.access_changed().await;
            tracing::info!(notebook_id = %id, user = %user, "revoked permission");
            return Ok(None);
        };
        let now = time::now();
        let grant = Collaboration {
            notebook_id: id,
            user_id: user,
            permission,
            status: CollaborationStatus::Active,
            granted_by: caller.user_id,
            granted_at: now,
            accepted_at: Some(now),
            updated_at: now,
        };
        let stored =
            self.store.collaborations.put_collaboration(grant, &caller.change()).await.map_err(
                |error| match error {
                    StoreError::NotFound => {
                        ServiceError::Validation(aether_domain::ValidationError::new("user_id", "no such user"))
                    }
                    other => other.into(),
                },
            )?;
        self.reads.access_changed().await;
        tracing::info!(notebook_id = %id, user = %user, permission = permission.as_str(), "set permission");
        Ok(Some(stored))
    }

    /// Everyone invited to or granted access on the notebook, by user id. Needs admin access.
    pub async fn collaborators(
        &self,
        caller: &Principal,
        id: NotebookId,
        page: PageRequest,
    ) -> ServiceResult<Page<Collaboration>> {
        self.require(caller, id, Permission::Admin).await?;
        Ok(self.store.collaborations.list_collaborations(id, page).await?)
    }

    /// The caller's own invitations in `status`, newest notebook first.
    pub async fn invitations(
        &self,
        caller: &Principal,
        status: CollaborationStatus,
        page: PageRequest,
    ) -> ServiceResult<Page<Collaboration>> {
        Ok(self.store.collaborations.list_user_collaborations(caller.user_id, status, page).await?)
    }

    /// Accepts or declines the caller's own invitation. `NotFound` when there is none.
    pub async fn answer_invitation(
        &self,
        caller: &Principal,
        id: NotebookId,
        accept: bool,
    ) -> ServiceResult<Collaboration> {
        let status = if accept { CollaborationStatus::Active } else { CollaborationStatus::Declined };
        let invitation = self.store.collaborations.find_collaboration(id, caller.user_id).await?;
        if invitation.is_none_or(|invitation| invitation.status != CollaborationStatus::Pending) {
            return Err(ServiceError::NotFound);
        }
        let answered =
            self.store.collaborations.set_collaboration_status(id, caller.user_id, status, &caller.change()).await?;
        self.reads.access_changed().await;
        Ok(answered)
    }

    /// What happened to a notebook, newest first. Needs read access.
    pub async fn activity(
        &self,
        caller: &Principal,
        id: NotebookId,
        page: PageRequest,
    ) -> ServiceResult<Page<ActivityEvent>> {
        self.require(caller, id, Permission::Read).await?;
        Ok(self.store.activity.list_activity(id, page).await?)
    }

    /// The audit log, newest first, optionally about one resource. Readable by
    /// `aether-admin` and `compliance-officer` only.
    pub async fn audit(
        &self,
        caller: &Principal,
        resource_id: Option<String>,
        page: PageRequest,
    ) -> ServiceResult<Page<AuditEntry>> {
        if !caller.can(Capability::AdministerUsers) && !caller.can(Capability::ReadAudit) {
            return Err(ServiceError::Forbidden("the audit log is for administrators and compliance officers"));
        }
        Ok(self.store.activity.list_audit(resource_id, page).await?)
    }

    /// Why `user` (the caller when `None`) has access to the notebook. Asking about
    /// someone else needs admin access to the notebook.
    pub async fn explain_access(
        &self,
        caller: &Principal,
        id: NotebookId,
        user: Option<UserId>,
    ) -> ServiceResult<AccessReport> {
        let target = user.unwrap_or(caller.user_id);
        if target == caller.user_id {
            let access = self.access(caller, id).await?;
            return Ok(AccessReport { user_id: target, notebook_id: id, access: Some(access) });
        }
        self.require(caller, id, Permission::Admin).await?;
        let subject = self.store.users.get_user(target).await.map_err(|error| match error {
            StoreError::NotFound => {
                ServiceError::Validation(aether_domain::ValidationError::new("user_id", "no such user"))
            }
            other => other.into(),
        })?;
        let chain = self.reads.access_chain(target, id).await?;
        let access = access::effective_access(target, &subject.roles, &chain);
        Ok(AccessReport { user_id: target, notebook_id: id, access })
    }
}
