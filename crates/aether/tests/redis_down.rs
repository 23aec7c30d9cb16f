//! Redis going away under a running server: rate limiting fails open or closed as
//! configured, `/ready` reports it, requests authenticated by token answer 503 (token
//! revocation lives in Redis), the read cache is bypassed (reads and writes with API
//! keys go on, against the store), and nothing crashes. Each test runs its own
//! `redis-server` (from Debian, installed by scripts/install-deps) so that it can
//! kill it without disturbing the shared one.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{TestApp, api_key_user, call, json_of, metric};
use reqwest::Method;

struct Redis(Child);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A private redis-server on a free port, or `None` (NOT RUN) when none is installed.
async fn private_redis() -> Option<(Redis, String)> {
    let required = std::env::var("AETHER_TEST_REQUIRE_SERVICES").is_ok_and(|v| v == "1");
    let installed = Command::new("redis-server").arg("--version").stdout(Stdio::null()).status().is_ok();
    if !installed {
        assert!(!required, "AETHER_TEST_REQUIRE_SERVICES=1 but redis-server is not installed");
        eprintln!("NOT RUN: redis-server is not installed (scripts/install-deps installs it)");
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let redis = Redis(child);
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Some((redis, format!("redis://127.0.0.1:{port}/")));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("redis-server did not start");
}

async fn app_on(redis_url: &str, fail_open: bool) -> TestApp {
    let url = redis_url.to_owned();
    TestApp::spawn_with(move |config| {
        config.redis_url = aether::config::Secret::new(url);
        config.rate_limit_per_ip = 1000;
        config.rate_limit_per_user = 1000;
        config.rate_limit_fail_open = fail_open;
    })
    .await
}

#[tokio::test]
async fn rate_limiting_fails_open_when_redis_goes_down() {
    let Some((mut redis, url)) = private_redis().await else { return };
    let app = app_on(&url, true).await;
    let token = app.user_token("redis-down").await;
    let jwks = app.url("/api/v1/auth/jwks");
    let counted = app.client.get(&jwks).send().await.unwrap();
    assert_eq!(counted.status(), 200);
    assert!(counted.headers().contains_key("ratelimit-remaining"), "counted in Redis while it is up");

    let _ = redis.0.kill();
    let _ = redis.0.wait();
    let through = app.client.get(&jwks).send().await.unwrap();
    assert_eq!(through.status(), 200, "fail-open: requests pass without a count");
    assert!(!through.headers().contains_key("ratelimit-remaining"));
    let ready = app.client.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let report: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(report["checks"]["redis"]["status"], "down", "{report}");
    // Revoked sessions are remembered in Redis: without it no token can be
    // checked, so authenticated requests answer 503 rather than trusting them.
    let sessions = metric(&app, "aether_dependency_errors_total", &[r#"dependency="sessions""#]).await;
    let me = app.client.get(app.url("/api/v1/auth/me")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(me.status(), 503);
    let failed = metric(&app, "aether_dependency_errors_total", &[r#"dependency="sessions""#]).await;
    assert!(failed > sessions, "the failed revocation check is counted: {sessions} then {failed}");
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"aether_dependency_errors_total{dependency="rate_limiter"}"#));
    assert_eq!(app.client.get(app.url("/health")).send().await.unwrap().status(), 200, "the server lives on");
    app.shutdown().await;
}

#[tokio::test]
async fn rate_limiting_fails_closed_when_so_configured() {
    let Some((mut redis, url)) = private_redis().await else { return };
    let app = app_on(&url, false).await;
    let jwks = app.url("/api/v1/auth/jwks");
    assert_eq!(app.client.get(&jwks).send().await.unwrap().status(), 200);
    let _ = redis.0.kill();
    let _ = redis.0.wait();
    let refused = app.client.get(&jwks).send().await.unwrap();
    assert_eq!(refused.status(), 503, "fail-closed: no count, no request");
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_eq!(app.client.get(app.url("/health")).send().await.unwrap().status(), 200, "/health is not limited");
    app.shutdown().await;
}

#[tokio::test]
async fn the_read_cache_is_bypassed_when_redis_goes_down() {
    let Some((mut redis, url)) = private_redis().await else { return };
    let app = app_on(&url, true).await;
    // API keys are checked against the store alone, so they still authenticate
    // without Redis; their user and permission reads go through the cache.
    let (_, owner) = api_key_user(&app, "down-owner", &["read", "write"]).await;
    let (reader_id, reader) = api_key_user(&app, "down-reader", &["read"]).await;
    let created = call(&app, &owner, Method::POST, "/api/v1/notebooks", Some(serde_json::json!({"name": "N"})));
    let notebook = format!("/api/v1/notebooks/{}", json_of(created.await, 201).await["id"].as_str().unwrap());
    let permissions = format!("{notebook}/permissions");
    let grant = serde_json::json!({"user_id": reader_id, "permission": "read"});
    json_of(call(&app, &owner, Method::PUT, &permissions, Some(grant)).await, 200).await;
    let hits = metric(&app, "aether_cache_requests_total", &[r#"namespace="access""#, r#"outcome="hit""#]).await;
    for _ in 0..2 {
        assert_eq!(call(&app, &reader, Method::GET, &notebook, None).await.status(), 200);
    }
    let after = metric(&app, "aether_cache_requests_total", &[r#"namespace="access""#, r#"outcome="hit""#]).await;
    assert!(after > hits, "cached while Redis is up");

    let _ = redis.0.kill();
    let _ = redis.0.wait();
    let errors = metric(&app, "aether_dependency_errors_total", &[r#"dependency="cache""#]).await;
    assert_eq!(call(&app, &reader, Method::GET, &notebook, None).await.status(), 200, "read from the store");
    // A write succeeds though its invalidation cannot reach Redis, and the next read
    // comes from the store, not from what was cached before.
    let revoke = serde_json::json!({"user_id": reader_id, "permission": null});
    assert_eq!(call(&app, &owner, Method::PUT, &permissions, Some(revoke)).await.status(), 204);
    assert_eq!(call(&app, &reader, Method::GET, &notebook, None).await.status(), 404, "the revocation holds");
    let counted = metric(&app, "aether_dependency_errors_total", &[r#"dependency="cache""#]).await;
    assert!(counted > errors, "cache failures are counted: {errors} -> {counted}");
    assert_eq!(app.client.get(app.url("/health")).send().await.unwrap().status(), 200, "the server lives on");
    app.shutdown().await;
}

/// Sends `signal` (`STOP`, `CONT`) to the private Redis.
fn signal(redis: &Redis, signal: &str) {
    let status = Command::new("kill").arg(format!("-{signal}")).arg(redis.0.id().to_string()).status().unwrap();
    assert!(status.success(), "kill -{signal}");
}

#[tokio::test]
async fn a_hanging_redis_is_not_waited_on_by_every_request() {
    let Some((redis, url)) = private_redis().await else { return };
    let app = app_on(&url, true).await;
    let (_, key) = api_key_user(&app, "hang-owner", &["read", "write"]).await;
    let counted = call(&app, &key, Method::GET, "/api/v1/notebooks", None).await;
    assert!(counted.headers().contains_key("ratelimit-remaining"), "counted in Redis while it answers");

    // A stopped process keeps its connections open and answers nothing: each call
    // would wait for the whole response timeout (5 s). The first request finds out;
    // the ones after it must not wait again (each asks Redis twice: the rate limit
    // and the cached user). The bound is the timeout of one call, for five requests.
    signal(&redis, "STOP");
    let first = call(&app, &key, Method::GET, "/api/v1/notebooks", None).await;
    assert_eq!(first.status(), 200, "fail-open, and the user is read from the store");
    let short_circuited = metric(&app, "aether_redis_calls_short_circuited_total", &[]).await;
    let started = std::time::Instant::now();
    for _ in 0..5 {
        let response = call(&app, &key, Method::GET, "/api/v1/notebooks", None).await;
        assert_eq!(response.status(), 200);
        assert!(!response.headers().contains_key("ratelimit-remaining"), "not counted: Redis is not asked");
    }
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(5), "requests waited on the hanging Redis: {elapsed:?} for five");
    let after = metric(&app, "aether_redis_calls_short_circuited_total", &[]).await;
    assert!(after >= short_circuited + 10.0, "calls failed at once: {short_circuited} -> {after}");

    // Once Redis answers again, a probe finds it and calls go to it again.
    signal(&redis, "CONT");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let response = call(&app, &key, Method::GET, "/api/v1/notebooks", None).await;
        assert_eq!(response.status(), 200);
        if response.headers().contains_key("ratelimit-remaining") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "Redis is not used again after it came back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    app.shutdown().await;
}
