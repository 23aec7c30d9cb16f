//! A notebook's compliance settings: how documents placed in it are scanned,
//! redacted and kept. Typed and validated here; stored as JSON.

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// What redaction does to detected PII.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedactionMode {
    /// Detect and report only.
    #[default]
    None,
    /// Replace each finding with a mask (`[REDACTED:EMAIL]`).
    Mask,
    /// Remove findings from the redacted copy.
    Remove,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ComplianceSettings {
    /// Scan documents for personal data and flag what is found (on unless turned off;
    /// redaction needs it and turns it on).
    pub pii_detection: bool,
    pub redaction_mode: RedactionMode,
    /// Days documents are kept; `None` keeps them until deleted.
    pub retention_days: Option<u32>,
    /// MIME types accepted for upload (`application/pdf`, `image/*`); empty allows all.
    pub allowed_content_types: Vec<String>,
    /// HIPAA mode: requires PII detection and redaction.
    pub hipaa_mode: bool,
}

impl Default for ComplianceSettings {
    fn default() -> Self {
        Self {
            pii_detection: true,
            redaction_mode: RedactionMode::None,
            retention_days: None,
            allowed_content_types: Vec::new(),
            hipaa_mode: false,
        }
    }
}

impl ComplianceSettings {
    pub const MAX_RETENTION_DAYS: u32 = 36_500;
    pub const MAX_CONTENT_TYPES: usize = 100;

    /// Parses and validates settings sent by a client; unknown keys are rejected.
    pub fn parse(value: serde_json::Value) -> Result<Self, ValidationError> {
        // serde reads a struct from an array of its fields in order too (`[]` would be all
        // defaults): only an object is settings.
        if !value.is_object() {
            return Err(ValidationError::new("compliance_settings", "must be an object"));
        }
        let settings: ComplianceSettings = serde_json::from_value(value)
            .map_err(|error| ValidationError::new("compliance_settings", error.to_string()))?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ValidationError> {
        let invalid = |message: &str| Err(ValidationError::new("compliance_settings", message));
        if self.retention_days.is_some_and(|days| days == 0 || days > Self::MAX_RETENTION_DAYS) {
            return invalid("retention_days must be between 1 and 36500");
        }
        if self.allowed_content_types.len() > Self::MAX_CONTENT_TYPES {
            return invalid("allowed_content_types may list at most 100 types");
        }
        for content_type in &self.allowed_content_types {
            if !is_media_range(content_type) {
                return invalid("allowed_content_types must be MIME types like application/pdf or image/*");
            }
        }
        if self.hipaa_mode && (!self.pii_detection || self.redaction_mode == RedactionMode::None) {
            return invalid("hipaa_mode requires pii_detection and a redaction_mode other than none");
        }
        Ok(())
    }
}

fn is_media_range(text: &str) -> bool {
    let token = |part: &str| {
        !part.is_empty()
            && part.len() <= 127
            && part.chars().all(|c| c.is_ascii_alphanumeric() || "!#$&-^_.+".contains(c))
    };
    match text.split_once('/') {
        Some((kind, "*")) => token(kind),
        Some((kind, subtype)) => token(kind) && token(subtype),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_an_object_is_settings() {
        for not_an_object in [json!([]), json!([true, "mask"]), json!("mask"), json!(1)] {
            assert!(ComplianceSettings::parse(not_an_object.clone()).is_err(), "{not_an_object}");
        }
    }

    #[test]
    fn defaults_and_full_settings_parse() {
        assert_eq!(ComplianceSettings::parse(json!({})), Ok(ComplianceSettings::default()));
        let settings = ComplianceSettings::parse(json!({
            "pii_detection": true, "redaction_mode": "mask", "retention_days": 365,
            "allowed_content_types": ["application/pdf", "image/*"], "hipaa_mode": true
        }))
        .expect("valid");
        assert_eq!(settings.redaction_mode, RedactionMode::Mask);
        assert_eq!(settings.retention_days, Some(365));
    }

    /// `pii_detection` defaults to true, so HIPAA mode needs only a redaction mode
    /// (the OpenAPI schema says the same).
    #[test]
    fn hipaa_mode_takes_the_default_pii_detection() {
        let settings = ComplianceSettings::parse(json!({"hipaa_mode": true, "redaction_mode": "mask"})).expect("valid");
        assert!(settings.pii_detection && settings.hipaa_mode);
        assert!(
            ComplianceSettings::parse(json!({"hipaa_mode": true, "pii_detection": false, "redaction_mode": "mask"}))
                .is_err()
        );
    }

    #[test]
    fn invalid_settings_are_refused() {
        for bad in [
            json!({"pii_scan": true}),
            json!({"retention_days": 0}),
            json!({"retention_days": -1}),
            json!({"redaction_mode": "shred"}),
            json!({"allowed_content_types": ["pdf"]}),
            json!({"hipaa_mode": true}),
            json!({"hipaa_mode": true, "pii_detection": true}),
        ] {
            assert!(ComplianceSettings::parse(bad.clone()).is_err(), "{bad}");
        }
    }
}
