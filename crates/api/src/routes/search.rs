//! Search (issue 15): documents and notebooks the caller may read, BM25 ranked, with
//! highlighted snippets, filters, facets and cursors.

use aether_domain::ValidationError;
use aether_domain::document::ProcessingStatus;
use aether_domain::id::UserId;
use aether_domain::notebook::{NotebookStatus, Tag};
use aether_domain::page::Limit;
use aether_domain::search::{
    ContentTypeFilter, DocumentFacets, DocumentSearch, FacetCount, MAX_FILTER_TAGS, NotebookSearch, RankCursor,
    SearchFilters, SearchText, TimeRange,
};
use aether_domain::semantic::{OffsetCursor, SearchMode};
use aether_domain::snippet::{Highlight, Snippet};
use aether_services::search::{DocumentResults, FoundDocument, FoundNotebook, NotebookResults};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery, AuthUser, PageQuery, encode_cursor, present};
use crate::openapi as doc;
use crate::routes::notebooks::{NotebookResponse, Problems};
use crate::routes::users::PublicUserResponse;
use crate::state::AppState;

/// Declares a search's query parameters: those every search takes, and `$extra`.
macro_rules! search_params {
    ($(#[$doc:meta])* $name:ident { $($extra:tt)* }) => {
        $(#[$doc])*
        #[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
        #[into_params(parameter_in = Query)]
        pub struct $name {
            /// Words (all must match), `"quoted phrases"` and `prefixes*`; a word of four
            /// or more letters also finds its near misses. Text without a word finds
            /// nothing; words beyond the twelfth are ignored. 1–256 characters.
            #[param(required = true, min_length = 1, max_length = 256)]
            pub q: Option<String>,
            /// Only within this notebook and its descendants.
            #[param(value_type = Option<uuid::Uuid>)]
            pub notebook_id: Option<String>,
            /// Comma-separated tags, all required (a tag no notebook or document can carry
            /// finds nothing).
            pub tags: Option<String>,
            /// Notebooks owned by, or documents uploaded by, this user.
            #[param(value_type = Option<uuid::Uuid>)]
            pub owner_id: Option<String>,
            /// Created at or after (RFC 3339).
            #[param(value_type = Option<chrono::DateTime<chrono::Utc>>)]
            pub created_after: Option<String>,
            /// Created before (RFC 3339).
            #[param(value_type = Option<chrono::DateTime<chrono::Utc>>)]
            pub created_before: Option<String>,
            /// Updated at or after (RFC 3339).
            #[param(value_type = Option<chrono::DateTime<chrono::Utc>>)]
            pub updated_after: Option<String>,
            /// Updated before (RFC 3339).
            #[param(value_type = Option<chrono::DateTime<chrono::Utc>>)]
            pub updated_before: Option<String>,
            /// Results per page, 1–100 (default 20).
            #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
            pub limit: Option<String>,
            $($extra)*
        }

        impl $name {
            fn shared(&self) -> Shared<'_> {
                Shared {
                    q: self.q.as_deref(),
                    notebook_id: self.notebook_id.as_deref(),
                    tags: self.tags.as_deref(),
                    owner_id: self.owner_id.as_deref(),
                    created_after: self.created_after.as_deref(),
                    created_before: self.created_before.as_deref(),
                    updated_after: self.updated_after.as_deref(),
                    updated_before: self.updated_before.as_deref(),
                    limit: self.limit.as_deref(),
                    cursor: self.cursor.as_deref(),
                }
            }
        }
    };
}

search_params! {
    /// What a document search takes.
    DocumentSearchQuery {
        /// A media type such as `application/pdf`.
        #[param(max_length = 127, pattern = "^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+$")]
        pub content_type: Option<String>,
        #[param(inline, value_type = Option<crate::openapi::values::ProcessingStatus>)]
        pub status: Option<String>,
        /// `hybrid` (default: words and meaning fused), `text` (BM25 over the words)
        /// or `semantic` (meaning). Without an embedding model, `hybrid` ranks by words
        /// and `semantic` answers 503 `semantic_unavailable`.
        #[param(inline, value_type = Option<crate::openapi::values::SearchMode>)]
        pub mode: Option<String>,
        /// The `next_cursor` of a previous page of the same search (a cursor of
        /// another ranking gives an empty page).
        #[param(pattern = "^([0-9a-f]{48}|o([1-9]|[1-9][0-9]|[1-4][0-9]{2}))$")]
        pub cursor: Option<String>,
    }
}

search_params! {
    /// What a notebook search takes.
    NotebookSearchQuery {
        #[param(inline, value_type = Option<crate::openapi::values::NotebookStatus>)]
        pub status: Option<String>,
        /// The `next_cursor` of a previous page of the same search.
        #[param(pattern = "^[0-9a-f]{48}$")]
        pub cursor: Option<String>,
    }
}

/// The parameters every search shares, as sent.
struct Shared<'a> {
    q: Option<&'a str>,
    notebook_id: Option<&'a str>,
    tags: Option<&'a str>,
    owner_id: Option<&'a str>,
    created_after: Option<&'a str>,
    created_before: Option<&'a str>,
    updated_after: Option<&'a str>,
    updated_before: Option<&'a str>,
    limit: Option<&'a str>,
    cursor: Option<&'a str>,
}

