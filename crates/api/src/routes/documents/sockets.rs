//! Job updates over WebSockets. The handshake authorizes through the service (a
//! job or notebook the caller may not read answers 404); the socket ([`crate::live`])
//! then forwards the service's stream of changed jobs (`DocumentService::follow_job`,
//! `follow_notebook`) as JSON until it ends or the client goes away.

use aether_domain::id::{JobId, NotebookId};
use aether_services::documents::JobUpdate;
use axum::body::Bytes;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, State};
use axum::response::Response;
use futures::StreamExt as _;
use futures::stream::BoxStream;

use super::{JobResponse, parse};
use crate::error::ApiError;
use crate::extract::AuthUser;
use crate::live::{self, Ending, Frame};
use crate::openapi as doc;
use crate::state::AppState;

/// Job updates over a WebSocket: the job as JSON on connect and on every change;
/// the server closes the socket once the job has finished.
#[utoipa::path(
    get,
    path = "/api/v1/ws/upload/{job_id}",
    tag = "documents",
    security(("bearer" = [])),
    params(
        ("job_id" = uuid::Uuid, Path, description = "Job id (UUID)"),
        ("access_token" = Option<String>, Query, description = "The access token, for browsers, which cannot set headers on WebSockets"),
        ("Connection" = String, Header, pattern = "^[Uu]pgrade$", description = "`Upgrade`: the WebSocket handshake (RFC 6455)"),
        ("Upgrade" = String, Header, pattern = "^websocket$", description = "`websocket`"),
        ("Sec-WebSocket-Version" = String, Header, pattern = "^13$", description = "`13`"),
        ("Sec-WebSocket-Key" = String, Header, pattern = "^[A-Za-z0-9+/]{21}[AQgw]==$", description = "16 random bytes in base64"),
    ),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        (status = 400, description = "Not a WebSocket handshake (`bad_request`): a plain HTTP request, or a missing `Upgrade`, `Connection`, `Sec-WebSocket-Version` or `Sec-WebSocket-Key` header"),
        doc::Authenticated,
        doc::NotFound,
        doc::Unprocessable,
    )
)]
pub async fn job_socket(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(job_id): Path<String>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let id = parse(JobId::parse(&job_id))?;
    let updates = state.documents.follow_job(&caller, id).await?;
    Ok(live::open(&state, &caller, upgrade, job_frames(updates), Ending::CloseAfterLast))
}

/// The same updates as `/ws/upload/{job_id}`, under the design's processing path.
#[utoipa::path(
    get,
    path = "/api/v1/ws/processing/{job_id}",
    tag = "documents",
    security(("bearer" = [])),
    params(
        ("job_id" = uuid::Uuid, Path, description = "Job id (UUID)"),
        ("access_token" = Option<String>, Query, description = "The access token, for browsers, which cannot set headers on WebSockets"),
        ("Connection" = String, Header, pattern = "^[Uu]pgrade$", description = "`Upgrade`: the WebSocket handshake (RFC 6455)"),
        ("Upgrade" = String, Header, pattern = "^websocket$", description = "`websocket`"),
        ("Sec-WebSocket-Version" = String, Header, pattern = "^13$", description = "`13`"),
        ("Sec-WebSocket-Key" = String, Header, pattern = "^[A-Za-z0-9+/]{21}[AQgw]==$", description = "16 random bytes in base64"),
    ),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        (status = 400, description = "Not a WebSocket handshake (`bad_request`): a plain HTTP request, or a missing `Upgrade`, `Connection`, `Sec-WebSocket-Version` or `Sec-WebSocket-Key` header"),
        doc::Authenticated,
        doc::NotFound,
        doc::Unprocessable,
    )
)]
pub async fn processing_socket(
    state: State<AppState>,
    caller: AuthUser,
    job_id: Path<String>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    job_socket(state, caller, job_id, upgrade).await
}

/// Updates of every upload job of a notebook over a WebSocket: its unfinished jobs
/// on connect, then each job whenever it changes (including when it finishes).
#[utoipa::path(
    get,
    path = "/api/v1/ws/notebooks/{id}/uploads",
    tag = "documents",
    security(("bearer" = [])),
    params(
        ("id" = uuid::Uuid, Path, description = "Notebook id (UUID)"),
        ("access_token" = Option<String>, Query, description = "The access token, for browsers, which cannot set headers on WebSockets"),
        ("Connection" = String, Header, pattern = "^[Uu]pgrade$", description = "`Upgrade`: the WebSocket handshake (RFC 6455)"),
        ("Upgrade" = String, Header, pattern = "^websocket$", description = "`websocket`"),
        ("Sec-WebSocket-Version" = String, Header, pattern = "^13$", description = "`13`"),
        ("Sec-WebSocket-Key" = String, Header, pattern = "^[A-Za-z0-9+/]{21}[AQgw]==$", description = "16 random bytes in base64"),
    ),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        (status = 400, description = "Not a WebSocket handshake (`bad_request`): a plain HTTP request, or a missing `Upgrade`, `Connection`, `Sec-WebSocket-Version` or `Sec-WebSocket-Key` header"),
        doc::Authenticated,
        doc::NotFound,
        doc::Unprocessable,
    )
)]
pub async fn notebook_upload_socket(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(id): Path<String>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let notebook = parse(NotebookId::parse(&id))?;
    let updates = state.documents.follow_notebook(&caller, notebook, state.settings.socket_access_recheck).await?;
    Ok(live::open(
        &state,
        &caller,
        upgrade,
        job_frames(updates),
        Ending::Unreadable("the notebook can no longer be read"),
    ))
}

/// A job change as a live view's frame: rendered once for every socket it goes to.
fn job_frames(updates: BoxStream<'static, JobUpdate>) -> BoxStream<'static, Frame> {
    updates
        .map(|update| Frame {
            text: update.rendered(|job| {
                serde_json::to_vec(&JobResponse::from(job.clone())).map(Bytes::from).unwrap_or_default()
            }),
            last: update.value().status.is_terminal(),
            published_at: update.published_at(),
        })
        .boxed()
}
