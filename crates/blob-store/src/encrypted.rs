//! Encryption at rest: a [`BlobStore`] that encrypts everything it writes to the
//! store it wraps with AES-256-GCM, in segments, so that large blobs stream and
//! byte ranges can be read without decrypting the whole blob.
//!
//! Layout: a 12-byte header (`AEB1`, a random 7-byte nonce prefix, one reserved
//! byte), then segments of up to 64 KiB of plaintext, each sealed with a 16-byte
//! tag. A segment's nonce is the prefix, its 4-byte big-endian index and a byte
//! flagging the last segment: the STREAM construction as `aead::stream::StreamBE32`
//! builds it, so segments cannot be reordered, and cutting the blob short fails to
//! decrypt. Segments are sealed and opened by position (`StreamPrimitive`), not
//! through the sequential encryptor and decryptor, so a range read opens only the
//! segments it covers. The blob key is authenticated data, so
//! a blob copied under another key does not decrypt either. Blobs without the header
//! (written before encryption was turned on) are read as they are.

use std::ops::Range;
use std::sync::Arc;

use aes_gcm::aead::stream::{NewStream, StreamBE32, StreamPrimitive};
use aes_gcm::aead::{KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key};
use aether_domain::blob::{BlobError, BlobKey, BlobRead, BlobStore, BlobWriter};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;

const MAGIC: &[u8; 4] = b"AEB1";
const HEADER: u64 = 12;
const SEGMENT: u64 = 64 * 1024;
const TAG: u64 = 16;
const SEALED: u64 = SEGMENT + TAG;

/// One blob's segments: the cipher and the blob's nonce prefix.
type Segments = StreamBE32<Aes256Gcm>;

/// Wraps a store; every blob written through it is encrypted with `key`.
#[derive(Clone)]
pub struct EncryptedBlobStore {
    inner: Arc<dyn BlobStore>,
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for EncryptedBlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptedBlobStore").field("inner", &self.inner).finish_non_exhaustive()
    }
}

/// The size of the plaintext of a sealed blob of `sealed` bytes, if the size is
/// possible at all.
fn plain_size(sealed: u64) -> Option<u64> {
    let body = sealed.checked_sub(HEADER)?;
    let full = body / SEALED;
    let rest = body % SEALED;
    if rest == 0 {
        // The last segment is always present and may be empty (16 bytes): a body
        // that ends on a boundary must end with a full last segment.
        return if full == 0 { None } else { Some(full * SEGMENT) };
    }
    Some(full * SEGMENT + rest.checked_sub(TAG)?)
}

fn segment_count(plain: u64) -> u64 {
    // At least one (possibly empty) segment; a full last segment is not followed
    // by an empty one.
    if plain == 0 { 1 } else { plain.div_ceil(SEGMENT) }
}

fn corrupt(what: &str) -> BlobError {
    BlobError::Internal(format!("encrypted blob: {what}"))
}

fn position(index: u64) -> Result<u32, BlobError> {
    u32::try_from(index).map_err(|_| corrupt("too many segments"))
}

/// Seals segment `index` of a blob stored under `key` (its authenticated data).
fn seal(segments: &Segments, key: &BlobKey, index: u64, last: bool, plain: &[u8]) -> Result<Vec<u8>, BlobError> {
    segments
        .encrypt(position(index)?, last, Payload { msg: plain, aad: key.as_str().as_bytes() })
        .map_err(|_| corrupt("encryption failed"))
}

fn open(segments: &Segments, key: &BlobKey, index: u64, last: bool, sealed: &[u8]) -> Result<Vec<u8>, BlobError> {
    segments
        .decrypt(position(index)?, last, Payload { msg: sealed, aad: key.as_str().as_bytes() })
        .map_err(|_| corrupt("a segment failed authentication (wrong key, or altered or truncated data)"))
}

impl EncryptedBlobStore {
    pub fn new(inner: Arc<dyn BlobStore>, key: [u8; 32]) -> Self {
        Self { inner, cipher: Aes256Gcm::new(&Key::<Aes256Gcm>::from(key)) }
    }

    fn segments(&self, prefix: &[u8; 7]) -> Segments {
        Segments::from_aead(self.cipher.clone(), &(*prefix).into())
    }

