//! The read cache across two replicas: two servers in this process share one store
//! (the same SQLite file, or Neo4j with AETHER_TEST_STORE=neo4j), one data directory
//! (so one token signing key) and one Redis (AETHER_TEST_REDIS_URL, under a key
//! prefix of this test's own). A reader whose user and permissions replica B has
//! cached sees every change made through replica A on its very next request.
//! Without AETHER_TEST_REDIS_URL the test prints NOT RUN, unless
//! AETHER_TEST_REQUIRE_SERVICES=1.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use aether::RunningServer;
use aether_domain::user::Role;
use common::{TestApp, api_key_user, call, json_of, metric, test_config};
use reqwest::Method;
use serde_json::json;

async fn two_replicas() -> Option<(TestApp, TestApp)> {
    let url = common::service("AETHER_TEST_REDIS_URL", "to test the cache shared by two replicas")?;
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("aether-test:{}:", uuid::Uuid::now_v7().simple());
    let config = |path: &std::path::Path| {
        let mut config = test_config(path);
        config.redis_url = aether::config::Secret::new(url.clone());
        config.redis_key_prefix = prefix.clone();
        // Long enough that only an invalidation, never an expiry, explains what B sees.
        config.cache_ttl_secs = 600;
        config
    };
    let a = RunningServer::start(config(dir.path())).await.unwrap();
    let b = RunningServer::start(config(dir.path())).await.unwrap();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let a = TestApp { server: a, client: client.clone(), dir };
    let b = TestApp { server: b, client, dir: tempfile::tempdir().unwrap() };
    Some((a, b))
}

/// The value of `aether_cache_requests_total` for a namespace and outcome.
async fn cache_count(app: &TestApp, namespace: &str, outcome: &str) -> f64 {
    let labels = [format!("namespace=\"{namespace}\""), format!("outcome=\"{outcome}\"")];
    metric(app, "aether_cache_requests_total", &[&labels[0], &labels[1]]).await
}

async fn status(app: &TestApp, token: &str, method: Method, path: &str, body: Option<serde_json::Value>) -> u16 {
    call(app, token, method, path, body).await.status().as_u16()
}

