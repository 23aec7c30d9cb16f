//! Audio and video: the rules for describing them, without running anything.
//!
//! The bytes are only recognised here (by their container signature); what is in them
//! (duration, codecs, picture size, tags) comes from `ffprobe`, run by the `aether-ocr`
//! crate's media tools inside the processing sandbox, and its JSON is read by
//! [`apply_probe`]. A video's poster frame is taken from [`poster_time`] into it. Speech
//! becomes text later, by a transcription service the worker calls, if one is configured.

use serde_json::{Map, Value};

use crate::{Extraction, Format};

/// Tags copied from the container into metadata (lower case, as users know them).
const TAGS: &[&str] = &["title", "artist", "album", "album_artist", "composer", "genre", "date", "comment", "language"];
/// A tag value longer than this is cut.
const MAX_TAG_CHARS: usize = 500;

/// Whether `format` is audio or video.
pub fn is_media(format: Format) -> bool {
    matches!(format, Format::Audio | Format::Video)
}

/// The demuxers ffprobe and ffmpeg may use on an upload. Playlist and reference
/// demuxers (HLS, concat, …) are left out: they would open other files or URLs.
pub const DEMUXERS: &str = "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,asf,flv,mpeg,mpegts,mpegvideo,mp3,wav,w64,flac,ogg,aac,aiff,amr,caf,wv,ape,dsf,au,h264,hevc";

/// Where a video's poster frame is taken: a tenth of the way in (past a black lead-in),
/// at most ten seconds, the start when the duration is unknown.
pub fn poster_time(duration_seconds: Option<f64>) -> f64 {
    match duration_seconds {
        Some(d) if d.is_finite() && d > 0.0 => (d * 0.1).min(10.0),
        _ => 0.0,
    }
}

/// Reads `ffprobe -print_format json -show_format -show_streams` output into the
/// extraction's metadata. A video without a video stream (an `.mp4` of sound only) becomes
/// audio. Returns the duration, if known.
pub fn apply_probe(extraction: &mut Extraction, probe_json: &[u8]) -> Result<Option<f64>, String> {
    let probe: Value = serde_json::from_slice(probe_json).map_err(|e| format!("unreadable ffprobe output: {e}"))?;
    let meta = &mut extraction.metadata;
    let format = &probe["format"];
    let duration = number(&format["duration"]).filter(|d| d.is_finite() && *d >= 0.0);
    if let Some(d) = duration {
        meta.insert("duration_seconds".into(), Value::from((d * 1000.0).round() / 1000.0));
    }
    if let Some(name) = format["format_name"].as_str() {
        meta.insert("container".into(), name.into());
    }
    if let Some(rate) = number(&format["bit_rate"]) {
        meta.insert("bit_rate".into(), Value::from(rate as u64));
    }
    let streams = probe["streams"].as_array().map(Vec::as_slice).unwrap_or_default();
    // Cover art in audio files is a "video" stream with the attached_pic disposition.
    let is_picture = |s: &Value| s["disposition"]["attached_pic"].as_u64() == Some(1);
    let video = streams.iter().find(|s| s["codec_type"] == "video" && !is_picture(s));
    let audio = streams.iter().find(|s| s["codec_type"] == "audio");
    if let Some(v) = video {
        copy_str(meta, "video_codec", &v["codec_name"]);
        copy_u64(meta, "width", &v["width"]);
        copy_u64(meta, "height", &v["height"]);
        if let Some(rate) = frame_rate(&v["avg_frame_rate"]).or_else(|| frame_rate(&v["r_frame_rate"])) {
            meta.insert("frame_rate".into(), Value::from((rate * 100.0).round() / 100.0));
        }
    }
    if let Some(a) = audio {
        copy_str(meta, "audio_codec", &a["codec_name"]);
        if let Some(rate) = number(&a["sample_rate"]) {
            meta.insert("sample_rate".into(), Value::from(rate as u64));
        }
        copy_u64(meta, "channels", &a["channels"]);
    }
    meta.insert("stream_count".into(), Value::from(streams.len()));
    if let Some(tags) = format["tags"].as_object() {
        for (key, value) in tags {
            let key = key.to_ascii_lowercase();
            if let (true, Some(value)) = (TAGS.contains(&key.as_str()), value.as_str()) {
                let value: String = value.trim().chars().take(MAX_TAG_CHARS).collect();
                if !value.is_empty() {
                    meta.insert(key, value.into());
                }
            }
        }
    }
    if extraction.format == Format::Video && video.is_none() && audio.is_some() {
        extraction.format = Format::Audio;
    }
    Ok(duration)
}

fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn frame_rate(value: &Value) -> Option<f64> {
    let (num, den) = value.as_str()?.split_once('/')?;
    let (num, den): (f64, f64) = (num.parse().ok()?, den.parse().ok()?);
    (den > 0.0 && num > 0.0).then(|| num / den)
}

fn copy_str(meta: &mut Map<String, Value>, key: &str, value: &Value) {
    if let Some(s) = value.as_str().filter(|s| !s.is_empty()) {
        meta.insert(key.into(), s.into());
    }
}

fn copy_u64(meta: &mut Map<String, Value>, key: &str, value: &Value) {
    if let Some(n) = value.as_u64() {
        meta.insert(key.into(), n.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Limits;

    fn video() -> Extraction {
        crate::extract(b"", "x", &Limits::default())
            .map(|mut e| {
                e.format = Format::Video;
                e
            })
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn probe_output_becomes_metadata() {
        let mut ex = video();
        let probe = br#"{"streams": [
            {"codec_type": "video", "codec_name": "h264", "width": 320, "height": 240, "avg_frame_rate": "10/1"},
            {"codec_type": "audio", "codec_name": "aac", "sample_rate": "44100", "channels": 1}],
          "format": {"format_name": "mov,mp4,m4a,3gp,3g2,mj2", "duration": "2.000000", "bit_rate": "51234",
                     "tags": {"TITLE": "Heron clip", "encoder": "Lavf59", "artist": " Ada "}}}"#;
        assert_eq!(apply_probe(&mut ex, probe), Ok(Some(2.0)));
        let m = &ex.metadata;
        assert_eq!(
            (m["video_codec"].as_str(), m["width"].as_u64(), m["frame_rate"].as_f64()),
            (Some("h264"), Some(320), Some(10.0))
        );
        assert_eq!(
            (m["audio_codec"].as_str(), m["sample_rate"].as_u64(), m["channels"].as_u64()),
            (Some("aac"), Some(44100), Some(1))
        );
        assert_eq!((m["title"].as_str(), m["artist"].as_str()), (Some("Heron clip"), Some("Ada")));
        assert!(m.get("encoder").is_none());
        assert_eq!(ex.format, Format::Video);
    }

    #[test]
    fn sound_in_a_video_container_is_audio_and_cover_art_is_not_video() {
        let mut ex = video();
        let probe = br#"{"streams": [{"codec_type": "audio", "codec_name": "mp3"},
            {"codec_type": "video", "codec_name": "png", "disposition": {"attached_pic": 1}}], "format": {}}"#;
        assert_eq!(apply_probe(&mut ex, probe), Ok(None));
        assert_eq!(ex.format, Format::Audio);
        assert!(ex.metadata.get("video_codec").is_none());
        assert!(apply_probe(&mut ex, b"not json").is_err());
    }

    #[test]
    fn poster_times() {
        assert_eq!(poster_time(Some(20.0)), 2.0);
        assert_eq!(poster_time(Some(3600.0)), 10.0);
        assert_eq!(poster_time(None), 0.0);
        assert_eq!(poster_time(Some(f64::NAN)), 0.0);
    }
}
