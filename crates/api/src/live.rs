//! Live views over WebSockets: the one socket every live view rides on (upload
//! progress today; notifications, feeds, agent output and workflow progress next).
//! A route authorizes the handshake and asks its service for the view's stream of
//! changes (built on `aether_services::live`), renders each change once into a
//! [`Frame`], and hands the stream to [`open`]. The socket then:
//!
//! - counts against the server's and the user's socket limits
//!   ([`crate::sockets::SocketRegistry`]), or is closed at once with the reason;
//! - forwards each frame as a text message, dropping a client that stops reading
//!   once `MAX_UNSENT_BYTES` are waiting;
//! - pings the client and closes (1001) when two pings go unanswered;
//! - closes (1008, with the reason) when the caller's credential expires or is
//!   revoked (`IdentityService::watch_credential`), or when the view ends because
//!   what it shows can no longer be read.

use std::time::Duration;

use aether_domain::auth::Principal;
use aether_services::identity::{CredentialEnd, CredentialWatch};
use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use futures::stream::BoxStream;

use crate::state::AppState;

/// One message of a live view.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The change as JSON, rendered once for every socket that sends it.
    pub text: Bytes,
    /// Whether nothing can follow it (a finished job): see [`Ending::CloseAfterLast`].
    pub last: bool,
    /// When the change was published in this process, for the delivery latency
    /// (`aether_live_delivery_seconds`); `None` for state read from the store.
    pub published_at: Option<std::time::Instant>,
}

/// What a socket does when its view's stream ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Sends a Close frame (1000) when the last frame sent was marked `last`, and
    /// otherwise simply drops the connection (what it showed can no longer be read).
    CloseAfterLast,
    /// The stream ends only when what the view shows can no longer be read: closes
    /// with 1008 and this reason.
    Unreadable(&'static str),
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

/// Upgrades to a WebSocket that forwards `frames`, or to one closed at once with the
/// reason when the caller or the server is over its socket limit.
pub fn open(
    state: &AppState,
    caller: &Principal,
    upgrade: WebSocketUpgrade,
    frames: BoxStream<'static, Frame>,
    ending: Ending,
) -> Response {
    let upgrade = upgrade
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_UNSENT_BYTES)
        .max_message_size(MAX_CLIENT_MESSAGE_BYTES)
        .max_frame_size(MAX_CLIENT_MESSAGE_BYTES);
    let ping = state.settings.socket_ping;
    match state.sockets.admit(caller.user_id) {
        Ok(permit) => {
            // Re-checked at every ping interval, and at once on a change in this process.
            let credential = state.identity.watch_credential(caller, ping);
            upgrade
                .on_upgrade(move |socket| async move {
                    forward(socket, frames, ending, ping, credential).await;
                    drop(permit);
                })
                .into_response()
        }
        Err(refusal) => upgrade
            .on_upgrade(move |mut socket| async move {
                let _ = socket.send(close_frame(refusal.code, refusal.reason)).await;
            })
            .into_response(),
    }
}

fn close_frame(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame { code, reason: reason.into() }))
}

fn closed(reason: &'static str) {
    metrics::counter!("aether_websocket_closed_total", "reason" => reason).increment(1);
}

/// Sends each frame until the stream ends, the caller's credential ends (closed with
/// 1008), or the client goes away (closes, the connection breaks, or it leaves two
/// pings in a row unanswered); messages from the client are otherwise ignored.
async fn forward(
    mut socket: WebSocket,
    mut frames: BoxStream<'static, Frame>,
    ending: Ending,
    ping: Duration,
    credential: CredentialWatch,
) {
    let mut last = false;
    let credential = credential.ended();
    tokio::pin!(credential);
    let mut pings = tokio::time::interval_at(tokio::time::Instant::now() + ping, ping);
    let mut heard = tokio::time::Instant::now();
    loop {
        let next = tokio::select! {
            frame = frames.next() => frame,
            message = socket.recv() => match message {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                // A pong, or anything else: the peer is alive.
                Some(Ok(_)) => {
                    heard = tokio::time::Instant::now();
                    continue;
                }
            },
            end = &mut credential => {
                let (metric, reason) = match end {
                    CredentialEnd::Expired => ("credential_expired", "the credential expired; reconnect with a new one"),
                    CredentialEnd::Revoked => ("credential_revoked", "the credential was revoked (logout, revoked key or account)"),
                };
                closed(metric);
                let _ = socket.send(close_frame(1008, reason)).await;
                return;
            },
            _ = pings.tick() => {
                if heard.elapsed() >= ping * 2 {
                    closed("unresponsive");
                    let _ = socket.send(close_frame(1001, "no answer to pings")).await;
                    return;
                }
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
                continue;
            },
        };
        let Some(frame) = next else { break };
        last = frame.last;
        let Ok(text) = Utf8Bytes::try_from(frame.text) else { continue };
        if socket.send(Message::Text(text)).await.is_err() {
            // The client is gone, or so slow that MAX_UNSENT_BYTES filled up.
            return;
        }
        if let Some(published_at) = frame.published_at {
            metrics::histogram!("aether_live_delivery_seconds").record(published_at.elapsed());
        }
    }
    match ending {
        Ending::CloseAfterLast if last => {
            let _ = socket.send(Message::Close(None)).await;
        }
        Ending::CloseAfterLast => {}
        Ending::Unreadable(reason) => {
            closed("access_ended");
            let _ = socket.send(close_frame(1008, reason)).await;
        }
    }
}
