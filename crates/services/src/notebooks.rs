//! Notebook use cases. For now a notebook is visible only to its owner: another
//! user's notebook is reported as not found, so ids reveal nothing. Collaboration
//! and inheritance through the hierarchy come with the notebooks issue.

use std::sync::Arc;

use aether_domain::auth::Principal;
use aether_domain::id::NotebookId;
use aether_domain::notebook::{Description, NewNotebook, Notebook, NotebookName, NotebookPatch, Tag, Visibility};
use aether_domain::page::{Page, PageRequest};
use aether_domain::store::Store;
use aether_domain::time;

use crate::error::{ServiceError, ServiceResult};

/// A validated request to create a notebook.
#[derive(Debug, Clone)]
pub struct CreateNotebook {
    pub name: NotebookName,
    pub description: Option<Description>,
    pub visibility: Visibility,
    pub tags: Vec<Tag>,
    pub compliance_settings: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone)]
pub struct NotebookService {
    store: Arc<dyn Store>,
}

impl NotebookService {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    pub async fn create(&self, caller: &Principal, request: CreateNotebook) -> ServiceResult<Notebook> {
        let notebook = self
            .store
            .create_notebook(NewNotebook {
                id: NotebookId::new(),
                owner_id: caller.user_id,
                name: request.name,
                description: request.description,
                visibility: request.visibility,
                tags: request.tags,
                compliance_settings: request.compliance_settings,
                created_at: time::now(),
            })
            .await
            .map_err(|error| match error {
                // The caller's own account vanished (deleted while the token lives).
                aether_domain::StoreError::NotFound => ServiceError::Forbidden("account is not active"),
                other => other.into(),
            })?;
        tracing::info!(notebook_id = %notebook.id, owner_id = %caller.user_id, "created notebook");
        Ok(notebook)
    }

    pub async fn get(&self, caller: &Principal, id: NotebookId) -> ServiceResult<Notebook> {
        let notebook = self.store.get_notebook(id).await?;
        if notebook.owner_id != caller.user_id {
            return Err(ServiceError::NotFound);
        }
        Ok(notebook)
    }

    pub async fn list_owned(&self, caller: &Principal, page: PageRequest) -> ServiceResult<Page<Notebook>> {
        Ok(self.store.list_owned_notebooks(caller.user_id, page).await?)
    }

    pub async fn update(&self, caller: &Principal, id: NotebookId, patch: NotebookPatch) -> ServiceResult<Notebook> {
        self.get(caller, id).await?;
        if patch.is_empty() {
            return self.get(caller, id).await;
        }
        let notebook = self.store.update_notebook(id, patch, time::now()).await?;
        tracing::info!(notebook_id = %id, "updated notebook");
        Ok(notebook)
    }

    pub async fn delete(&self, caller: &Principal, id: NotebookId) -> ServiceResult<()> {
        self.get(caller, id).await?;
        self.store.soft_delete_notebook(id, time::now()).await?;
        tracing::info!(notebook_id = %id, "deleted notebook");
        Ok(())
    }
}