#[tokio::test]
async fn changes_made_on_one_replica_are_seen_at_once_on_another() {
    let Some((a, b)) = two_replicas().await else { return };
    let owner = a.user_token("cache-owner").await;
    let (reader_id, reader) = api_key_user(&a, "cache-reader", &["read"]).await;
    let create = |body: serde_json::Value| {
        let (a, owner) = (&a, &owner);
        async move {
            let created = json_of(call(a, owner, Method::POST, "/api/v1/notebooks", Some(body)).await, 201).await;
            format!("/api/v1/notebooks/{}", created["id"].as_str().unwrap())
        }
    };
    let root = create(json!({"name": "Root"})).await;
    let root_id = root.rsplit('/').next().unwrap().to_owned();
    let child = create(json!({"name": "Child", "parent_id": root_id})).await;
    let permissions = format!("{root}/permissions");
    assert_eq!(status(&b, &reader, Method::GET, &child, None).await, 404, "private at first");

    // A grant on A: B sees it, and serves it from the cache from then on.
    let grant = json!({"user_id": reader_id, "permission": "read"});
    assert_eq!(status(&a, &owner, Method::PUT, &permissions, Some(grant.clone())).await, 200);
    assert_eq!(status(&b, &reader, Method::GET, &child, None).await, 200, "granted on the parent");
    let (access_hits, user_hits) = (cache_count(&b, "access", "hit").await, cache_count(&b, "users", "hit").await);
    assert_eq!(status(&b, &reader, Method::GET, &child, None).await, 200);
    assert!(cache_count(&b, "access", "hit").await > access_hits, "the permission chain came from the cache");
    assert!(cache_count(&b, "users", "hit").await > user_hits, "the API key's user came from the cache");

    // A revocation on A: B refuses at once.
    let revoke = json!({"user_id": reader_id, "permission": null});
    assert_eq!(status(&a, &owner, Method::PUT, &permissions, Some(revoke)).await, 204);
    assert_eq!(status(&b, &reader, Method::GET, &child, None).await, 404, "revoked");
    assert_eq!(status(&b, &reader, Method::GET, &root, None).await, 404, "revoked");

    // A move on A out from under the grant: B refuses at once.
    assert_eq!(status(&a, &owner, Method::PUT, &permissions, Some(grant)).await, 200);
    assert_eq!(status(&b, &reader, Method::GET, &child, None).await, 200);
    assert_eq!(status(&b, &reader, Method::GET, &child, None).await, 200, "cached");
    assert_eq!(status(&a, &owner, Method::PUT, &child, Some(json!({"parent_id": null}))).await, 200);
    assert_eq!(status(&b, &reader, Method::GET, &child, None).await, 404, "moved out of the shared tree");

    // A change of visibility on A: B shows it at once.
    assert_eq!(status(&a, &owner, Method::PUT, &child, Some(json!({"visibility": "public"}))).await, 200);
    assert_eq!(status(&b, &reader, Method::GET, &child, None).await, 200, "public now");
    assert_eq!(status(&b, &reader, Method::GET, &child, None).await, 200, "cached");
    assert_eq!(status(&a, &owner, Method::PUT, &child, Some(json!({"visibility": "private"}))).await, 200);
    assert_eq!(status(&b, &reader, Method::GET, &child, None).await, 404, "private again");

    // A rename on A: B, which serves the notebook itself from the cache, shows the new
    // name at once.
    let notebook_hits = cache_count(&b, "notebooks", "hit").await;
    for _ in 0..3 {
        assert_eq!(json_of(call(&b, &owner, Method::GET, &root, None).await, 200).await["name"], "Root");
    }
    assert!(cache_count(&b, "notebooks", "hit").await > notebook_hits, "the notebook came from the cache");
    assert_eq!(status(&a, &owner, Method::PUT, &root, Some(json!({"name": "Renamed"}))).await, 200);
    let renamed = json_of(call(&b, &owner, Method::GET, &root, None).await, 200).await;
    assert_eq!(renamed["name"], "Renamed", "renamed through A");

    // A deletion on A: B answers 404 at once.
    assert_eq!(status(&b, &reader, Method::GET, &root, None).await, 200);
    assert_eq!(status(&b, &reader, Method::GET, &root, None).await, 200, "cached");
    assert_eq!(status(&a, &owner, Method::DELETE, &format!("{root}?cascade=true"), None).await, 204);
    assert_eq!(status(&b, &reader, Method::GET, &root, None).await, 404, "deleted");

    // A role change on A: B's cached user gives way at once. `notebook-admin` reads
    // every notebook; taking it away hides them again.
    let admin = {
        let (username, password) = a.create_user("cache-admin", vec![Role::Admin]).await;
        let token: serde_json::Value = json_of(a.password_grant(&username, &password).await, 200).await;
        token["access_token"].as_str().unwrap().to_owned()
    };
    let roles = format!("/api/v1/admin/users/{reader_id}/roles");
    assert_eq!(status(&b, &reader, Method::GET, &child, None).await, 404);
    assert_eq!(status(&b, &reader, Method::GET, &child, None).await, 404, "user and chain cached");
    let promote = json!({"roles": ["aether-user", "notebook-admin"]});
    assert_eq!(status(&a, &admin, Method::PUT, &roles, Some(promote)).await, 200);
    assert_eq!(status(&b, &reader, Method::GET, &child, None).await, 200, "the new role counts at once");
    assert_eq!(status(&a, &admin, Method::PUT, &roles, Some(json!({"roles": ["aether-user"]}))).await, 200);
    assert_eq!(status(&b, &reader, Method::GET, &child, None).await, 404, "and its removal too");

    a.shutdown().await;
    b.shutdown().await;
}