/// The parts every search shares, parsed.
struct Common {
    text: SearchText,
    filters: SearchFilters,
    limit: Limit,
    after: Option<RankCursor>,
    offset: Option<OffsetCursor>,
}

/// The query text: required, and not empty (a text without a word is valid and
/// finds nothing).
fn query_text(problems: &mut Problems, q: Option<&str>) -> Option<SearchText> {
    match q {
        None => problems.check(Err(ValidationError::new("q", "is required"))),
        Some("") => problems.check(Err(ValidationError::new("q", "must not be empty"))),
        Some(q) => problems.check(SearchText::parse(q)),
    }
}

/// The `limit` parameter: 1–100, `default` when absent.
pub(crate) fn limit_param(problems: &mut Problems, text: Option<&str>, default: u32) -> Option<Limit> {
    match text {
        None => Some(Limit::parse(i64::from(default)).unwrap_or_default()),
        Some(text) => problems.check(
            text.parse::<i64>().map_err(|_| ValidationError::new("limit", "must be an integer")).and_then(Limit::parse),
        ),
    }
}

fn time_bound(
    problems: &mut Problems,
    field: &'static str,
    text: Option<&str>,
) -> Option<aether_domain::time::Timestamp> {
    text.and_then(|text| {
        problems.check(
            aether_domain::time::parse(text).ok_or_else(|| ValidationError::new(field, "must be an RFC 3339 time")),
        )
    })
}

impl Shared<'_> {
    fn parse(&self, problems: &mut Problems) -> Option<Common> {
        let text = query_text(problems, self.q);
        let within = self.notebook_id.and_then(|id| {
            problems.check(
                aether_domain::id::NotebookId::parse(id)
                    .map_err(|_| ValidationError::new("notebook_id", "must be a UUID")),
            )
        });
        // A tag nothing can carry (too long, control characters) matches nothing,
        // and so does asking for more tags than anything carries.
        let mut matches_nothing = false;
        let mut tags: Vec<Tag> = Vec::new();
        for tag in self.tags.unwrap_or_default().split(',').filter(|tag| !tag.trim().is_empty()) {
            match Tag::parse(tag) {
                Ok(tag) if !tags.contains(&tag) => tags.push(tag),
                Ok(_) => {}
                Err(_) => matches_nothing = true,
            }
        }
        if tags.len() > MAX_FILTER_TAGS {
            matches_nothing = true;
            tags.truncate(MAX_FILTER_TAGS);
        }
        let owner = self.owner_id.and_then(|id| {
            problems.check(UserId::parse(id).map_err(|_| ValidationError::new("owner_id", "must be a UUID")))
        });
        let created_from = time_bound(problems, "created_after", self.created_after);
        let created_to = time_bound(problems, "created_before", self.created_before);
        let updated_from = time_bound(problems, "updated_after", self.updated_after);
        let updated_to = time_bound(problems, "updated_before", self.updated_before);
        let limit = limit_param(problems, self.limit, Limit::DEFAULT.get());
        let (after, offset) = match self.cursor {
            None => (None, None),
            Some(cursor) if cursor.starts_with('o') => (None, problems.check(OffsetCursor::parse(cursor))),
            Some(cursor) => (problems.check(RankCursor::parse(cursor)), None),
        };
        let filters = SearchFilters {
            within,
            tags,
            owner,
            created: TimeRange::new(created_from, created_to),
            updated: TimeRange::new(updated_from, updated_to),
            matches_nothing,
        };
        Some(Common { text: text?, filters, limit: limit?, after, offset })
    }
}