    /// The header of an encrypted blob, or `None` for a plaintext one.
    async fn header(&self, key: &BlobKey) -> Result<(Option<[u8; 7]>, u64), BlobError> {
        let read = match self.inner.read(key, Some(0..HEADER)).await {
            Ok(read) => read,
            Err(BlobError::NotFound) => return Err(BlobError::NotFound),
            // An empty blob has no range to read: it is a plaintext one.
            Err(_) => return Ok((None, self.inner.read(key, None).await?.size)),
        };
        let size = read.size;
        let chunks: Vec<Bytes> = read.stream.collect::<Vec<_>>().await.into_iter().collect::<Result<_, _>>()?;
        let bytes = chunks.concat();
        if size >= HEADER && bytes.len() as u64 == HEADER && &bytes[..4] == MAGIC {
            let mut prefix = [0u8; 7];
            prefix.copy_from_slice(&bytes[4..11]);
            return Ok((Some(prefix), size));
        }
        Ok((None, size))
    }
}

struct EncryptingWriter {
    segments: Segments,
    key: BlobKey,
    inner: Box<dyn BlobWriter>,
    index: u64,
    pending: BytesMut,
}

#[async_trait]
impl BlobWriter for EncryptingWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<(), BlobError> {
        self.pending.extend_from_slice(&chunk);
        // Keep the last (possibly full) segment back: only `finish` knows it is last.
        while self.pending.len() as u64 > SEGMENT {
            let segment = self.pending.split_to(SEGMENT as usize);
            let sealed = seal(&self.segments, &self.key, self.index, false, &segment)?;
            self.index += 1;
            self.inner.write(Bytes::from(sealed)).await?;
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<(), BlobError> {
        let sealed = seal(&self.segments, &self.key, self.index, true, &self.pending)?;
        self.inner.write(Bytes::from(sealed)).await?;
        self.inner.finish().await
    }

    async fn abort(self: Box<Self>) -> Result<(), BlobError> {
        self.inner.abort().await
    }
}

#[async_trait]
impl BlobStore for EncryptedBlobStore {
    async fn put(&self, key: &BlobKey, bytes: Vec<u8>) -> Result<(), BlobError> {
        let mut writer = self.writer(key).await?;
        writer.write(Bytes::from(bytes)).await?;
        writer.finish().await
    }

    async fn get(&self, key: &BlobKey) -> Result<Vec<u8>, BlobError> {
        let read = self.read(key, None).await?;
        let chunks: Vec<Bytes> = read.stream.collect::<Vec<_>>().await.into_iter().collect::<Result<_, _>>()?;
        Ok(chunks.concat())
    }

    async fn writer(&self, key: &BlobKey) -> Result<Box<dyn BlobWriter>, BlobError> {
        let mut inner = self.inner.writer(key).await?;
        let prefix: [u8; 7] = rand::random();
        let mut header = Vec::with_capacity(HEADER as usize);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&prefix);
        header.push(0);
        inner.write(Bytes::from(header)).await?;
        Ok(Box::new(EncryptingWriter {
            segments: self.segments(&prefix),
            key: key.clone(),
            inner,
            index: 0,
            pending: BytesMut::new(),
        }))
    }

