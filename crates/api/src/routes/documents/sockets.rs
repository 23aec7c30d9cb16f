//! Job updates over WebSockets. The handshake authorizes through the service (a
//! job or notebook the caller may not read answers 404); the socket then forwards
//! the service's stream of changed jobs (`DocumentService::follow_job`,
//! `follow_notebook`) as JSON until it ends or the client goes away.

use aether_domain::id::{JobId, NotebookId};
use aether_domain::job::UploadJob;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use futures::stream::BoxStream;

use super::{JobResponse, parse};
use crate::error::ApiError;
use crate::extract::AuthUser;
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
    let updates = state.documents.follow_job(&caller, id, state.settings.socket_poll).await?;
    Ok(upgrade.on_upgrade(move |socket| forward(socket, updates, Ending::CloseWhenFinished)).into_response())
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
    let updates = state.documents.follow_notebook(&caller, notebook, state.settings.socket_poll).await?;
    Ok(upgrade.on_upgrade(move |socket| forward(socket, updates, Ending::Drop)).into_response())
}

/// What a socket does when its stream of jobs ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Sends a Close frame when the last job sent had finished (and simply drops the
    /// connection when the job could no longer be read).
    CloseWhenFinished,
    /// Drops the connection.
    Drop,
}

/// Sends each job of `updates` as JSON until the stream ends or the client goes
/// away (closes, or the connection breaks); messages from the client are ignored.
async fn forward(mut socket: WebSocket, mut updates: BoxStream<'static, UploadJob>, ending: Ending) {
    let mut finished = false;
    loop {
        let next = tokio::select! {
            job = updates.next() => job,
            message = socket.recv() => match message {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => continue,
            },
        };
        let Some(job) = next else { break };
        finished = job.status.is_terminal();
        if send_job(&mut socket, &job).await.is_err() {
            return;
        }
    }
    if ending == Ending::CloseWhenFinished && finished {
        let _ = socket.send(Message::Close(None)).await;
    }
}

async fn send_job(socket: &mut WebSocket, job: &UploadJob) -> Result<(), axum::Error> {
    let body = serde_json::to_string(&JobResponse::from(job.clone())).unwrap_or_default();
    socket.send(Message::Text(body.into())).await
}
