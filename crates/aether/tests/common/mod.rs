//! Test support shared by the integration tests: which store to run on, and a
//! server started in-process on a free port.
#![allow(dead_code, clippy::unwrap_used)]

pub mod process;
pub mod store;

use std::time::Duration;

use aether::RunningServer;
use aether::config::{Config, Overrides, Secret, StoreKind};
use aether_domain::user::{Password, Role, Username};
use aether_services::accounts::AccountRequest;

pub const ADMIN_PASSWORD: &str = "test-admin-password-1";

/// `AETHER_TEST_STORE=neo4j` (set by scripts/test) runs these tests on Neo4j.
pub fn store_kind() -> StoreKind {
    match std::env::var("AETHER_TEST_STORE").as_deref() {
        Ok("neo4j") => StoreKind::Neo4j,
        _ => StoreKind::Sqlite,
    }
}

/// Environment variables that point a server at the test store, for child processes.
pub fn store_env() -> Vec<(String, String)> {
    match store_kind() {
        StoreKind::Sqlite => vec![("AETHER_STORE".into(), "sqlite".into())],
        StoreKind::Neo4j => vec![
            ("AETHER_STORE".into(), "neo4j".into()),
            ("AETHER_NEO4J_URI".into(), std::env::var("AETHER_TEST_NEO4J_URI").expect("AETHER_TEST_NEO4J_URI")),
            ("AETHER_NEO4J_USER".into(), std::env::var("AETHER_TEST_NEO4J_USER").unwrap_or_else(|_| "neo4j".into())),
            ("AETHER_NEO4J_PASSWORD".into(), std::env::var("AETHER_TEST_NEO4J_PASSWORD").unwrap_or_default()),
        ],
    }
}

pub fn test_config(data_dir: &std::path::Path) -> Config {
    let mut config = Config::load(None, &Overrides::default()).unwrap();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.data_dir = data_dir.to_owned();
    config.admin_password = secret(ADMIN_PASSWORD);
    config.store = store_kind();
    // Tests that share one Neo4j must not drain each other's outbox into their own
    // in-process buses; a test that needs the workers turns them on.
    config.run_workers = false;
    // Tests and benchmarks send bursts from one address; the rate limit tests turn limits on.
    config.rate_limit_per_user = 0;
    config.rate_limit_per_ip = 0;
    // The embedding model costs a second and ~100 MB per server: only the tests of
    // semantic search load it (`with_models`).
    config.embedding_model = "none".into();
    // Documents are processed by `aether extract`; the test binary is not `aether`.
    config.extractor_program = env!("CARGO_BIN_EXE_aether").to_owned();
    if config.store == StoreKind::Neo4j {
        config.neo4j_uri = std::env::var("AETHER_TEST_NEO4J_URI").expect("AETHER_TEST_NEO4J_URI");
        config.neo4j_user = std::env::var("AETHER_TEST_NEO4J_USER").unwrap_or_else(|_| "neo4j".into());
        config.neo4j_password = secret(&std::env::var("AETHER_TEST_NEO4J_PASSWORD").unwrap_or_default());
    }
    config
}

/// Turns the built-in embedding model on, from the models `scripts/test` installs;
/// `false` (and the test is NOT RUN) without them.
pub fn with_models(config: &mut Config) -> bool {
    let Some(dir) = service("AETHER_TEST_MODELS_DIR", "to test semantic search with the real model") else {
        return false;
    };
    config.embedding_model = "builtin".into();
    config.models_dir = dir;
    true
}

fn secret(text: &str) -> Secret {
    Secret::new(text)
}