    async fn read(&self, key: &BlobKey, range: Option<Range<u64>>) -> Result<BlobRead, BlobError> {
        let (prefix, sealed_size) = self.header(key).await?;
        let Some(prefix) = prefix else {
            // Written before encryption was turned on.
            return self.inner.read(key, range).await;
        };
        let size = plain_size(sealed_size).ok_or_else(|| corrupt("impossible size"))?;
        let segments = segment_count(size);
        let wanted = match range {
            Some(range) if range.start < range.end => range.start.min(size)..range.end.min(size),
            _ => 0..size,
        };
        let first = if wanted.is_empty() { 0 } else { wanted.start / SEGMENT };
        let last = if wanted.is_empty() { 0 } else { (wanted.end - 1) / SEGMENT };
        let sealed_range = HEADER + first * SEALED..(HEADER + (last + 1) * SEALED).min(sealed_size);
        let inner = self.inner.read(key, Some(sealed_range)).await?;
        let segments_of_blob = Arc::new(self.segments(&prefix));
        let key = key.clone();
        let wanted_range = wanted.clone();
        // Re-cut the ciphertext into sealed segments, open each, and trim the
        // first and last to the requested range.
        let stream =
            futures::stream::unfold((inner.stream, BytesMut::new(), first), move |(mut inner, mut buffer, index)| {
                let segments_of_blob = Arc::clone(&segments_of_blob);
                let key = key.clone();
                let wanted = wanted_range.clone();
                async move {
                    if index > last || wanted.is_empty() && index > 0 {
                        return None;
                    }
                    let is_last = index == segments - 1;
                    let expected = if is_last { (size - index * SEGMENT + TAG) as usize } else { SEALED as usize };
                    while buffer.len() < expected {
                        match inner.next().await {
                            Some(Ok(chunk)) => buffer.extend_from_slice(&chunk),
                            Some(Err(error)) => return Some((Err(error), (inner, buffer, last + 1))),
                            None => return Some((Err(corrupt("truncated")), (inner, buffer, last + 1))),
                        }
                    }
                    let sealed = buffer.split_to(expected);
                    let plain = match open(&segments_of_blob, &key, index, is_last, &sealed) {
                        Ok(plain) => plain,
                        Err(error) => return Some((Err(error), (inner, buffer, last + 1))),
                    };
                    let start = index * SEGMENT;
                    let from = wanted.start.saturating_sub(start).min(plain.len() as u64) as usize;
                    let to = (wanted.end.saturating_sub(start)).min(plain.len() as u64) as usize;
                    let piece = Bytes::from(plain).slice(from..to.max(from));
                    Some((Ok(piece), (inner, buffer, index + 1)))
                }
            })
            .boxed();
        Ok(BlobRead { size, range: wanted, stream })
    }

    async fn presigned_get(
        &self,
        _key: &BlobKey,
        _expires_in: std::time::Duration,
        _content_disposition: &str,
    ) -> Result<Option<String>, BlobError> {
        // The backend would hand out ciphertext: the server signs its own URLs.
        Ok(None)
    }

    async fn delete(&self, key: &BlobKey) -> Result<(), BlobError> {
        self.inner.delete(key).await
    }

    fn backend_name(&self) -> &'static str {
        self.inner.backend_name()
    }

    async fn ping(&self) -> Result<(), BlobError> {
        self.inner.ping().await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use aes_gcm::Nonce;
    use aes_gcm::aead::Aead;

    /// The nonce as it was built by hand before `StreamBE32`: prefix, big-endian
    /// index, last flag.
    fn hand_built_nonce(prefix: &[u8; 7], index: u32, last: bool) -> [u8; 12] {
        let mut nonce = [0u8; 12];
        nonce[..7].copy_from_slice(prefix);
        nonce[7..11].copy_from_slice(&index.to_be_bytes());
        nonce[11] = u8::from(last);
        nonce
    }

    #[test]
    fn segments_seal_exactly_as_the_hand_built_nonces_did() {
        let store = EncryptedBlobStore::new(
            Arc::new(crate::ObjectBlobStore::filesystem(&std::env::temp_dir()).unwrap()),
            [3u8; 32],
        );
        let cipher = Aes256Gcm::new(&Key::<Aes256Gcm>::from([3u8; 32]));
        let prefix = [1, 2, 3, 4, 5, 6, 7];
        let segments = store.segments(&prefix);
        let key = BlobKey::parse("documents/one").unwrap();
        let aad = key.as_str().as_bytes();
        for (index, last) in [(0u32, false), (0, true), (1, false), (258, true), (0x0102_0304, false), (u32::MAX, true)]
        {
            let plain = format!("segment {index} {last}");
            let old = cipher
                .encrypt(&Nonce::from(hand_built_nonce(&prefix, index, last)), Payload { msg: plain.as_bytes(), aad })
                .unwrap();
            assert_eq!(seal(&segments, &key, u64::from(index), last, plain.as_bytes()).unwrap(), old, "{index} {last}");
            assert_eq!(open(&segments, &key, u64::from(index), last, &old).unwrap(), plain.as_bytes());
        }
        assert!(seal(&segments, &key, u64::from(u32::MAX) + 1, false, b"x").is_err(), "at most 2^32 segments");
    }

    #[test]
    fn sizes_round_trip() {
        for plain in [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 1, 3 * SEGMENT, 3 * SEGMENT + 7] {
            let sealed = HEADER + segment_count(plain) * TAG + plain;
            assert_eq!(plain_size(sealed), Some(plain), "{plain}");
        }
        assert_eq!(plain_size(5), None);
        assert_eq!(plain_size(HEADER), None);
    }
}
