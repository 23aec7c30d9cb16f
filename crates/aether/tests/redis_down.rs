//! Redis going away under a running server: rate limiting fails open or closed as
//! configured, `/ready` reports it, authenticated requests answer 503 (token
//! revocation lives in Redis), and nothing crashes. Each test runs its own
//! `redis-server` (from Debian, installed by scripts/install-deps) so that it can
//! kill it without disturbing the shared one.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::TestApp;

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
    let me = app.client.get(app.url("/api/v1/auth/me")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(me.status(), 503);
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
