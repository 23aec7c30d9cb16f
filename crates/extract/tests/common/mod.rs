//! Helpers shared by the tests that read the real-tool corpus (`tests/corpus`).
#![allow(dead_code)]

use aether_extract::{Extraction, Limits, extract};
use serde_json::Value;

/// A corpus file, by its path under `tests/corpus`.
pub fn corpus(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/corpus/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A corpus file extracted with the default limits, which must succeed.
pub fn ok(name: &str) -> Extraction {
    match extract(&corpus(name), name, &Limits::default()) {
        Ok(ex) => ex,
        Err(e) => panic!("{name}: {e}"),
    }
}

pub fn text(ex: &Extraction) -> &str {
    ex.text.as_deref().unwrap_or_default()
}

pub fn meta<'a>(ex: &'a Extraction, key: &str) -> &'a Value {
    ex.metadata.get(key).unwrap_or(&Value::Null)
}
