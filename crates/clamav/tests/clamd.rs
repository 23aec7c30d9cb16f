//! Against a real clamd when `AETHER_TEST_CLAMAV_ADDR` is set (`scripts/test` starts
//! one with a generated test signature database).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use aether_clamav::ClamdScanner;
use aether_domain::scan::{ScanError, ScanVerdict, VirusScanner};

/// The EICAR test file, in two pieces so that this source is not one.
pub fn eicar() -> Vec<u8> {
    let mut bytes = br"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR".to_vec();
    bytes.extend_from_slice(b"-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*");
    bytes
}

#[tokio::test]
async fn clamd_finds_the_test_signatures() {
    let required = std::env::var("AETHER_TEST_REQUIRE_SERVICES").is_ok_and(|v| v == "1");
    let Ok(address) = std::env::var("AETHER_TEST_CLAMAV_ADDR") else {
        assert!(!required, "AETHER_TEST_REQUIRE_SERVICES=1 but AETHER_TEST_CLAMAV_ADDR is not set");
        eprintln!("NOT RUN: set AETHER_TEST_CLAMAV_ADDR (scripts/test does) to test against clamd");
        return;
    };
    assert_eq!(eicar().len(), 68);
    let scanner = ClamdScanner::new(address, Duration::from_secs(30));
    scanner.ping().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let verdict = scanner.scan(&write("eicar.com", &eicar())).await.unwrap();
    assert!(matches!(&verdict, ScanVerdict::Infected(name) if name.starts_with("Aether.Test.EICAR")), "{verdict:?}");
    let marker = scanner.scan(&write("marker.txt", b"AETHER-TEST-MALWARE-MARKER")).await.unwrap();
    assert!(matches!(&marker, ScanVerdict::Infected(name) if name.starts_with("Aether.Test.Marker")), "{marker:?}");
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(scanner.scan(&write("clean.bin", &big)).await.unwrap(), ScanVerdict::Clean);
}

#[tokio::test]
async fn an_unreachable_clamd_is_unavailable() {
    let scanner = ClamdScanner::new("127.0.0.1:1", Duration::from_secs(5));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x");
    std::fs::write(&path, b"x").unwrap();
    assert!(matches!(scanner.scan(&path).await, Err(ScanError::Unavailable(_))));
    assert!(matches!(scanner.ping().await, Err(ScanError::Unavailable(_))));
}
