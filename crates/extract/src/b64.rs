//! Serde adapter so `thumbnail_png` is a compact base64 string in JSON rather than an array of
//! numbers (a 256px PNG would otherwise be ~4x larger on the wire).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serializer};

pub(crate) fn serialize<S: Serializer>(bytes: &Option<Vec<u8>>, serializer: S) -> Result<S::Ok, S::Error> {
    match bytes {
        Some(bytes) => serializer.serialize_some(&STANDARD.encode(bytes)),
        None => serializer.serialize_none(),
    }
}

pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Vec<u8>>, D::Error> {
    let encoded: Option<String> = Option::deserialize(deserializer)?;
    encoded.map(|s| STANDARD.decode(s).map_err(serde::de::Error::custom)).transpose()
}
