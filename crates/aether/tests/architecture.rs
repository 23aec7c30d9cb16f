//! Architecture Invariant: dependencies point inward. The domain and the extraction
//! library do no IO; the services know only the domain (and the pure extraction
//! library); the HTTP layer knows the services and the domain, never a backend;
//! every adapter knows only the domain; only the binary crate wires them together.
//! Checked from each crate's `Cargo.toml`, so a new crate or dependency that breaks
//! the rule fails here (see ARCHITECTURE.md).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;

/// Each crate and the workspace crates it may depend on (`None`: any, the binary).
const ALLOWED: &[(&str, Option<&[&str]>)] = &[
    ("domain", Some(&[])),
    ("extract", Some(&[])),
    ("services", Some(&["aether-domain", "aether-extract"])),
    ("api", Some(&["aether-domain", "aether-services"])),
    ("store-sqlite", Some(&["aether-domain"])),
    ("store-neo4j", Some(&["aether-domain"])),
    ("store-conformance", Some(&["aether-domain"])),
    ("blob-store", Some(&["aether-domain"])),
    ("cache-redis", Some(&["aether-domain"])),
    ("events-kafka", Some(&["aether-domain"])),
    ("identity-keycloak", Some(&["aether-domain"])),
    ("auth-local", Some(&["aether-domain"])),
    ("audimodal", Some(&["aether-domain"])),
    ("clamav", Some(&["aether-domain"])),
    ("outbound", Some(&["aether-domain"])),
    ("embed", Some(&["aether-domain"])),
    ("openai", Some(&["aether-domain"])),
    ("ocr", Some(&["aether-extract"])),
    ("loadgen", Some(&[])),
    ("aether", None),
];

/// Storage and transport: each belongs to one adapter crate.
const BACKENDS: &[&str] = &["sqlx", "neo4rs", "redis", "rdkafka", "object_store", "reqwest", "clamav-client", "lettre"];

/// HTTP and its framework: the API's.
const HTTP: &[&str] = &["axum", "hyper", "hyper-util", "http", "tower", "tower-http", "utoipa"];

/// What each inner crate must not use: the domain and `extract` no IO at all (not even
/// the runtime or files); the services run on tokio but use no backend and no HTTP;
/// the API no backend.
const FORBIDDEN: &[(&str, &[&[&str]])] = &[
    ("domain", &[BACKENDS, HTTP, &["tokio", "tempfile"]]),
    ("extract", &[BACKENDS, HTTP, &["tokio", "tempfile"]]),
    ("services", &[BACKENDS, HTTP, &["tempfile"]]),
    ("api", &[BACKENDS]),
];

/// The normal (not dev or build) dependencies of every crate under `crates/`.
fn dependencies() -> BTreeMap<String, Vec<String>> {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let mut found = BTreeMap::new();
    for entry in std::fs::read_dir(&crates).unwrap() {
        let manifest = entry.unwrap().path().join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else { continue };
        let parsed: toml::Table = toml::from_str(&text).unwrap();
        let name = manifest.parent().unwrap().file_name().unwrap().to_string_lossy().into_owned();
        let deps = parsed.get("dependencies").and_then(toml::Value::as_table).map(|t| t.keys().cloned().collect());
        found.insert(name, deps.unwrap_or_default());
    }
    found
}

#[test]
fn every_crate_has_a_place_in_the_layers() {
    let crates = dependencies();
    assert!(crates.len() >= 16, "the crates were found: {:?}", crates.keys());
    for name in crates.keys() {
        assert!(ALLOWED.iter().any(|(allowed, _)| allowed == name), "crate `{name}` has no rule in ALLOWED");
    }
}

#[test]
fn dependencies_point_inward() {
    let crates = dependencies();
    for (name, allowed) in ALLOWED {
        let (Some(deps), Some(allowed)) = (crates.get(*name), allowed) else { continue };
        for dep in deps.iter().filter(|dep| dep.starts_with("aether")) {
            assert!(allowed.contains(&dep.as_str()), "`{name}` depends on `{dep}`; it may depend on {allowed:?}");
        }
    }
}

#[test]
fn inner_crates_do_no_io_of_the_outer_ones() {
    let crates = dependencies();
    for (name, forbidden) in FORBIDDEN {
        let deps = crates.get(*name).expect("a listed crate");
        for dep in deps {
            let outside = forbidden.iter().any(|group| group.contains(&dep.as_str()));
            assert!(!outside, "`{name}` depends on `{dep}`, which belongs outside it");
        }
    }
}
