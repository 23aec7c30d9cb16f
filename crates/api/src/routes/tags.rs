//! Tags and how many notebooks carry them.

use aether_domain::ValidationError;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::extract::{ApiQuery, AuthUser, PageQuery};
use crate::openapi as doc;
use crate::state::AppState;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TagUsage {
    pub name: String,
    /// Live notebooks in the scope carrying the tag.
    pub usage_count: u64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TagList {
    pub items: Vec<TagUsage>,
    /// Always `null`: the list is the top `limit` tags.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TagQuery {
    /// `owned` (default): your notebooks; `public`: public notebooks.
    #[param(inline, value_type = Option<crate::openapi::values::TagScope>)]
    pub scope: Option<String>,
    /// How many tags, 1–100 (default 20).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
}

/// Tags with how many notebooks carry them, most used first.
#[utoipa::path(
    get,
    path = "/api/v1/tags",
    tag = "notebooks",
    security(("bearer" = [])),
    params(TagQuery),
    responses(
        (status = 200, body = TagList),
        doc::Authenticated,
        doc::BadRequest,
        doc::Unprocessable,
    )
)]
pub async fn list_tags(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    ApiQuery(query): ApiQuery<TagQuery>,
) -> Result<Json<TagList>, ApiError> {
    let public = match query.scope.as_deref() {
        None | Some("owned") => false,
        Some("public") => true,
        Some(_) => return Err(ValidationError::new("scope", "must be owned or public").into()),
    };
    let limit = PageQuery { limit: query.limit, cursor: None }.parse()?.limit;
    let tags = state.notebooks.tags(&caller, public, limit.get()).await?;
    Ok(Json(TagList {
        items: tags
            .into_iter()
            .map(|(tag, usage_count)| TagUsage { name: tag.as_str().to_owned(), usage_count })
            .collect(),
        next_cursor: None,
    }))
}