impl DocumentSearchQuery {
    fn parse(self) -> Result<(DocumentSearch, SearchMode, Option<OffsetCursor>), ApiError> {
        let mut problems = Problems::default();
        let common = self.shared().parse(&mut problems);
        let mode = match self.mode.as_deref() {
            None => Some(SearchMode::Hybrid),
            Some(mode) => problems.check(SearchMode::parse(mode)),
        };
        let content_type = self.content_type.as_deref().and_then(|c| problems.check(ContentTypeFilter::parse(c)));
        let status = self.status.as_deref().and_then(|status| {
            problems.check(
                ProcessingStatus::parse(status)
                    .map_err(|_| ValidationError::new("status", "must be pending, processing, completed or failed")),
            )
        });
        problems.finish()?;
        let (Some(common), Some(mode)) = (common, mode) else { return Err(ApiError::internal()) };
        let search = DocumentSearch {
            text: common.text,
            filters: common.filters,
            content_type,
            status,
            limit: common.limit,
            after: common.after,
        };
        Ok((search, mode, common.offset))
    }
}

impl NotebookSearchQuery {
    fn parse(self) -> Result<NotebookSearch, ApiError> {
        let mut problems = Problems::default();
        let common = self.shared().parse(&mut problems);
        let status = self.status.as_deref().and_then(|status| {
            problems.check(match NotebookStatus::parse(status) {
                Ok(NotebookStatus::Deleted) | Err(_) => {
                    Err(ValidationError::new("status", "must be active or archived"))
                }
                Ok(status) => Ok(status),
            })
        });
        problems.finish()?;
        let Some(common) = common else { return Err(ApiError::internal()) };
        Ok(NotebookSearch {
            text: common.text,
            filters: common.filters,
            status,
            limit: common.limit,
            after: common.after,
        })
    }
}

/// A range of the snippet to highlight, in characters (Unicode scalar values).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HighlightResponse {
    pub start: u32,
    pub length: u32,
}

/// Plain text around the match, and what in it matched. Never markup.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SnippetResponse {
    pub text: String,
    pub highlights: Vec<HighlightResponse>,
}

impl From<Snippet> for SnippetResponse {
    fn from(snippet: Snippet) -> Self {
        Self {
            text: snippet.text,
            highlights: snippet
                .highlights
                .into_iter()
                .map(|Highlight { start, length }| HighlightResponse { start, length })
                .collect(),
        }
    }
}

