//! The real `aether` binary as a child process, for tests that need several
//! processes (replicas, workers) or a process to kill.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

/// `aether` configured by `AETHER_*` variables only: the data directory, the test
/// store, warnings-only logs, and the real extractor. Callers add the rest.
pub fn aether_command(data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_aether"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AETHER_DATA_DIR", data_dir)
        .env("AETHER_LOG_LEVEL", "warn")
        .env("AETHER_EXTRACTOR_PROGRAM", env!("CARGO_BIN_EXE_aether"));
    for (key, value) in super::store_env() {
        command.env(key, value);
    }
    command
}

/// A child process killed when dropped, so that a failing test leaves none behind.
#[derive(Debug)]
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `aether serve` on a free port and returns it with its base URL, read from
/// the line the server prints first. Stderr is inherited unless the command says
/// otherwise.
pub fn serve(mut command: Command) -> (KillOnDrop, String) {
    command.args(["serve", "--listen", "127.0.0.1:0"]).stdout(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let base_url = listening_url(&mut child);
    (KillOnDrop(child), base_url)
}

/// The base URL from `aether listening on <url>`, the first line a server prints.
pub fn listening_url(child: &mut Child) -> String {
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    line.trim()
        .strip_prefix("aether listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_owned()
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

/// An access token from the password grant.
pub async fn password_token(base_url: &str, username: &str, password: &str) -> String {
    let response = http()
        .post(format!("{base_url}/api/v1/auth/token"))
        .form(&[("grant_type", "password"), ("username", username), ("password", password)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "login as {username}");
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// Creates a notebook and returns its id.
pub async fn create_notebook(base_url: &str, token: &str, name: &str) -> String {
    let response = http()
        .post(format!("{base_url}/api/v1/notebooks"))
        .bearer_auth(token)
        .json(&json!({ "name": name }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "create notebook {name}");
    let body: Value = response.json().await.unwrap();
    body["id"].as_str().unwrap().to_owned()
}
