//! Personal data in text: what the processors' findings become, and redaction of
//! text and metadata by the notebook's mode.

use std::collections::BTreeMap;

use aether_domain::compliance::{ComplianceSettings, RedactionMode};
use aether_extract::pii;

/// Whether a notebook's documents are scanned for personal data: always when they are
/// redacted (redaction needs the findings), and when detection is on (the default).
pub(super) fn scans_pii(settings: &ComplianceSettings) -> bool {
    settings.pii_detection || settings.redaction_mode != RedactionMode::None
}

/// Extracted metadata with personal data redacted from every string in it (e-mail
/// senders and recipients, authors …), when the notebook redacts.
pub fn redact_metadata(
    metadata: serde_json::Map<String, serde_json::Value>,
    redaction: RedactionMode,
) -> serde_json::Map<String, serde_json::Value> {
    fn redact(value: serde_json::Value, redaction: RedactionMode) -> serde_json::Value {
        match value {
            serde_json::Value::String(text) => match scan_text(&text, redaction).1 {
                Some(redacted) => serde_json::Value::String(redacted),
                None => serde_json::Value::String(text),
            },
            serde_json::Value::Array(items) => items.into_iter().map(|item| redact(item, redaction)).collect(),
            serde_json::Value::Object(map) => {
                serde_json::Value::Object(map.into_iter().map(|(k, v)| (k, redact(v, redaction))).collect())
            }
            other => other,
        }
    }
    if redaction == RedactionMode::None {
        return metadata;
    }
    metadata.into_iter().map(|(key, value)| (key, redact(value, redaction))).collect()
}

/// Personal data in `text`, counted per kind, and the redacted text when the mode
/// asks for one.
pub fn scan_text(text: &str, redaction: RedactionMode) -> (BTreeMap<String, usize>, Option<String>) {
    let findings = pii::scan(text);
    let mut counts = BTreeMap::new();
    for (kind, count) in pii::summarize(&findings) {
        let name = serde_json::to_value(kind).ok().and_then(|v| v.as_str().map(str::to_owned));
        counts.insert(name.unwrap_or_else(|| format!("{kind:?}")), count);
    }
    let style = match redaction {
        RedactionMode::None => None,
        RedactionMode::Mask => Some(pii::RedactionStyle::Mask),
        RedactionMode::Remove => Some(pii::RedactionStyle::Remove),
    };
    let redacted = style.map(|style| pii::redact(text, &findings, style));
    (counts, redacted)
}
