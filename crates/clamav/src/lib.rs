//! [`VirusScanner`] over ClamAV's daemon: each file is streamed to `clamd` with the
//! `INSTREAM` command on a fresh TCP connection, through the `clamav-client` crate.
#![forbid(unsafe_code)]

use std::path::Path;
use std::time::Duration;

use aether_domain::scan::{ScanError, ScanVerdict, VirusScanner};
use async_trait::async_trait;

/// A clamd reached over TCP at `address` (`host:port`).
#[derive(Debug, Clone)]
pub struct ClamdScanner {
    address: String,
    timeout: Duration,
}

impl ClamdScanner {
    pub fn new(address: impl Into<String>, timeout: Duration) -> Self {
        Self { address: address.into(), timeout }
    }
}

/// Reads clamd's reply: `stream: OK`, `stream: <signature> FOUND` or `… ERROR`.
fn verdict(reply: &[u8]) -> Result<ScanVerdict, ScanError> {
    let text = String::from_utf8_lossy(reply);
    let text = text.trim_end_matches(['\0', '\n']).trim();
    let body = text.strip_prefix("stream:").unwrap_or(text).trim();
    if let Some(signature) = body.strip_suffix("FOUND") {
        return Ok(ScanVerdict::Infected(signature.trim().to_owned()));
    }
    if body == "OK" {
        return Ok(ScanVerdict::Clean);
    }
    Err(ScanError::Refused(body.chars().take(200).collect()))
}

#[async_trait]
impl VirusScanner for ClamdScanner {
    async fn scan(&self, path: &Path) -> Result<ScanVerdict, ScanError> {
        let connection = clamav_client::tokio::Tcp { host_address: self.address.as_str() };
        let reply = tokio::time::timeout(self.timeout, clamav_client::tokio::scan_file(path, connection, None))
            .await
            .map_err(|_| ScanError::Unavailable("clamd did not answer in time".into()))?
            .map_err(|error| ScanError::Unavailable(error.to_string()))?;
        verdict(&reply)
    }

    async fn ping(&self) -> Result<(), ScanError> {
        let connection = clamav_client::tokio::Tcp { host_address: self.address.as_str() };
        let reply = tokio::time::timeout(Duration::from_secs(5), clamav_client::tokio::ping(connection))
            .await
            .map_err(|_| ScanError::Unavailable("clamd did not answer in time".into()))?
            .map_err(|error| ScanError::Unavailable(error.to_string()))?;
        if reply.starts_with(b"PONG") { Ok(()) } else { Err(ScanError::Unavailable("unexpected reply".into())) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_read() {
        assert_eq!(verdict(b"stream: OK\0"), Ok(ScanVerdict::Clean));
        assert_eq!(
            verdict(b"stream: Aether.Test.EICAR.UNOFFICIAL FOUND\0"),
            Ok(ScanVerdict::Infected("Aether.Test.EICAR.UNOFFICIAL".into()))
        );
        assert!(matches!(verdict(b"INSTREAM size limit exceeded. ERROR\0"), Err(ScanError::Refused(_))));
    }
}
