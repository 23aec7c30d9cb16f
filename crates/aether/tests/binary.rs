//! The real `aether` binary as an operator runs it: start-up, the printed admin
//! password, the command-line tools, SIGTERM, and a `kill -9` that loses nothing.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

fn aether(data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_aether"));
    command.env_clear();
    command.env("PATH", std::env::var("PATH").unwrap_or_default());
    command.env("AETHER_DATA_DIR", data_dir);
    command.env("AETHER_LOG_LEVEL", "warn");
    for (key, value) in common::store_env() {
        command.env(key, value);
    }
    command
}

struct Server {
    child: Child,
    base_url: String,
    stderr: std::thread::JoinHandle<String>,
}

fn start(data_dir: &Path, admin_password: Option<&str>) -> Server {
    let mut command = aether(data_dir);
    command.args(["serve", "--listen", "127.0.0.1:0"]).stdout(Stdio::piped()).stderr(Stdio::piped());
    if let Some(password) = admin_password {
        command.env("AETHER_ADMIN_PASSWORD", password);
    }
    let mut child = command.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let base_url = line
        .trim()
        .strip_prefix("aether listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_owned();
    Server { child, base_url, stderr }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

async fn login(base_url: &str, username: &str, password: &str) -> Value {
    let response = client()
        .post(format!("{base_url}/api/v1/auth/token"))
        .form(&[("grant_type", "password"), ("username", username), ("password", password)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "login as {username}");
    response.json().await.unwrap()
}

#[tokio::test]
async fn kill_minus_nine_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), Some(common::ADMIN_PASSWORD));
    let tokens = login(&server.base_url, "admin", common::ADMIN_PASSWORD).await;
    let token = tokens["access_token"].as_str().unwrap().to_owned();
    let created = client()
        .post(format!("{}/api/v1/notebooks", server.base_url))
        .bearer_auth(&token)
        .json(&json!({"name": "Survives a crash"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    // SIGKILL straight after the 201: no chance to flush or shut down.
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    let mut restarted = start(dir.path(), Some(common::ADMIN_PASSWORD));
    let fetched = client()
        .get(format!("{}/api/v1/notebooks/{}", restarted.base_url, created["id"].as_str().unwrap()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(fetched.status(), 200, "the old token still works and the notebook is there");
    let fetched: Value = fetched.json().await.unwrap();
    assert_eq!(fetched["name"], "Survives a crash");
    // The refresh token issued before the crash also survives.
    let refreshed = client()
        .post(format!("{}/api/v1/auth/token", restarted.base_url))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", tokens["refresh_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), 200);
    restarted.child.kill().unwrap();
    restarted.child.wait().unwrap();
}

#[tokio::test]
async fn sigterm_shuts_down_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), Some(common::ADMIN_PASSWORD));
    let health = client().get(format!("{}/health", server.base_url)).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = server.child.wait().unwrap();
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
    let _ = server.stderr.join();
}

#[tokio::test]
async fn first_start_prints_a_generated_admin_password() {
    if common::store_kind() != aether::config::StoreKind::Sqlite {
        // A shared Neo4j already holds an admin from other tests; first start means an empty store.
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), None);
    let ready = client().get(format!("{}/ready", server.base_url)).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let stderr = server.stderr.join().unwrap();
    let password = stderr
        .lines()
        .find_map(|line| line.trim().strip_prefix("password: "))
        .unwrap_or_else(|| panic!("no generated password in: {stderr}"))
        .to_owned();

    let mut again = start(dir.path(), None);
    login(&again.base_url, "admin", &password).await;
    again.child.kill().unwrap();
    again.child.wait().unwrap();
    let second_stderr = again.stderr.join().unwrap();
    assert!(!second_stderr.contains("password: "), "the password is printed only once");
}

#[tokio::test]
async fn command_line_tools_work() {
    let dir = tempfile::tempdir().unwrap();
    let output = aether(dir.path()).arg("version").output().unwrap();
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("aether "));

    let output = aether(dir.path()).env("AETHER_NEO4J_PASSWORD", "very-secret-value").arg("config").output().unwrap();
    assert!(output.status.success());
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(printed.contains("listen = \"127.0.0.1:8080\""), "{printed}");
    assert!(!printed.contains("very-secret-value") && printed.contains("<redacted>"), "{printed}");

    let output = aether(dir.path()).env("AETHER_LISTEN", "nowhere").args(["serve"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(message.contains("AETHER_LISTEN"), "the message names the option: {message}");

    let output = aether(dir.path()).arg("migrate").output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("schema is up to date"));

    let username = format!("cli-{}", uuid::Uuid::now_v7().simple());
    let output = aether(dir.path())
        .args([
            "admin",
            "create-user",
            "--username",
            &username,
            "--password",
            "cli-password-1",
            "--role",
            "notebook-admin",
            "--role",
            "aether-user",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let output = aether(dir.path())
        .args(["admin", "create-user", "--username", &username, "--password", "cli-password-1"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("already taken"));
    let output = aether(dir.path())
        .args(["admin", "create-user", "--username", "x", "--password", "cli-password-1", "--role", "root"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown role"));

    let mut server = start(dir.path(), Some(common::ADMIN_PASSWORD));
    let tokens = login(&server.base_url, &username, "cli-password-1").await;
    let me: Value = client()
        .get(format!("{}/api/v1/users/me", server.base_url))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["roles"], json!(["notebook-admin", "aether-user"]));
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}

#[tokio::test]
async fn worker_runs_until_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut worker = aether(dir.path()).arg("worker").stderr(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(800));
    assert!(worker.try_wait().unwrap().is_none(), "the worker keeps running");
    let pid = worker.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = worker.wait().unwrap();
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
}
