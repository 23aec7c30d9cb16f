//! Raster images (png, jpeg, gif, webp, tiff, bmp): dimensions, format and a PNG thumbnail. No text here:
//! OCR runs after extraction (`crate::ocr`, `aether-ocr`).
//!
//! The header's claimed size is checked against `max_image_pixels` before any pixel is decoded, and
//! the decoder itself runs under `image::Limits`, so a 60000×60000 header costs nothing.

use std::io::Cursor;

use image::{ImageFormat, ImageReader};

use crate::out::Out;
use crate::{ExtractError, Limits};

/// Bytes per pixel the decoder may hold at once: 16-bit RGBA plus headroom for the thumbnail.
const BYTES_PER_PIXEL: u64 = 10;

pub(crate) fn extract(bytes: &[u8], limits: &Limits, out: &mut Out) -> Result<(), ExtractError> {
    let reader = || {
        ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| ExtractError::Malformed(format!("image: {e}")))
    };
    let format = reader()?.format().ok_or_else(|| ExtractError::Malformed("unrecognised image data".into()))?;
    let (width, height) =
        reader()?.into_dimensions().map_err(|e| ExtractError::Malformed(format!("image header: {e}")))?;
    out.meta("width", width);
    out.meta("height", height);
    out.meta("image_format", format_name(format));
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_image_pixels {
        return Err(ExtractError::LimitExceeded(format!(
            "image is {width}x{height} = {pixels} pixels, more than max_image_pixels ({})",
            limits.max_image_pixels
        )));
    }

    let mut decoder_limits = image::Limits::default();
    decoder_limits.max_image_width = Some(width);
    decoder_limits.max_image_height = Some(height);
    decoder_limits.max_alloc = Some(limits.max_image_pixels.saturating_mul(BYTES_PER_PIXEL).max(1 << 20));
    let mut reader = reader()?;
    reader.limits(decoder_limits);
    let image = match reader.decode() {
        Ok(image) => image,
        Err(image::ImageError::Limits(l)) => {
            return Err(ExtractError::LimitExceeded(format!("image decoder limit: {l}")));
        }
        // TIFF has compressions the decoder lacks (CCITT fax among them, the usual
        // one of scans) that OCR still reads: no thumbnail then, not a failure.
        Err(image::ImageError::Unsupported(e)) if format == ImageFormat::Tiff => {
            out.warn(format!("no thumbnail: {e}"));
            return Ok(());
        }
        Err(other) => return Err(ExtractError::Malformed(format!("image: {other}"))),
    };
    out.meta("color_type", format!("{:?}", image.color()).to_ascii_lowercase());

    let size = limits.thumbnail_size.max(1);
    let thumb = if width > size || height > size { image.thumbnail(size, size) } else { image };
    let mut png = Cursor::new(Vec::new());
    match thumb.write_to(&mut png, ImageFormat::Png) {
        Ok(()) => {
            out.meta("thumbnail_width", thumb.width());
            out.meta("thumbnail_height", thumb.height());
            out.thumbnail_png = Some(png.into_inner());
        }
        Err(e) => out.warn(format!("thumbnail could not be encoded: {e}")),
    }
    Ok(())
}

fn format_name(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Png => "png",
        ImageFormat::Jpeg => "jpeg",
        ImageFormat::Gif => "gif",
        ImageFormat::WebP => "webp",
        ImageFormat::Tiff => "tiff",
        ImageFormat::Bmp => "bmp",
        _ => "other",
    }
}
