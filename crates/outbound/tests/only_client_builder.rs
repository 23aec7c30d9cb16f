//! Architecture Invariant (ARCHITECTURE.md): no `reqwest::Client` is built outside
//! `aether-outbound` except in tests and benchmarks, so every URL the server calls goes
//! through the outbound policy.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

fn sources(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

#[test]
fn outbound_clients_are_built_only_here() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut offenders = Vec::new();
    for krate in std::fs::read_dir(crates).unwrap().flatten() {
        let src = krate.path().join("src");
        if krate.file_name() == "outbound" || !src.is_dir() {
            continue;
        }
        let mut files = Vec::new();
        sources(&src, &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            // Unit tests sit after `#[cfg(test)]`; they may talk to local doubles.
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            for pattern in ["reqwest::Client::builder()", "reqwest::Client::new()", "ClientBuilder::new()"] {
                if code.contains(pattern) {
                    offenders.push(format!("{}: {pattern}", file.display()));
                }
            }
        }
    }
    assert!(offenders.is_empty(), "build outbound clients with aether_outbound::client_builder: {offenders:?}");
}
