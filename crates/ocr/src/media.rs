//! Audio and video: `ffprobe` describes them and `ffmpeg` takes a video's poster
//! frame, as bounded child processes inside the processing sandbox, like Tesseract.
//!
//! Both read the upload from its scratch file (an MP4 whose index is at its end cannot
//! be read from a pipe), through the `file` protocol only and with only the container
//! demuxers of [`DEMUXERS`]: playlist and reference formats (HLS, concat) that would
//! open other files or URLs are refused, so a crafted upload cannot make them read the
//! server's files or call out. What the output means is `aether_extract::media`'s rule.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aether_extract::media::{DEMUXERS, apply_probe, is_media, poster_time};
use aether_extract::{Extraction, Format, Limits};
use serde::{Deserialize, Serialize};

use crate::{find_program, run};

/// ffprobe (and ffmpeg, for poster frames) found, as they cross into the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaTools {
    pub ffprobe: PathBuf,
    /// None: no poster frames (metadata still comes).
    pub ffmpeg: Option<PathBuf>,
    /// `ffprobe version 5.1.x`, recorded with each description.
    pub version: String,
}

impl MediaTools {
    /// Finds `ffprobe` and `ffmpeg` in `path` (a `PATH` value) and checks that ffprobe runs.
    pub fn locate(path: Option<&OsStr>) -> Result<Self, String> {
        let ffprobe =
            find_program("ffprobe", path).ok_or_else(|| "ffprobe is not installed (Debian: ffmpeg)".to_owned())?;
        let output = run(&ffprobe, &[OsStr::new("-version")], None, Instant::now() + Duration::from_secs(10))
            .map_err(|e| format!("{} -version: {e}", ffprobe.display()))?;
        let first = String::from_utf8_lossy(&output).lines().next().unwrap_or("ffprobe").to_owned();
        // "ffprobe version 5.1.6-0+deb12u1 Copyright ..." → "ffprobe 5.1.6-0+deb12u1"
        let version = match first.split_whitespace().collect::<Vec<_>>().as_slice() {
            [name, "version", number, ..] => format!("{name} {number}"),
            _ => first,
        };
        Ok(Self { ffprobe, ffmpeg: find_program("ffmpeg", path), version })
    }

    /// Describes the audio or video file at `input` into `extraction` (metadata, and a
    /// poster frame for video) before `deadline`. Failures are warnings: the file is
    /// kept with what is known.
    pub fn describe(&self, extraction: &mut Extraction, input: &Path, limits: &Limits, deadline: Instant) {
        if !is_media(extraction.format) {
            return;
        }
        let mut args = common_args();
        args.extend(["-print_format", "json", "-show_format", "-show_streams"].map(OsString::from));
        args.push(file_url(input));
        let duration = match run(&self.ffprobe, &args, None, deadline) {
            Ok(json) => match apply_probe(extraction, &json) {
                Ok(duration) => duration,
                Err(why) => return extraction.warnings.push(format!("audio/video metadata: {why}")),
            },
            Err(why) => {
                return extraction.warnings.push(format!("ffprobe could not read the file ({why}); no metadata"));
            }
        };
        extraction.metadata.insert("media_engine".into(), self.version.clone().into());
        if extraction.format != Format::Video {
            return;
        }
        let Some(ffmpeg) = &self.ffmpeg else {
            return extraction.warnings.push("ffmpeg is not installed: no poster frame".into());
        };
        let pixels = ["width", "height"]
            .iter()
            .map(|key| extraction.metadata.get(*key).and_then(serde_json::Value::as_u64).unwrap_or(0))
            .product::<u64>();
        if pixels > limits.max_image_pixels {
            return extraction.warnings.push(format!("{pixels} pixels a frame: no poster frame"));
        }
        // A frame a tenth of the way in; if the file ends earlier than it says, the first.
        let at = poster_time(duration);
        let frame = poster(ffmpeg, input, at, limits.thumbnail_size, deadline).and_then(|png| {
            if png.is_empty() && at > 0.0 {
                poster(ffmpeg, input, 0.0, limits.thumbnail_size, deadline)
            } else {
                Ok(png)
            }
        });
        match frame {
            Ok(png) if !png.is_empty() => {
                if let Ok(image) = image_size(&png) {
                    extraction.metadata.insert("thumbnail_width".into(), image.0.into());
                    extraction.metadata.insert("thumbnail_height".into(), image.1.into());
                }
                extraction.thumbnail_png = Some(png);
            }
            Ok(_) => extraction.warnings.push("the video has no frame to show".into()),
            Err(why) => extraction.warnings.push(format!("ffmpeg could not take a poster frame ({why})")),
        }
    }
}

/// Quiet, one thread, only local files, only container demuxers.
fn common_args() -> Vec<OsString> {
    ["-v", "error", "-threads", "1", "-protocol_whitelist", "file", "-format_whitelist", DEMUXERS]
        .map(OsString::from)
        .to_vec()
}

/// `file:` + the path, so a name with a colon is never taken for another protocol.
fn file_url(input: &Path) -> OsString {
    let mut url = OsString::from("file:");
    url.push(input.as_os_str());
    url
}

/// One frame at `seconds`, fitted within `size` pixels (never enlarged), as PNG on
/// standard output.
fn poster(ffmpeg: &Path, input: &Path, seconds: f64, size: u32, deadline: Instant) -> Result<Vec<u8>, String> {
    let mut args = common_args();
    args.extend(["-ss".into(), format!("{seconds:.3}").into(), "-i".into(), file_url(input)]);
    let scale = format!("scale=w='min({size},iw)':h='min({size},ih)':force_original_aspect_ratio=decrease");
    args.extend(
        ["-frames:v", "1", "-an", "-vf", &scale, "-f", "image2pipe", "-c:v", "png", "pipe:1"].map(OsString::from),
    );
    run(ffmpeg, &args, None, deadline)
}

/// Width and height from a PNG's header.
fn image_size(png: &[u8]) -> Result<(u32, u32), String> {
    let header = png.get(16..24).ok_or("not a PNG")?;
    let width = u32::from_be_bytes(header[..4].try_into().map_err(|_| "not a PNG")?);
    let height = u32::from_be_bytes(header[4..].try_into().map_err(|_| "not a PNG")?);
    Ok((width, height))
}
