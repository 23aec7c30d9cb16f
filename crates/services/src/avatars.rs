//! Profile pictures: an uploaded image is checked (PNG, JPEG, WebP or GIF by its
//! bytes, bounded in size and dimensions), cut to a square, scaled to 256×256 and
//! stored as PNG in the blob store under the user's own key; the user's
//! `avatar_url` points at it.

use std::io::Cursor;
use std::sync::Arc;

use aether_domain::ValidationError;
use aether_domain::auth::Principal;
use aether_domain::blob::{BlobError, BlobKey, BlobStore};
use aether_domain::id::UserId;
use aether_domain::store::UserStore;
use aether_domain::time;
use aether_domain::user::{User, UserPatch};
use image::{ImageFormat, ImageReader, Limits};

use crate::error::{ServiceError, ServiceResult};

/// The side of a stored avatar, in pixels.
pub const AVATAR_SIDE: u32 = 256;
/// The largest upload accepted, in bytes.
pub const MAX_AVATAR_BYTES: usize = 5 * 1024 * 1024;
/// The largest source image accepted, per side: bigger ones would cost too much memory to decode.
const MAX_SOURCE_SIDE: u32 = 8192;

#[derive(Debug, Clone)]
pub struct AvatarService {
    store: Arc<dyn UserStore>,
    blobs: Arc<dyn BlobStore>,
}

pub(crate) fn blob_error(error: BlobError) -> ServiceError {
    match error {
        BlobError::NotFound => ServiceError::NotFound,
        BlobError::Unavailable(reason) => ServiceError::Unavailable(reason),
        BlobError::Internal(reason) => ServiceError::Internal(reason),
    }
}

fn key_of(user: UserId) -> BlobKey {
    // A user id is a UUID, so the key is always valid.
    BlobKey::parse(&format!("avatars/{user}.png")).unwrap_or_else(|_| unreachable!("uuid keys are valid"))
}

fn invalid(message: &str) -> ServiceError {
    ValidationError::new("file", message).into()
}

/// Decodes, crops to a centred square, scales and re-encodes as PNG. Re-encoding
/// also drops whatever else the file carried (metadata, trailing payloads).
pub fn normalize(bytes: &[u8]) -> ServiceResult<Vec<u8>> {
    if bytes.is_empty() {
        return Err(invalid("is empty"));
    }
    if bytes.len() > MAX_AVATAR_BYTES {
        return Err(invalid("must be at most 5 MiB"));
    }
    let mut reader =
        ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|_| invalid("is unreadable"))?;
    match reader.format() {
        Some(ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::WebP | ImageFormat::Gif) => {}
        _ => return Err(invalid("must be a PNG, JPEG, WebP or GIF image")),
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SOURCE_SIDE);
    limits.max_image_height = Some(MAX_SOURCE_SIDE);
    limits.max_alloc = Some(256 * 1024 * 1024);
    reader.limits(limits);
    let image = reader.decode().map_err(|error| match error {
        image::ImageError::Limits(_) => invalid("is larger than 8192×8192 pixels"),
        _ => invalid("is not a valid image"),
    })?;
    let square = image.resize_to_fill(AVATAR_SIDE, AVATAR_SIDE, image::imageops::FilterType::Triangle);
    let mut png = Vec::new();
    square.write_to(&mut Cursor::new(&mut png), ImageFormat::Png).map_err(|e| ServiceError::Internal(e.to_string()))?;
    Ok(png)
}

impl AvatarService {
    pub fn new(store: Arc<dyn UserStore>, blobs: Arc<dyn BlobStore>) -> Self {
        Self { store, blobs }
    }

    /// Replaces the caller's avatar. The blob is written before the user points at
    /// it, and under a key of the user's own, so a crash in between leaves nothing
    /// that a later upload does not overwrite.
    pub async fn set(&self, caller: &Principal, bytes: Vec<u8>) -> ServiceResult<User> {
        let png = tokio::task::spawn_blocking(move || normalize(&bytes))
            .await
            .map_err(|error| ServiceError::Internal(error.to_string()))??;
        self.blobs.put(&key_of(caller.user_id), png).await.map_err(blob_error)?;
        let now = time::now();
        let url = format!("/api/v1/users/{}/avatar?v={}", caller.user_id, now.timestamp_micros());
        let patch = UserPatch { avatar_url: Some(Some(url)), ..UserPatch::default() };
        Ok(self.store.update_user(caller.user_id, patch, now).await?)
    }

    /// The avatar of `user`, as PNG bytes.
    pub async fn get(&self, user: UserId) -> ServiceResult<Vec<u8>> {
        let user = self.store.get_user(user).await?;
        if user.avatar_url.is_none() {
            return Err(ServiceError::NotFound);
        }
        self.blobs.get(&key_of(user.id)).await.map_err(blob_error)
    }

    /// Removes the caller's avatar: the user stops pointing at it first, then the blob goes.
    pub async fn delete(&self, caller: &Principal) -> ServiceResult<User> {
        let patch = UserPatch { avatar_url: Some(None), ..UserPatch::default() };
        let user = self.store.update_user(caller.user_id, patch, time::now()).await?;
        self.blobs.delete(&key_of(caller.user_id)).await.map_err(blob_error)?;
        Ok(user)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn encoded(width: u32, height: u32, format: ImageFormat) -> Vec<u8> {
        let image = image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
        }));
        let mut bytes = Vec::new();
        image.write_to(&mut Cursor::new(&mut bytes), format).unwrap();
        bytes
    }

    #[test]
    fn images_become_256_pixel_pngs() {
        for format in [ImageFormat::Png, ImageFormat::Jpeg, ImageFormat::Gif] {
            let png = normalize(&encoded(640, 300, format)).unwrap();
            let back = image::load_from_memory_with_format(&png, ImageFormat::Png).unwrap();
            assert_eq!((back.width(), back.height()), (AVATAR_SIDE, AVATAR_SIDE), "{format:?}");
        }
    }

    #[test]
    fn what_is_not_a_usable_image_is_refused() {
        assert!(normalize(b"").is_err());
        assert!(normalize(b"%PDF-1.7 not an image").is_err());
        let mut truncated = encoded(64, 64, ImageFormat::Png);
        truncated.truncate(truncated.len() / 2);
        assert!(normalize(&truncated).is_err());
        // A tiny file that claims to be enormous is refused before any pixel is allocated.
        let mut huge = encoded(1, 1, ImageFormat::Png);
        // IHDR width and height live at bytes 16..24 of a PNG.
        huge[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        huge[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        assert!(normalize(&huge).is_err());
        assert!(normalize(&vec![0u8; MAX_AVATAR_BYTES + 1]).is_err());
    }
}
