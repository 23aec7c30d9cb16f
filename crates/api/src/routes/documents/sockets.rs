//! Job updates over WebSockets. The handshake authorizes through the service (a
//! job or notebook the caller may not read answers 404); the socket then forwards
//! the service's stream of changed jobs (`DocumentService::follow_job`,
//! `follow_notebook`) as JSON until it ends or the client goes away.

use std::time::Duration;

use aether_domain::auth::Principal;
use aether_domain::id::{JobId, NotebookId};
use aether_domain::job::UploadJob;
use aether_domain::time;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
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
    Ok(open(&state, &caller, upgrade, updates, Ending::CloseWhenFinished))
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
    Ok(open(&state, &caller, upgrade, updates, Ending::AccessEnded))
}

/// The sizes of a socket's buffers. tungstenite's defaults (a 128 KiB read buffer
/// allocated up front, a 128 KiB write buffer) made a socket cost about 130 KB of
/// server memory, most of it never used: clients send nothing but pongs and close
/// frames, and updates are small JSON objects written at once.
const READ_BUFFER_BYTES: usize = 4 * 1024;
/// The largest message or frame accepted from a client (they have nothing to say).
const MAX_CLIENT_MESSAGE_BYTES: usize = 16 * 1024;
/// Unsent updates a socket may hold before it is dropped as too slow: a consumer
/// that stops reading is cut off, not buffered for without bound.
const MAX_UNSENT_BYTES: usize = 1024 * 1024;

/// Upgrades to a WebSocket that forwards `updates`, or to one closed at once with the
/// reason when the caller or the server is over its socket limit.
fn open(
    state: &AppState,
    caller: &Principal,
    upgrade: WebSocketUpgrade,
    updates: BoxStream<'static, UploadJob>,
    ending: Ending,
) -> Response {
    let upgrade = upgrade
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_UNSENT_BYTES)
        .max_message_size(MAX_CLIENT_MESSAGE_BYTES)
        .max_frame_size(MAX_CLIENT_MESSAGE_BYTES);
    let ping = state.settings.socket_ping;
    // How long the caller's credential has left: the socket closes when it ends.
    let lifetime = caller.expires_at.map(|expires| (expires - time::now()).to_std().unwrap_or_default());
    match state.sockets.admit(caller.user_id) {
        Ok(permit) => upgrade
            .on_upgrade(move |socket| async move {
                forward(socket, updates, ending, ping, lifetime).await;
                drop(permit);
            })
            .into_response(),
        Err(refusal) => upgrade
            .on_upgrade(move |mut socket| async move {
                let _ = socket.send(close_frame(refusal.code, refusal.reason)).await;
            })
            .into_response(),
    }
}

/// What a socket does when its stream of jobs ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Sends a Close frame when the last job sent had finished (and simply drops the
    /// connection when the job could no longer be read).
    CloseWhenFinished,
    /// The stream ends only when the notebook can no longer be read (access revoked,
    /// notebook deleted): closes with 1008 and says so.
    AccessEnded,
}

fn close_frame(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame { code, reason: reason.into() }))
}

/// Sends each job of `updates` as JSON until the stream ends, the caller's
/// credential expires (closed with 1008), or the client goes away (closes, the
/// connection breaks, or it leaves two pings in a row unanswered); messages from
/// the client are otherwise ignored.
async fn forward(
    mut socket: WebSocket,
    mut updates: BoxStream<'static, UploadJob>,
    ending: Ending,
    ping: Duration,
    lifetime: Option<Duration>,
) {
    let mut finished = false;
    // A credential without a fixed end (`None`) never expires the socket.
    let expiry = async move {
        match lifetime {
            Some(lifetime) => tokio::time::sleep(lifetime).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(expiry);
    let mut pings = tokio::time::interval_at(tokio::time::Instant::now() + ping, ping);
    let mut heard = tokio::time::Instant::now();
    loop {
        let next = tokio::select! {
            job = updates.next() => job,
            message = socket.recv() => match message {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                // A pong, or anything else: the peer is alive.
                Some(Ok(_)) => {
                    heard = tokio::time::Instant::now();
                    continue;
                }
            },
            () = &mut expiry => {
                metrics::counter!("aether_websocket_closed_total", "reason" => "credential_expired").increment(1);
                let _ = socket.send(close_frame(1008, "the credential expired; reconnect with a new one")).await;
                return;
            },
            _ = pings.tick() => {
                if heard.elapsed() >= ping * 2 {
                    metrics::counter!("aether_websocket_closed_total", "reason" => "unresponsive").increment(1);
                    let _ = socket.send(close_frame(1001, "no answer to pings")).await;
                    return;
                }
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
                continue;
            },
        };
        let Some(job) = next else { break };
        finished = job.status.is_terminal();
        if send_job(&mut socket, &job).await.is_err() {
            // The client is gone, or so slow that MAX_UNSENT_BYTES filled up.
            return;
        }
    }
    match ending {
        Ending::CloseWhenFinished if finished => {
            let _ = socket.send(Message::Close(None)).await;
        }
        Ending::CloseWhenFinished => {}
        Ending::AccessEnded => {
            metrics::counter!("aether_websocket_closed_total", "reason" => "access_ended").increment(1);
            let _ = socket.send(close_frame(1008, "the notebook can no longer be read")).await;
        }
    }
}

async fn send_job(socket: &mut WebSocket, job: &UploadJob) -> Result<(), axum::Error> {
    let body = serde_json::to_string(&JobResponse::from(job.clone())).unwrap_or_default();
    socket.send(Message::Text(body.into())).await
}
