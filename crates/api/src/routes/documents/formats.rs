//! The formats the server reads, for clients to offer in a file picker and for users to look up.

use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::extract::AuthUser;
use crate::openapi as doc;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SupportedFormat {
    /// The name in a document's `metadata.format`.
    pub format: String,
    /// What users call it.
    pub name: String,
    /// Usual file name extensions, without the dot. The server decides a file's format from its
    /// bytes; an extension only tells text formats apart.
    pub extensions: Vec<String>,
    /// The content types such documents are given.
    pub content_types: Vec<String>,
    /// What becomes the document's searchable text.
    pub text: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SupportedFormatList {
    pub items: Vec<SupportedFormat>,
}

/// Every format whose text the server extracts. Other files are stored and downloadable, but
/// have no text.
#[utoipa::path(
    get,
    path = "/api/v1/documents/formats",
    tag = "documents",
    security(("bearer" = [])),
    responses((status = 200, body = SupportedFormatList), doc::Authenticated)
)]
pub async fn list_formats(AuthUser(_caller): AuthUser) -> Json<SupportedFormatList> {
    let owned = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect();
    Json(SupportedFormatList {
        items: aether_services::documents::SUPPORTED_FORMATS
            .iter()
            .map(|info| SupportedFormat {
                format: info.format.as_str().to_owned(),
                name: info.name.to_owned(),
                extensions: owned(info.extensions),
                content_types: owned(info.content_types),
                text: info.text.to_owned(),
            })
            .collect(),
    })
}
