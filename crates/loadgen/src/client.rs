//! One keep-alive HTTP/1.1 connection per client, reconnected if the server closes it.

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Where the server is and the bearer token the load uses.
#[derive(Debug, Clone)]
pub struct Server {
    authority: String,
    token: Option<String>,
}

impl Server {
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let Some(authority) = url.strip_prefix("http://") else { bail!("--url must start with http://") };
        Ok(Self { authority: authority.trim_end_matches('/').to_owned(), token: None })
    }

    pub fn with_token(self, token: String) -> Self {
        Self { token: Some(token), ..self }
    }

    /// `host:port`.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    pub async fn connect(&self) -> anyhow::Result<Connection> {
        let sender = handshake(&self.authority).await?;
        Ok(Connection { server: self.clone(), sender })
    }

    pub async fn password_token(&self, username: &str, password: &str) -> anyhow::Result<String> {
        let form = format!("grant_type=password&username={}&password={}", form_encode(username), form_encode(password));
        let mut connection = self.connect().await?;
        let request = connection
            .builder(Method::POST, "/api/v1/auth/token")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(form)))?;
        let (status, body) = connection.send(request).await?;
        if status != StatusCode::OK {
            bail!("token request: {status} {}", String::from_utf8_lossy(&body));
        }
        let body: serde_json::Value = serde_json::from_slice(&body)?;
        body["access_token"].as_str().map(str::to_owned).ok_or_else(|| anyhow!("no access_token in {body}"))
    }
}

fn form_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (byte as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

async fn handshake(authority: &str) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(authority).await.with_context(|| format!("connecting to {authority}"))?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        // The connection ends when the client is dropped or the server closes it.
        let _ = connection.await;
    });
    Ok(sender)
}

/// A client's connection.
#[derive(Debug)]
pub struct Connection {
    server: Server,
    sender: SendRequest<Full<Bytes>>,
}

impl Connection {
    /// A request builder with the host and, once signed in, the bearer token.
    pub fn builder(&self, method: Method, path: &str) -> hyper::http::request::Builder {
        let builder = Request::builder().method(method).uri(path).header("host", &self.server.authority);
        match &self.server.token {
            Some(token) => builder.header("authorization", format!("Bearer {token}")),
            None => builder,
        }
    }

    /// Sends a request and reads the whole response body.
    pub async fn send(&mut self, request: Request<Full<Bytes>>) -> anyhow::Result<(StatusCode, Bytes)> {
        if self.sender.ready().await.is_err() {
            self.sender = handshake(&self.server.authority).await?;
        }
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }

    pub async fn get(&mut self, path: &str) -> anyhow::Result<(StatusCode, Bytes)> {
        let request = self.builder(Method::GET, path).body(Full::new(Bytes::new()))?;
        self.send(request).await
    }

    pub async fn json(
        &mut self,
        method: Method,
        path: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let request = self
            .builder(method, path)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(serde_json::to_vec(body)?)))?;
        self.send(request).await
    }
}
