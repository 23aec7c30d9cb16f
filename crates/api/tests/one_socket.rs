//! Architecture Invariant (ARCHITECTURE.md, `crates/api`): every WebSocket is opened
//! by `live.rs`, so that every live view gets the same limits, pings, buffer sizes and
//! closing rules. A route that upgraded a connection itself would skip them.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source directory") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            files.push(path);
        }
    }
}

#[test]
fn only_live_rs_upgrades_connections_to_websockets() {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&source, &mut files);
    assert!(files.len() > 10, "found the API's source files");
    let upgrading: Vec<String> = files
        .iter()
        .filter(|file| std::fs::read_to_string(file).expect("readable file").contains(".on_upgrade("))
        .map(|file| file.strip_prefix(&source).unwrap_or(file).display().to_string())
        .collect();
    assert_eq!(upgrading, vec!["live.rs".to_owned()], "WebSockets opened outside live.rs");
}