/// Neo4j without Redis: two replicas share no cache, so each keeps its reads for at
/// most a second (`UNSHARED_CACHE_TTL`): a revocation made through A is seen by B
/// within that second, and B's repeated reads in between come from its own cache.
/// Runs only on Neo4j (a SQLite store has one process by design).
#[tokio::test]
async fn without_redis_replicas_notice_changes_within_a_second() {
    if common::store_kind() != aether::config::StoreKind::Neo4j {
        println!("NOT RUN: needs AETHER_TEST_STORE=neo4j");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = |path: &std::path::Path| {
        let mut config = test_config(path);
        config.cache_ttl_secs = 600;
        config
    };
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let a = RunningServer::start(config(dir.path())).await.unwrap();
    let b = RunningServer::start(config(dir.path())).await.unwrap();
    let a = TestApp { server: a, client: client.clone(), dir };
    let b = TestApp { server: b, client, dir: tempfile::tempdir().unwrap() };
    let owner = a.user_token("unshared-owner").await;
    let (reader_id, reader) = api_key_user(&a, "unshared-reader", &["read"]).await;
    let created =
        json_of(call(&a, &owner, Method::POST, "/api/v1/notebooks", Some(json!({"name": "N"}))).await, 201).await;
    let notebook = format!("/api/v1/notebooks/{}", created["id"].as_str().unwrap());
    let permissions = format!("{notebook}/permissions");
    let grant = json!({"user_id": reader_id, "permission": "read"});
    assert_eq!(status(&a, &owner, Method::PUT, &permissions, Some(grant)).await, 200);
    assert_eq!(status(&b, &reader, Method::GET, &notebook, None).await, 200);
    let hits = cache_count(&b, "access", "hit").await;
    assert_eq!(status(&b, &reader, Method::GET, &notebook, None).await, 200);
    assert!(cache_count(&b, "access", "hit").await > hits, "B serves the chain from its own cache");

    let revoke = json!({"user_id": reader_id, "permission": null});
    assert_eq!(status(&a, &owner, Method::PUT, &permissions, Some(revoke)).await, 204);
    let revoked_at = std::time::Instant::now();
    loop {
        let seen = status(&b, &reader, Method::GET, &notebook, None).await;
        if seen == 404 {
            break;
        }
        assert_eq!(seen, 200);
        assert!(revoked_at.elapsed() < Duration::from_millis(1_500), "B still reads after the cache's second");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_grant_revoked_on_one_replica_closes_the_reader_s_socket_on_another() {
    use futures::StreamExt as _;
    use tokio_tungstenite::tungstenite::Message;
    let Some((a, b)) = two_replicas().await else { return };
    let owner = a.user_token("live-cache-owner").await;
    let (reader_id, reader) = api_key_user(&a, "live-cache-reader", &["read"]).await;
    let created =
        json_of(call(&a, &owner, Method::POST, "/api/v1/notebooks", Some(json!({"name": "Watched"}))).await, 201);
    let notebook = created.await["id"].as_str().unwrap().to_owned();
    let permissions = format!("/api/v1/notebooks/{notebook}/permissions");
    let grant = json!({"user_id": reader_id, "permission": "read"});
    assert_eq!(status(&a, &owner, Method::PUT, &permissions, Some(grant)).await, 200);

    // With Redis a feed re-checks on its own only every five minutes: only the
    // shared access generation, watched by B, can close this socket in time.
    let url = format!(
        "{}/api/v1/ws/notebooks/{notebook}/uploads?access_token={reader}",
        b.server.base_url().replace("http://", "ws://")
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let revoke = json!({"user_id": reader_id, "permission": null});
    assert_eq!(status(&a, &owner, Method::PUT, &permissions, Some(revoke)).await, 204);
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|frame| frame.reason.to_string()),
                Some(Ok(_)) => continue,
                other => panic!("no close frame: {other:?}"),
            }
        }
    })
    .await;
    assert_eq!(closed.expect("closed within 5 s").as_deref(), Some("the notebook can no longer be read"));
}