#[allow(missing_debug_implementations)]
pub struct TestApp {
    pub server: RunningServer,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path());
        adjust(&mut config);
        let server = RunningServer::start(config).await.unwrap();
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        Self { server, client, dir }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base_url())
    }

    /// Creates a uniquely named local account and returns its name and password.
    pub async fn create_user(&self, prefix: &str, roles: Vec<Role>) -> (String, String) {
        let username = format!("{prefix}-{}", uuid::Uuid::now_v7().simple());
        let password = "a-long-test-password".to_owned();
        self.server
            .runtime
            .accounts
            .create_account(AccountRequest {
                username: Username::parse(&username).unwrap(),
                password: Password::parse(&password).unwrap(),
                email: None,
                full_name: None,
                roles,
            })
            .await
            .unwrap();
        (username, password)
    }

    pub async fn password_grant(&self, username: &str, password: &str) -> reqwest::Response {
        self.client
            .post(self.url("/api/v1/auth/token"))
            .form(&[("grant_type", "password"), ("username", username), ("password", password)])
            .send()
            .await
            .unwrap()
    }

    /// A new user's access token.
    pub async fn user_token(&self, prefix: &str) -> String {
        let (username, password) = self.create_user(prefix, vec![Role::User]).await;
        let response = self.password_grant(&username, &password).await;
        assert_eq!(response.status(), 200);
        let body: serde_json::Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn shutdown(self) {
        self.server.shutdown(Duration::from_secs(10)).await.unwrap();
    }
}

/// Asserts that `response` is a problem document with `status` and `code`, and returns it.
pub async fn assert_problem(response: reqwest::Response, status: u16, code: &str) -> serde_json::Value {
    assert_eq!(response.status().as_u16(), status, "status");
    let content_type = response.headers().get("content-type").unwrap().to_str().unwrap().to_owned();
    assert_eq!(content_type, "application/problem+json");
    let request_id = response.headers().get("x-request-id").unwrap().to_str().unwrap().to_owned();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status);
    assert_eq!(body["request_id"], request_id.as_str(), "problem carries the request id");
    assert_eq!(body["type"], format!("urn:aether:problem:{code}"));
    body
}

/// The user agent of requests made with [`call`], so audit records can be checked.
pub const USER_AGENT: &str = "aether-tests/1.0";

/// A request with a bearer credential and an optional JSON body.
pub async fn call(
    app: &TestApp,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> reqwest::Response {
    let mut request = app.client.request(method, app.url(path)).bearer_auth(token).header("user-agent", USER_AGENT);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

/// The JSON body of a response that must have `status` (the body is shown when not).
pub async fn json_of(response: reqwest::Response, status: u16) -> serde_json::Value {
    let got = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(got, status, "{body}");
    body
}

/// Every file under `dir`, recursively; none when it does not exist.
pub fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() { found.extend(files_under(&path)) } else { found.push(path) }
        }
    }
    found
}

/// The address of a real service that `scripts/test` starts, from the variable
/// `var`. Without it the test is reported NOT RUN, unless
/// `AETHER_TEST_REQUIRE_SERVICES=1` (scripts/test) makes that a failure.
pub fn service(var: &str, purpose: &str) -> Option<String> {
    if let Ok(value) = std::env::var(var) {
        return Some(value);
    }
    let required = std::env::var("AETHER_TEST_REQUIRE_SERVICES").is_ok_and(|v| v == "1");
    assert!(!required, "AETHER_TEST_REQUIRE_SERVICES=1 but {var} is not set");
    eprintln!("NOT RUN: set {var} (scripts/test does) {purpose}");
    None
}

/// The value of the series `name{labels…}` on `/metrics`, 0 when it is absent.
/// `labels` are `key="value"` pairs in any order.
pub async fn metric(app: &TestApp, name: &str, labels: &[&str]) -> f64 {
    let text = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|line| line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} ")))
        .find(|line| labels.iter().all(|label| line.contains(label)))
        .and_then(|line| line.rsplit(' ').next())
        .map_or(0.0, |value| value.parse().unwrap())
}

/// A new user who authenticates with a personal API key of `scopes`: their id and
/// the key. Every request made with a key reads its user from the store (or the
/// read cache); an API key needs no Redis to be checked.
pub async fn api_key_user(app: &TestApp, prefix: &str, scopes: &[&str]) -> (String, String) {
    let token = app.user_token(prefix).await;
    let me = json_of(call(app, &token, reqwest::Method::GET, "/api/v1/users/me", None).await, 200).await;
    let body = serde_json::json!({"name": "test", "scopes": scopes});
    let key =
        json_of(call(app, &token, reqwest::Method::POST, "/api/v1/users/me/api-keys", Some(body)).await, 201).await;
    (me["id"].as_str().unwrap().to_owned(), key["key"].as_str().unwrap().to_owned())
}
