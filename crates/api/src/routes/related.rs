//! `GET /search/related`: what is related to a document or a notebook, and why.

use aether_domain::ValidationError;
use aether_domain::id::{DocumentId, NotebookId};
use aether_domain::related::{RelatedItem, RelatedReason, RelatedSubject};
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::extract::{ApiQuery, AuthUser};
use crate::openapi as doc;
use crate::routes::notebooks::Problems;
use crate::routes::search::limit_param;
use crate::state::AppState;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RelatedQuery {
    /// What is related to this document. Give `document_id` or `notebook_id`, not both.
    #[param(value_type = Option<uuid::Uuid>)]
    pub document_id: Option<String>,
    /// What is related to this notebook. Give `document_id` or `notebook_id`, not both.
    #[param(value_type = Option<uuid::Uuid>)]
    pub notebook_id: Option<String>,
    /// At most this many, 1–100 (default 10).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
}

/// Why an item is related.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RelatedReasonResponse {
    /// `same_notebook` (a document in the same notebook), `nearby_notebook` (the
    /// notebook's parent, child or sibling), `shared_tags`, `shared_collaborators`
    /// (people with access to both notebooks, you not counted) or `similar_content`
    /// (alike in meaning, by the embedding model).
    pub kind: String,
    /// For `shared_tags`: the tags both carry.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub tags: Option<Vec<String>>,
    /// For `shared_collaborators`: how many.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, minimum = 1)]
    pub count: Option<u32>,
    /// For `similar_content`: the cosine similarity of meaning, up to 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub similarity: Option<f64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RelatedItemResponse {
    /// `document` or `notebook`.
    pub kind: String,
    pub id: uuid::Uuid,
    /// The document's file name or the notebook's name.
    pub title: String,
    /// The document's notebook, or the notebook itself.
    pub notebook_id: uuid::Uuid,
    pub updated_at: chrono::DateTime<chrono::Utc>,
    /// The sum of the reasons' weights: higher is more related.
    pub score: f64,
    /// Every reason, strongest first; never empty.
    pub reasons: Vec<RelatedReasonResponse>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RelatedList {
    pub items: Vec<RelatedItemResponse>,
}

impl From<RelatedReason> for RelatedReasonResponse {
    fn from(reason: RelatedReason) -> Self {
        let plain = |kind: &str| Self { kind: kind.to_owned(), tags: None, count: None, similarity: None };
        match reason {
            RelatedReason::SameNotebook => plain("same_notebook"),
            RelatedReason::NearbyNotebook => plain("nearby_notebook"),
            RelatedReason::SharedTags(tags) => Self {
                tags: Some(tags.into_iter().map(|tag| tag.as_str().to_owned()).collect()),
                ..plain("shared_tags")
            },
            RelatedReason::SharedCollaborators(count) => Self { count: Some(count), ..plain("shared_collaborators") },
            RelatedReason::SimilarContent(similarity) => {
                Self { similarity: Some(similarity), ..plain("similar_content") }
            }
        }
    }
}

impl From<RelatedItem> for RelatedItemResponse {
    fn from(item: RelatedItem) -> Self {
        let candidate = item.candidate;
        Self {
            kind: candidate.kind.as_str().to_owned(),
            id: candidate.id,
            title: candidate.title,
            notebook_id: candidate.notebook_id.as_uuid(),
            updated_at: candidate.updated_at,
            score: item.score,
            reasons: item.reasons.into_iter().map(Into::into).collect(),
        }
    }
}

/// Documents and notebooks you may read that are related to a document or a
/// notebook you may read, each with why: for a document, documents in its
/// notebook, with its tags, in notebooks shared with the same people, or alike in
/// meaning; for a notebook, its parent, children and siblings, notebooks with its
/// tags or shared with the same people, and documents elsewhere alike in meaning.
/// A subject you cannot read is not found.
#[utoipa::path(
    get,
    path = "/api/v1/search/related",
    tag = "search",
    security(("bearer" = [])),
    params(RelatedQuery),
    responses(
        (status = 200, body = RelatedList),
        doc::Authenticated,
        doc::BadRequest,
        doc::NotFound,
        doc::Unprocessable,
    )
)]
pub async fn search_related(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    ApiQuery(query): ApiQuery<RelatedQuery>,
) -> Result<Json<RelatedList>, ApiError> {
    let mut problems = Problems::default();
    let document = query.document_id.as_deref().and_then(|id| problems.check(DocumentId::parse(id)));
    let notebook = query.notebook_id.as_deref().and_then(|id| problems.check(NotebookId::parse(id)));
    let limit = limit_param(&mut problems, query.limit.as_deref(), 10);
    let subject = match (query.document_id.is_some(), query.notebook_id.is_some()) {
        (true, true) | (false, false) => {
            problems.check::<()>(Err(ValidationError::new(
                "document_id",
                "give exactly one of document_id and notebook_id",
            )));
            None
        }
        _ => document.map(RelatedSubject::Document).or(notebook.map(RelatedSubject::Notebook)),
    };
    problems.finish()?;
    let (Some(subject), Some(limit)) = (subject, limit) else { return Err(ApiError::internal()) };
    let related = state.search.related(&caller, subject, limit).await?;
    Ok(Json(RelatedList { items: related.into_iter().map(Into::into).collect() }))
}