/// Where in the document the best match is.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MatchResponse {
    /// The chunk: 0 is the heading (file name, description, tags), then 1, 2, … in
    /// reading order.
    pub chunk: u32,
    /// The page the chunk starts on, from 1; `null` for the heading.
    #[schema(required = true)]
    pub page: Option<u32>,
    /// Where the chunk starts in the document's text, in characters.
    pub offset: u32,
    pub snippet: SnippetResponse,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DocumentSummary {
    pub id: uuid::Uuid,
    pub notebook_id: uuid::Uuid,
    pub original_filename: String,
    pub content_type: String,
    pub tags: Vec<String>,
    pub file_size: u64,
    #[schema(value_type = crate::openapi::values::ProcessingStatus)]
    pub processing_status: String,
    pub uploaded_by: uuid::Uuid,
    pub uploaded_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DocumentResult {
    pub document: DocumentSummary,
    /// Relevance, higher is better; comparable within one search only.
    pub score: f64,
    #[serde(rename = "match")]
    pub matched: MatchResponse,
}

impl From<FoundDocument> for DocumentResult {
    fn from(found: FoundDocument) -> Self {
        let hit = found.hit;
        Self {
            document: DocumentSummary {
                id: hit.id.as_uuid(),
                notebook_id: hit.notebook_id.as_uuid(),
                original_filename: hit.filename,
                content_type: hit.content_type,
                tags: hit.tags.iter().map(|tag| tag.as_str().to_owned()).collect(),
                file_size: hit.file_size,
                processing_status: hit.processing_status.as_str().to_owned(),
                uploaded_by: hit.uploaded_by.as_uuid(),
                uploaded_at: hit.uploaded_at,
                updated_at: hit.updated_at,
            },
            score: found.score,
            matched: MatchResponse {
                chunk: hit.chunk.ordinal,
                page: (hit.chunk.page > 0).then_some(hit.chunk.page),
                offset: hit.chunk.offset,
                snippet: found.snippet.into(),
            },
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FacetValue {
    pub value: String,
    pub count: u64,
}

/// How every match of the search (not only this page) spreads, among what you may
/// read: the ten most frequent values of each.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DocumentFacetsResponse {
    pub content_type: Vec<FacetValue>,
    pub status: Vec<FacetValue>,
    /// Notebook ids.
    pub notebook: Vec<FacetValue>,
}

impl From<DocumentFacets> for DocumentFacetsResponse {
    fn from(facets: DocumentFacets) -> Self {
        let values = |counts: Vec<FacetCount>| {
            counts.into_iter().map(|f| FacetValue { value: f.value, count: f.count }).collect()
        };
        Self {
            content_type: values(facets.content_type),
            status: values(facets.status),
            notebook: values(facets.notebook),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DocumentSearchResponse {
    pub items: Vec<DocumentResult>,
    #[schema(required = true)]
    pub next_cursor: Option<String>,
    /// On the first page (no `cursor`) only: how the documents matching the words spread.
    #[schema(required = true)]
    pub facets: Option<DocumentFacetsResponse>,
    /// How the results were ranked (`hybrid` falls back to `text` without an embedding model).
    #[schema(value_type = crate::openapi::values::SearchMode)]
    pub mode: String,
}

impl From<DocumentResults> for DocumentSearchResponse {
    fn from(results: DocumentResults) -> Self {
        Self {
            items: results.items.into_iter().map(DocumentResult::from).collect(),
            next_cursor: results.next.map(|next| next.encode()),
            facets: results.facets.map(DocumentFacetsResponse::from),
            mode: results.mode.as_str().to_owned(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NotebookResult {
    pub notebook: NotebookResponse,
    /// Relevance, higher is better; comparable within one search only.
    pub score: f64,
    /// From the name, description and tags.
    pub snippet: SnippetResponse,
}

impl From<FoundNotebook> for NotebookResult {
    fn from(found: FoundNotebook) -> Self {
        Self { notebook: found.notebook.into(), score: found.score, snippet: found.snippet.into() }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NotebookSearchResponse {
    pub items: Vec<NotebookResult>,
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

impl From<NotebookResults> for NotebookSearchResponse {
    fn from(results: NotebookResults) -> Self {
        Self {
            items: results.items.into_iter().map(NotebookResult::from).collect(),
            next_cursor: results.next.map(|next| next.encode()),
        }
    }
}

/// Documents you may read whose text, file name, description or tags match (by
/// words, meaning or both: `mode`), best first, with the best matching passage of each.
#[utoipa::path(
    get,
    path = "/api/v1/search/documents",
    tag = "search",
    security(("bearer" = [])),
    params(DocumentSearchQuery),
    responses(
        (status = 200, body = DocumentSearchResponse),
        doc::Authenticated,
        doc::BadRequest,
        doc::Unprocessable,
        (status = 404, description = "`not_found`: the `notebook_id` does not exist or is not visible to you"),
    )
)]
pub async fn search_documents(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    ApiQuery(query): ApiQuery<DocumentSearchQuery>,
) -> Result<Json<DocumentSearchResponse>, ApiError> {
    let (search, mode, offset) = query.parse()?;
    let results = state.search.documents(&caller, search, mode, offset).await?;
    Ok(Json(results.into()))
}

/// Notebooks you may read whose name, description or tags match, best first.
#[utoipa::path(
    get,
    path = "/api/v1/search/notebooks",
    tag = "search",
    security(("bearer" = [])),
    params(NotebookSearchQuery),
    responses(
        (status = 200, body = NotebookSearchResponse),
        doc::Authenticated,
        doc::BadRequest,
        doc::Unprocessable,
        (status = 404, description = "`not_found`: the `notebook_id` does not exist or is not visible to you"),
    )
)]
pub async fn search_notebooks(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    ApiQuery(query): ApiQuery<NotebookSearchQuery>,
) -> Result<Json<NotebookSearchResponse>, ApiError> {
    let results = state.search.notebooks(&caller, query.parse()?).await?;
    Ok(Json(results.into()))
}

/// What a people search takes.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PeopleQuery {
    /// Words of a username or full name (all must match), `prefixes*`; 1–256 characters.
    #[param(required = true, min_length = 1, max_length = 256)]
    pub q: Option<String>,
    /// At most this many, 1–100 (default 20).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PersonResult {
    pub user: PublicUserResponse,
    /// You and this user share a notebook (one holds a grant on a notebook the other owns).
    pub collaborates: bool,
    /// Relevance, higher is better; comparable within one search only.
    pub score: f64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PeopleSearchResponse {
    /// People you share notebooks with first, then by relevance.
    pub items: Vec<PersonResult>,
}

/// Active users by username or full name (administrators also match e-mail
/// addresses, which are shown to nobody here), people you share notebooks with first.
#[utoipa::path(
    get,
    path = "/api/v1/search/users",
    tag = "search",
    security(("bearer" = [])),
    params(PeopleQuery),
    responses(
        (status = 200, body = PeopleSearchResponse),
        doc::Authenticated,
        doc::BadRequest,
        doc::Unprocessable,
    )
)]
pub async fn search_people(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    ApiQuery(query): ApiQuery<PeopleQuery>,
) -> Result<Json<PeopleSearchResponse>, ApiError> {
    let mut problems = Problems::default();
    let text = query_text(&mut problems, query.q.as_deref());
    let limit = limit_param(&mut problems, query.limit.as_deref(), Limit::DEFAULT.get());
    problems.finish()?;
    let (Some(text), Some(limit)) = (text, limit) else { return Err(ApiError::internal()) };
    let people = state.search.people(&caller, text, limit).await?;
    Ok(Json(PeopleSearchResponse {
        items: people
            .into_iter()
            .map(|person| PersonResult {
                user: person.user.into(),
                collaborates: person.collaborates,
                score: person.score,
            })
            .collect(),
    }))
}

/// What the search across every kind takes.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OverviewQuery {
    /// As for the search of each kind; 1–256 characters.
    #[param(required = true, min_length = 1, max_length = 256)]
    pub q: Option<String>,
    /// Comma-separated kinds to search: `documents`, `notebooks`, `users` (default: all).
    #[param(pattern = "^(documents|notebooks|users)(,(documents|notebooks|users))*$")]
    pub r#type: Option<String>,
    /// Results per kind, 1–100 (default 5).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
}

/// The best results of each kind; each kind's own search pages further.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OverviewResponse {
    /// `null` when the kind was not asked for.
    #[schema(required = true)]
    pub documents: Option<Vec<DocumentResult>>,
    #[schema(required = true)]
    pub notebooks: Option<Vec<NotebookResult>>,
    #[schema(required = true)]
    pub users: Option<Vec<PersonResult>>,
}

/// Documents, notebooks and people at once: the best few of each kind, each
/// ranked within its kind.
#[utoipa::path(
    get,
    path = "/api/v1/search",
    tag = "search",
    security(("bearer" = [])),
    params(OverviewQuery),
    responses(
        (status = 200, body = OverviewResponse),
        doc::Authenticated,
        doc::BadRequest,
        doc::Unprocessable,
    )
)]
pub async fn search_everything(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    ApiQuery(query): ApiQuery<OverviewQuery>,
) -> Result<Json<OverviewResponse>, ApiError> {
    let mut problems = Problems::default();
    let text = query_text(&mut problems, query.q.as_deref());
    let limit = limit_param(&mut problems, query.limit.as_deref(), 5);
    let mut kinds = [true; 3];
    if let Some(wanted) = query.r#type.as_deref() {
        kinds = [false; 3];
        for kind in wanted.split(',') {
            match kind {
                "documents" => kinds[0] = true,
                "notebooks" => kinds[1] = true,
                "users" => kinds[2] = true,
                _ => {
                    problems.check::<()>(Err(ValidationError::new("type", "must list documents, notebooks or users")));
                }
            }
        }
    }
    problems.finish()?;
    let (Some(text), Some(limit)) = (text, limit) else { return Err(ApiError::internal()) };
    let started = std::time::Instant::now();
    let (mut found, mut documents_found, mut notebooks_found) = (0, Vec::new(), Vec::new());
    let mut response = OverviewResponse { documents: None, notebooks: None, users: None };
    if kinds[0] {
        let search = DocumentSearch {
            text: text.clone(),
            filters: SearchFilters::default(),
            content_type: None,
            status: None,
            limit,
            after: None,
        };
        let results = state.search.documents_without_facets(&caller, search).await?;
        found += results.items.len();
        documents_found = results.items.iter().map(|item| item.hit.id).collect();
        response.documents = Some(results.items.into_iter().map(DocumentResult::from).collect());
    }
    if kinds[1] {
        let search =
            NotebookSearch { text: text.clone(), filters: SearchFilters::default(), status: None, limit, after: None };
        let results = state.search.notebooks_for_overview(&caller, search).await?;
        found += results.items.len();
        notebooks_found = results.items.iter().map(|item| item.notebook.id).collect();
        response.notebooks = Some(results.items.into_iter().map(NotebookResult::from).collect());
    }
    if kinds[2] {
        let people = state.search.people_for_overview(&caller, text.clone(), limit).await?;
        found += people.len();
        response.users = Some(
            people
                .into_iter()
                .map(|person| PersonResult {
                    user: person.user.into(),
                    collaborates: person.collaborates,
                    score: person.score,
                })
                .collect(),
        );
    }
    state.search.remember_overview(&caller, &text, found, started, documents_found, notebooks_found);
    Ok(Json(response))
}

/// A search by meaning.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SemanticSearchRequest {
    /// What to look for, in your own words; 1–256 characters.
    #[schema(min_length = 1, max_length = 256)]
    pub query: String,
    /// Only within this notebook and its descendants.
    #[serde(default, deserialize_with = "present")]
    #[schema(required = false, nullable = false)]
    pub notebook_id: Option<uuid::Uuid>,
    /// Results, 1–100 (default 20).
    #[serde(default, deserialize_with = "present")]
    #[schema(required = false, nullable = false, minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    #[serde(default, deserialize_with = "present")]
    #[schema(required = false, nullable = false, pattern = "^o([1-9]|[1-9][0-9]|[1-4][0-9]{2})$")]
    pub cursor: Option<String>,
}

/// Documents you may read whose passages mean what `query` says, even without a
/// word in common, most similar first (cosine similarity of all-MiniLM-L6-v2 vectors).
#[utoipa::path(
    post,
    path = "/api/v1/search/semantic",
    tag = "search",
    security(("bearer" = [])),
    request_body = SemanticSearchRequest,
    responses(
        (status = 200, body = DocumentSearchResponse),
        doc::Authenticated,
        doc::JsonBody,
        (status = 404, description = "`not_found`: the `notebook_id` does not exist or is not visible to you"),
        (status = 503, description = "`semantic_unavailable`: this server has no embedding model"),
    )
)]
pub async fn search_semantic(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    ApiJson(body): ApiJson<SemanticSearchRequest>,
) -> Result<Json<DocumentSearchResponse>, ApiError> {
    let mut problems = Problems::default();
    let text = query_text(&mut problems, Some(&body.query));
    let limit = match body.limit {
        None => Some(Limit::DEFAULT),
        Some(limit) => problems.check(Limit::parse(limit)),
    };
    let offset = body.cursor.as_deref().and_then(|cursor| problems.check(OffsetCursor::parse(cursor)));
    problems.finish()?;
    let (Some(text), Some(limit)) = (text, limit) else { return Err(ApiError::internal()) };
    let filters = SearchFilters {
        within: body.notebook_id.map(aether_domain::id::NotebookId::from_uuid),
        ..SearchFilters::default()
    };
    let search = DocumentSearch { text, filters, content_type: None, status: None, limit, after: None };
    let results = state.search.documents(&caller, search, SearchMode::Semantic, offset).await?;
    Ok(Json(results.into()))
}

