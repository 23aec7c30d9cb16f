//! WebSockets as live views: closed with a reason when the caller's access ends,
//! counted against per-user and per-server limits (closed with 1008 and 1013), and
//! closed when the peer stops answering pings or its credential expires or is
//! revoked (logout, API key revocation). On SQLite, and on Neo4j with
//! AETHER_TEST_STORE=neo4j.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{TestApp, call, json_of};
use futures::StreamExt as _;
use reqwest::Method;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn notebook(app: &TestApp, token: &str) -> String {
    let created =
        json_of(call(app, token, Method::POST, "/api/v1/notebooks", Some(json!({"name": "Live"}))).await, 201).await;
    created["id"].as_str().unwrap().to_owned()
}

async fn user_id(app: &TestApp, token: &str) -> String {
    json_of(call(app, token, Method::GET, "/api/v1/users/me", None).await, 200).await["id"].as_str().unwrap().to_owned()
}

async fn connect(app: &TestApp, notebook: &str, token: &str) -> Socket {
    let url = format!(
        "{}/api/v1/ws/notebooks/{notebook}/uploads?access_token={token}",
        app.server.base_url().replace("http://", "ws://")
    );
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

/// Uploads a small text file into the notebook; the accepted job.
async fn upload(app: &TestApp, token: &str, notebook: &str) -> serde_json::Value {
    let form = reqwest::multipart::Form::new()
        .text("notebook_id", notebook.to_owned())
        .part("file", reqwest::multipart::Part::bytes(b"a live upload".to_vec()).file_name("live.txt"));
    let response = app.client.post(app.url("/api/v1/documents/upload")).bearer_auth(token).multipart(form).send().await;
    json_of(response.unwrap(), 202).await
}

/// Reads until a Close frame (answering pings on the way); its code and reason.
async fn close_of(socket: &mut Socket) -> (CloseCode, String) {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next()).await {
            Ok(Some(Ok(Message::Close(Some(frame))))) => return (frame.code, frame.reason.to_string()),
            Ok(Some(Ok(_))) => continue,
            other => panic!("no close frame: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_reader_whose_access_is_revoked_is_closed_with_a_reason() {
    // The store is re-read only every ten minutes here: the revocation must be
    // pushed to the socket, not found by a poll.
    let app = TestApp::spawn_with(|config| config.websocket_poll_ms = 600_000).await;
    let owner = app.user_token("live-owner").await;
    let reader = app.user_token("live-reader").await;
    let nb = notebook(&app, &owner).await;
    let reader_id = user_id(&app, &reader).await;
    let permissions = format!("/api/v1/notebooks/{nb}/permissions");
    let grant = json!({"user_id": reader_id, "permission": "read"});
    assert_eq!(call(&app, &owner, Method::PUT, &permissions, Some(grant)).await.status(), 200);

    let mut socket = connect(&app, &nb, &reader).await;
    let mut bystander = connect(&app, &nb, &owner).await;
    let revoke = json!({"user_id": reader_id, "permission": null});
    assert_eq!(call(&app, &owner, Method::PUT, &permissions, Some(revoke)).await.status(), 204);
    assert_eq!(close_of(&mut socket).await, (CloseCode::Policy, "the notebook can no longer be read".to_owned()));
    // The owner's socket stays open: it still gets nothing but pings (none within this
    // short wait), not a close.
    let quiet = tokio::time::timeout(Duration::from_millis(500), bystander.next()).await;
    assert!(quiet.is_err(), "the owner's socket was not closed: {quiet:?}");
    app.shutdown().await;
}

#[tokio::test]
async fn sockets_over_the_limits_are_closed_with_their_code() {
    let app = TestApp::spawn_with(|config| {
        config.max_websockets = 3;
        config.max_websockets_per_user = 2;
    })
    .await;
    let alice = app.user_token("limit-alice").await;
    let bob = app.user_token("limit-bob").await;
    let (alices, bobs) = (notebook(&app, &alice).await, notebook(&app, &bob).await);

    let mut first = connect(&app, &alices, &alice).await;
    let _second = connect(&app, &alices, &alice).await;
    let mut third = connect(&app, &alices, &alice).await;
    assert_eq!(close_of(&mut third).await, (CloseCode::Policy, "too many open sockets for this user".to_owned()));

    let _bobs_first = connect(&app, &bobs, &bob).await;
    let mut bobs_second = connect(&app, &bobs, &bob).await;
    assert_eq!(close_of(&mut bobs_second).await, (CloseCode::Again, "the server has too many open sockets".to_owned()));

    // A closed socket gives its place back.
    first.close(None).await.unwrap();
    let mut admitted = None;
    for _ in 0..50 {
        let mut socket = connect(&app, &bobs, &bob).await;
        match tokio::time::timeout(Duration::from_millis(200), socket.next()).await {
            Err(_) => {
                admitted = Some(socket);
                break;
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert!(admitted.is_some(), "the place of the closed socket was never given back");
    app.shutdown().await;
}

#[tokio::test]
async fn a_peer_that_stops_answering_pings_is_closed() {
    let app = TestApp::spawn_with(|config| config.websocket_ping_secs = 1).await;
    let owner = app.user_token("ping-owner").await;
    let nb = notebook(&app, &owner).await;
    let mut silent = connect(&app, &nb, &owner).await;
    let mut answering = connect(&app, &nb, &owner).await;
    // `answering` is read (tungstenite answers pings while reading); `silent` is not.
    let listened = tokio::time::timeout(Duration::from_millis(3500), async {
        while let Some(Ok(message)) = answering.next().await {
            assert!(matches!(message, Message::Ping(_)), "only pings while idle: {message:?}");
        }
    })
    .await;
    assert!(listened.is_err(), "the answering socket stayed open");
    assert_eq!(close_of(&mut silent).await, (CloseCode::Away, "no answer to pings".to_owned()));
    app.shutdown().await;
}

#[tokio::test]
async fn a_socket_closes_when_its_access_token_expires() {
    // Tokens live two seconds here (the verifier allows no leeway for local tokens
    // beyond their `exp`); pings are rarer than that, so only the expiry closes it.
    let app = TestApp::spawn_with(|config| config.access_token_ttl_secs = 2).await;
    let owner = app.user_token("expiry-owner").await;
    let nb = notebook(&app, &owner).await;
    let mut socket = connect(&app, &nb, &owner).await;
    assert_eq!(
        close_of(&mut socket).await,
        (CloseCode::Policy, "the credential expired; reconnect with a new one".to_owned())
    );
    app.shutdown().await;
}

#[tokio::test]
async fn logging_out_or_revoking_a_key_closes_the_sockets_it_opened() {
    // Pings (and the re-checks that ride on them) are an hour apart: the close must be
    // pushed by the logout and the revocation.
    let app = TestApp::spawn_with(|config| config.websocket_ping_secs = 3600).await;
    let (username, password) = app.create_user("leaving", vec![aether_domain::user::Role::User]).await;
    let mut tokens = Vec::new();
    for _ in 0..2 {
        let grant: serde_json::Value = app.password_grant(&username, &password).await.json().await.unwrap();
        tokens.push(grant["access_token"].as_str().unwrap().to_owned());
    }
    let nb = notebook(&app, &tokens[0]).await;
    let key = json_of(
        call(
            &app,
            &tokens[0],
            Method::POST,
            "/api/v1/users/me/api-keys",
            Some(json!({"name": "live", "scopes": ["read"]})),
        )
        .await,
        201,
    )
    .await;
    let secret = key["key"].as_str().unwrap();

    let mut first_login = connect(&app, &nb, &tokens[0]).await;
    let mut second_login = connect(&app, &nb, &tokens[1]).await;
    let mut by_key = connect(&app, &nb, secret).await;
    let revoked = (CloseCode::Policy, "the credential was revoked (logout, revoked key or account)".to_owned());

    json_of(call(&app, &tokens[0], Method::POST, "/api/v1/auth/logout", None).await, 200).await;
    assert_eq!(close_of(&mut first_login).await, revoked);
    // The other login and the key still hold: their sockets stay open.
    for socket in [&mut second_login, &mut by_key] {
        let quiet = tokio::time::timeout(Duration::from_millis(300), socket.next()).await;
        assert!(quiet.is_err(), "a socket of another credential was closed: {quiet:?}");
    }

    let path = format!("/api/v1/users/me/api-keys/{}", key["id"].as_str().unwrap());
    json_of(call(&app, &tokens[1], Method::DELETE, &path, None).await, 200).await;
    assert_eq!(close_of(&mut by_key).await, revoked);
    let quiet = tokio::time::timeout(Duration::from_millis(300), second_login.next()).await;
    assert!(quiet.is_err(), "the second login's socket was closed: {quiet:?}");
    app.shutdown().await;
}

#[tokio::test]
async fn a_change_no_notice_brought_reaches_sockets_through_the_resync() {
    // Two replicas of one store without Redis: nothing tells B about an upload made
    // through A. B re-reads what its sockets follow every 300 ms, once per notebook.
    let dir = tempfile::tempdir().unwrap();
    let a = aether::RunningServer::start(common::test_config(dir.path())).await.unwrap();
    let mut config = common::test_config(dir.path());
    config.websocket_poll_ms = 300;
    let b = aether::RunningServer::start(config).await.unwrap();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let a = TestApp { server: a, client: client.clone(), dir };
    let b = TestApp { server: b, client, dir: tempfile::tempdir().unwrap() };

    let owner = a.user_token("resync-owner").await;
    let nb = notebook(&a, &owner).await;
    let mut sockets = vec![connect(&b, &nb, &owner).await, connect(&b, &nb, &owner).await];
    let job = upload(&a, &owner, &nb).await;
    for socket in &mut sockets {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next()).await;
        let Ok(Some(Ok(Message::Text(text)))) = message else { panic!("no update on B: {message:?}") };
        let update: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(update["job_id"], job["job_id"], "{update}");
    }
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_pushed_change_is_timed_from_its_publication_to_the_socket() {
    let app = TestApp::spawn_with(|config| config.websocket_poll_ms = 600_000).await;
    let owner = app.user_token("timed-owner").await;
    let nb = notebook(&app, &owner).await;
    let mut socket = connect(&app, &nb, &owner).await;
    // The recorder is shared by every server of this test process: count, not total.
    let before = common::metric(&app, "aether_live_delivery_seconds_count", &[]).await;
    let job = upload(&app, &owner, &nb).await;
    let message = tokio::time::timeout(Duration::from_secs(10), socket.next()).await;
    let Ok(Some(Ok(Message::Text(text)))) = message else { panic!("no update: {message:?}") };
    assert!(text.contains(job["job_id"].as_str().unwrap()), "{text}");
    let after = common::metric(&app, "aether_live_delivery_seconds_count", &[]).await;
    assert!(after > before, "the delivery was not recorded: {before} -> {after}");
    let buckets = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(buckets.contains("aether_live_delivery_seconds_bucket{le=\"0.05\"}"), "a histogram with buckets");
    app.shutdown().await;
}
