//! [`ScratchSpace`] in the system's temporary directory: the local copies of stored
//! files that the virus scanner and the sandboxed extractor read by name. A copy is
//! deleted when the worker drops it (and by the operating system's cleanup of its
//! temporary directory after a crash).

use aether_domain::blob::BlobError;
use aether_domain::processing::{ScratchError, ScratchFile, ScratchSpace};
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt as _;
use futures::stream::BoxStream;
use tokio::io::AsyncWriteExt as _;

#[derive(Debug, Clone, Copy, Default)]
pub struct TempScratch;

#[derive(Debug)]
struct TempCopy(tempfile::NamedTempFile);

impl ScratchFile for TempCopy {
    fn path(&self) -> &std::path::Path {
        self.0.path()
    }
}

fn local(error: std::io::Error) -> ScratchError {
    ScratchError::Local(error.to_string())
}

#[async_trait]
impl ScratchSpace for TempScratch {
    async fn copy(
        &self,
        mut stream: BoxStream<'static, Result<Bytes, BlobError>>,
    ) -> Result<Box<dyn ScratchFile>, ScratchError> {
        let scratch = tempfile::NamedTempFile::new().map_err(local)?;
        let mut file = tokio::fs::File::from_std(scratch.reopen().map_err(local)?);
        while let Some(chunk) = stream.next().await {
            file.write_all(&chunk?).await.map_err(local)?;
        }
        file.flush().await.map_err(local)?;
        Ok(Box::new(TempCopy(scratch)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn copies_hold_the_bytes_until_dropped() {
        let chunks: Vec<Result<Bytes, BlobError>> =
            vec![Ok(Bytes::from_static(b"hello ")), Ok(Bytes::from_static(b"world"))];
        let copy = TempScratch.copy(futures::stream::iter(chunks).boxed()).await.unwrap();
        let path = copy.path().to_owned();
        assert_eq!(std::fs::read(&path).unwrap(), b"hello world");
        drop(copy);
        assert!(!path.exists());
        let broken: Vec<Result<Bytes, BlobError>> = vec![Err(BlobError::NotFound)];
        let error = TempScratch.copy(futures::stream::iter(broken).boxed()).await.unwrap_err();
        assert_eq!(error, ScratchError::Blob(BlobError::NotFound));
    }
}