/// One of your searches.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SearchRecordResponse {
    pub id: uuid::Uuid,
    pub query_text: String,
    /// `text`, `semantic` or `hybrid`.
    pub query_type: String,
    /// `documents`, `notebooks`, `people` or `everything`.
    pub target: String,
    pub results_count: u32,
    pub response_time_ms: u32,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SearchHistoryPage {
    pub items: Vec<SearchRecordResponse>,
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// Your searches (the first page of each), newest first. Only you see them.
#[utoipa::path(
    get,
    path = "/api/v1/search/history",
    tag = "search",
    security(("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, body = SearchHistoryPage),
        doc::Authenticated,
        doc::BadRequest,
        doc::Unprocessable,
    )
)]
pub async fn search_history(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<SearchHistoryPage>, ApiError> {
    let page = state.search.history(&caller, query.parse()?).await?;
    Ok(Json(SearchHistoryPage {
        next_cursor: page.next_after.map(encode_cursor),
        items: page
            .items
            .into_iter()
            .map(|record| SearchRecordResponse {
                id: record.id,
                query_text: record.query_text,
                query_type: record.query_type,
                target: record.target,
                results_count: record.results_count,
                response_time_ms: record.response_time_ms,
                created_at: record.created_at,
            })
            .collect(),
    }))
}

/// Forgets all your searches.
#[utoipa::path(
    delete,
    path = "/api/v1/search/history",
    tag = "search",
    security(("bearer" = [])),
    responses((status = 204, description = "Forgotten"), doc::Authenticated)
)]
pub async fn clear_search_history(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
) -> Result<StatusCode, ApiError> {
    state.search.forget(&caller, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Forgets one of your searches.
#[utoipa::path(
    delete,
    path = "/api/v1/search/history/{id}",
    tag = "search",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The search's id")),
    responses((status = 204, description = "Forgotten"), doc::Authenticated, doc::BadRequest, doc::NotFound)
)]
pub async fn forget_search(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = uuid::Uuid::try_parse(&id)
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "invalid_id", "The id is not a UUID."))?;
    state.search.forget(&caller, Some(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SuggestionQuery {
    /// What you have typed so far; 1–256 characters.
    #[param(required = true, min_length = 1, max_length = 256)]
    pub q: Option<String>,
    /// At most this many, 1–100 (default 10).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SuggestionResponse {
    pub text: String,
    /// `query` (one of your frequent searches), `notebook`, `document` or `tag`.
    pub kind: String,
    /// The notebook's or document's id, for those kinds.
    #[schema(required = true)]
    pub id: Option<uuid::Uuid>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SuggestionList {
    pub items: Vec<SuggestionResponse>,
}

/// Completions of what you are typing: your frequent searches, then names of
/// notebooks and documents you may read, then your tags.
#[utoipa::path(
    get,
    path = "/api/v1/search/suggestions",
    tag = "search",
    security(("bearer" = [])),
    params(SuggestionQuery),
    responses(
        (status = 200, body = SuggestionList),
        doc::Authenticated,
        doc::BadRequest,
        doc::Unprocessable,
    )
)]
pub async fn search_suggestions(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    ApiQuery(query): ApiQuery<SuggestionQuery>,
) -> Result<Json<SuggestionList>, ApiError> {
    let mut problems = Problems::default();
    let text = query_text(&mut problems, query.q.as_deref());
    let limit = limit_param(&mut problems, query.limit.as_deref(), 10);
    problems.finish()?;
    let (Some(text), Some(limit)) = (text, limit) else { return Err(ApiError::internal()) };
    let suggestions = state.search.suggestions(&caller, text, limit).await?;
    Ok(Json(SuggestionList {
        items: suggestions
            .into_iter()
            .map(|s| SuggestionResponse { text: s.text, kind: s.kind.as_str().to_owned(), id: s.id })
            .collect(),
    }))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CommunityQuery {
    /// Words of a community's name or description; 1–256 characters.
    #[param(required = true, min_length = 1, max_length = 256)]
    pub q: Option<String>,
    /// At most this many, 1–100 (default 20).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CommunityList {
    /// Always empty until communities exist (issue 18).
    pub items: Vec<serde_json::Value>,
}

/// Communities you may see whose name or description match. There are no
/// communities yet, so the list is empty; the request is validated as it will be.
#[utoipa::path(
    get,
    path = "/api/v1/search/communities",
    tag = "search",
    security(("bearer" = [])),
    params(CommunityQuery),
    responses(
        (status = 200, body = CommunityList),
        doc::Authenticated,
        doc::BadRequest,
        doc::Unprocessable,
    )
)]
pub async fn search_communities(
    AuthUser(_caller): AuthUser,
    ApiQuery(query): ApiQuery<CommunityQuery>,
) -> Result<Json<CommunityList>, ApiError> {
    let mut problems = Problems::default();
    query_text(&mut problems, query.q.as_deref());
    limit_param(&mut problems, query.limit.as_deref(), Limit::DEFAULT.get());
    problems.finish()?;
    Ok(Json(CommunityList { items: Vec::new() }))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AnalyticsQuery {
    /// Searches since (RFC 3339); default: the last 7 days.
    #[param(value_type = Option<chrono::DateTime<chrono::Utc>>)]
    pub since: Option<String>,
    /// How many top and zero-result queries, 1–100 (default 20).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct QueryCountResponse {
    /// The query's words, in lower case.
    pub query: String,
    pub searches: u64,
    pub users: u64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SearchAnalyticsResponse {
    pub since: chrono::DateTime<chrono::Utc>,
    pub searches: u64,
    pub zero_result_searches: u64,
    pub top_queries: Vec<QueryCountResponse>,
    pub zero_result_queries: Vec<QueryCountResponse>,
    pub p50_ms: u32,
    pub p95_ms: u32,
    pub max_ms: u32,
}

/// What everyone searched since `since`: the most searched queries, those that
/// found nothing, and response times. For `aether-admin` and `compliance-officer`.
#[utoipa::path(
    get,
    path = "/api/v1/admin/search/analytics",
    tag = "admin",
    security(("bearer" = [])),
    params(AnalyticsQuery),
    responses(
        (status = 200, body = SearchAnalyticsResponse),
        doc::Authenticated,
        doc::BadRequest,
        doc::Forbidden,
        doc::Unprocessable,
    )
)]
pub async fn search_analytics(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    ApiQuery(query): ApiQuery<AnalyticsQuery>,
) -> Result<Json<SearchAnalyticsResponse>, ApiError> {
    let mut problems = Problems::default();
    let since = match query.since.as_deref() {
        None => Some(aether_domain::time::now() - chrono::TimeDelta::days(7)),
        Some(text) => time_bound(&mut problems, "since", Some(text)),
    };
    let limit = limit_param(&mut problems, query.limit.as_deref(), Limit::DEFAULT.get());
    problems.finish()?;
    let (Some(since), Some(limit)) = (since, limit) else { return Err(ApiError::internal()) };
    let analytics = state.search.analytics(&caller, since, limit).await?;
    let counts = |counts: Vec<aether_domain::search_log::QueryCount>| {
        counts
            .into_iter()
            .map(|c| QueryCountResponse { query: c.query, searches: c.searches, users: c.users })
            .collect()
    };
    Ok(Json(SearchAnalyticsResponse {
        since,
        searches: analytics.searches,
        zero_result_searches: analytics.zero_result_searches,
        top_queries: counts(analytics.top_queries),
        zero_result_queries: counts(analytics.zero_result_queries),
        p50_ms: analytics.p50_ms,
        p95_ms: analytics.p95_ms,
        max_ms: analytics.max_ms,
    }))
}
