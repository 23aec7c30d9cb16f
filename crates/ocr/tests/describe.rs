//! Audio and video described by the real ffprobe, and a video's poster frame taken by
//! the real ffmpeg, on files ffmpeg made (`tests/fixtures/make.sh`). Runs where
//! `ffprobe` is on the PATH; `scripts/test` installs it and sets `AETHER_TEST_MEDIA=1`,
//! which makes its absence a failure.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aether_extract::{Extraction, Format, Limits, extract};
use aether_ocr::MediaTools;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn tools() -> Option<MediaTools> {
    match MediaTools::locate(std::env::var_os("PATH").as_deref()) {
        Ok(tools) => Some(tools),
        Err(why) if std::env::var_os("AETHER_TEST_MEDIA").is_none() => {
            eprintln!("skipped: {why}");
            None
        }
        Err(why) => panic!("AETHER_TEST_MEDIA is set but ffprobe is unavailable: {why}"),
    }
}

fn described(tools: &MediaTools, path: &Path, name: &str) -> Extraction {
    let bytes = std::fs::read(path).unwrap();
    let mut extraction = extract(&bytes, name, &Limits::default()).unwrap();
    tools.describe(&mut extraction, path, &Limits::default(), Instant::now() + Duration::from_secs(60));
    extraction
}

#[test]
fn audio_has_its_duration_codec_and_tags() {
    let Some(tools) = tools() else { return };
    assert!(tools.version.starts_with("ffprobe "), "{}", tools.version);
    let mp3 = described(&tools, &fixture("tone.mp3"), "tone.mp3");
    assert_eq!((mp3.format, mp3.content_type.as_str()), (Format::Audio, "audio/mpeg"));
    let m = &mp3.metadata;
    let duration = m["duration_seconds"].as_f64().unwrap();
    assert!((1.9..2.2).contains(&duration), "{duration}");
    assert_eq!(
        (m["audio_codec"].as_str(), m["channels"].as_u64(), m["sample_rate"].as_u64()),
        (Some("mp3"), Some(1), Some(44100))
    );
    assert_eq!((m["title"].as_str(), m["artist"].as_str()), (Some("Heron call"), Some("Ada Example")));
    assert!(mp3.thumbnail_png.is_none() && mp3.text.is_none());
    assert!(mp3.warnings.is_empty(), "{:?}", mp3.warnings);
}

#[test]
fn video_has_its_picture_and_a_poster_frame() {
    let Some(tools) = tools() else { return };
    // The MP4's index is at its end, as ffmpeg writes by default: read from the file.
    let mp4 = described(&tools, &fixture("clip.mp4"), "clip.mp4");
    assert_eq!((mp4.format, mp4.content_type.as_str()), (Format::Video, "video/mp4"));
    let m = &mp4.metadata;
    assert_eq!(
        (m["video_codec"].as_str(), m["width"].as_u64(), m["height"].as_u64()),
        (Some("h264"), Some(160), Some(120))
    );
    assert_eq!((m["frame_rate"].as_f64(), m["audio_codec"].as_str()), (Some(10.0), Some("aac")));
    assert_eq!(m["title"], "Heron clip");
    let png = mp4.thumbnail_png.as_deref().expect("a poster frame");
    let poster = image::load_from_memory(png).unwrap();
    assert_eq!((poster.width(), poster.height()), (160, 120), "fits within 256 pixels, aspect kept");
    assert_eq!((m["thumbnail_width"].as_u64(), m["thumbnail_height"].as_u64()), (Some(160), Some(120)));
}

#[test]
fn damaged_media_is_a_warning() {
    let Some(tools) = tools() else { return };
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("clip.mp4")).unwrap();
    let cut = dir.path().join("cut.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    let damaged = described(&tools, &cut, "cut.mp4");
    assert_eq!(damaged.format, Format::Video);
    assert!(damaged.warnings.iter().any(|w| w.contains("ffprobe could not read")), "{:?}", damaged.warnings);
    assert!(damaged.thumbnail_png.is_none());
}

#[test]
fn playlists_and_references_are_not_followed() {
    let Some(tools) = tools() else { return };
    // A concat script that would make ffprobe open another file (a name beside it, which
    // ffprobe's own safe mode allows): ffprobe must refuse the format rather than read it,
    // whatever the bytes were taken for.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("tone.mp3"), dir.path().join("tone.mp3")).unwrap();
    let script = dir.path().join("clip.mp4");
    std::fs::write(&script, "ffconcat version 1.0\nfile 'tone.mp3'\n").unwrap();
    let mut extraction = extract(b"", "clip.mp4", &Limits::default()).unwrap();
    extraction.format = Format::Video;
    tools.describe(&mut extraction, &script, &Limits::default(), Instant::now() + Duration::from_secs(30));
    assert!(extraction.metadata.get("audio_codec").is_none(), "the concat demuxer ran: {:?}", extraction.metadata);
    assert!(extraction.warnings.iter().any(|w| w.contains("ffprobe could not read")), "{:?}", extraction.warnings);
}
