//! The one reader of `multipart/form-data` bodies, used by every upload route (documents,
//! batch uploads, storage, avatars).
//!
//! Every bound is enforced while the bytes arrive, before work or memory proportional to
//! them: the whole request (`FormLimits::total_bytes`, through `http_body_util::Limited`),
//! the number of parts, each text field (read chunk by chunk and refused at its limit, so a
//! 1 GiB field costs at most one chunk beyond the limit) and each in-memory file. Only file
//! parts that stream to storage are unbounded here; their limit is counted where they are
//! stored.

use aether_services::documents::BodyError;
use axum::body::{Body, Bytes};
use axum::extract::multipart::{Field, MultipartError};
use axum::extract::{FromRequest as _, Multipart, Request};
use axum::http::StatusCode;
use futures::{Stream, StreamExt as _};

use crate::error::{ApiError, FieldProblem};

/// The bounds of one multipart request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FormLimits {
    /// The whole body, every part and boundary included.
    pub total_bytes: u64,
    /// Parts of any kind.
    pub max_parts: usize,
    /// Each text field, in bytes.
    pub text_bytes: usize,
}

impl FormLimits {
    /// Text fields of upload forms (ids, a change summary, a callback URL) fit in 4 KiB.
    pub const TEXT_BYTES: usize = 4096;
    /// Room for the parts' headers, boundaries and text fields beside the files.
    pub const FORM_OVERHEAD: u64 = 1024 * 1024;
    /// A batch may name at most this many parts (files and fields together).
    pub const MAX_PARTS: usize = 128;

    /// Bounds for a form whose files add up to at most `file_bytes`.
    pub fn for_files(file_bytes: u64) -> Self {
        Self {
            total_bytes: file_bytes.saturating_add(Self::FORM_OVERHEAD),
            max_parts: Self::MAX_PARTS,
            text_bytes: Self::TEXT_BYTES,
        }
    }
}

/// A multipart body being read part by part under [`FormLimits`].
#[derive(Debug)]
pub(crate) struct BoundedForm {
    form: Multipart,
    limits: FormLimits,
    parts: usize,
}

impl BoundedForm {
    /// Starts reading `request` as a multipart form; anything else is 415.
    pub async fn from_request<S: Send + Sync>(
        request: Request,
        state: &S,
        limits: FormLimits,
    ) -> Result<Self, ApiError> {
        let limit = usize::try_from(limits.total_bytes).unwrap_or(usize::MAX);
        let request = request.map(|body| Body::new(http_body_util::Limited::new(body, limit)));
        let form = Multipart::from_request(request, state).await.map_err(|_| {
            ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "The request body must be multipart/form-data.",
            )
        })?;
        Ok(Self { form, limits, parts: 0 })
    }

    /// The next part, or `None` at the end of the form.
    pub async fn next_part(&mut self) -> Result<Option<Part<'_>>, ApiError> {
        let limits = self.limits;
        let Some(field) = self.form.next_field().await.map_err(|error| form_error(&error, limits))? else {
            return Ok(None);
        };
        self.parts += 1;
        if self.parts > limits.max_parts {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_many_parts",
                format!("A form may have at most {} parts.", limits.max_parts),
            ));
        }
        Ok(Some(Part { field, limits }))
    }
}

/// One part of a [`BoundedForm`].
#[derive(Debug)]
pub(crate) struct Part<'a> {
    field: Field<'a>,
    limits: FormLimits,
}

impl Part<'_> {
    pub fn name(&self) -> &str {
        self.field.name().unwrap_or_default()
    }

    pub fn file_name(&self) -> &str {
        self.field.file_name().unwrap_or_default()
    }

    /// The part as UTF-8 text of at most `FormLimits::text_bytes`, refused as soon as more
    /// has arrived.
    pub async fn text(self) -> Result<String, ApiError> {
        let name = self.name().to_owned();
        let limit = self.limits.text_bytes;
        let bytes = self
            .bytes_at_most(limit, || {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_multipart",
                    format!("Form field `{name}` is longer than {limit} bytes."),
                )
            })
            .await?;
        String::from_utf8(bytes)
            .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "invalid_multipart", "Form fields must be UTF-8."))
    }

    /// The part's bytes, at most `limit` of them; `too_large` is the error past that.
    pub async fn bytes_at_most(
        mut self,
        limit: usize,
        too_large: impl FnOnce() -> ApiError,
    ) -> Result<Vec<u8>, ApiError> {
        let mut bytes = Vec::new();
        while let Some(chunk) = self.field.chunk().await.map_err(|error| form_error(&error, self.limits))? {
            if bytes.len() + chunk.len() > limit {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }

    /// Reads the part to its end and drops it (fields a client may add that we ignore).
    pub async fn skip(mut self) -> Result<(), ApiError> {
        while self.field.chunk().await.map_err(|error| form_error(&error, self.limits))?.is_some() {}
        Ok(())
    }

    /// The part as a stream of chunks, for files that go straight to storage; passing the
    /// request's bound ends it with [`BodyError::TooLarge`].
    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes, BodyError>> + Unpin + Send {
        let limit = self.limits.total_bytes;
        self.field.map(move |chunk| {
            chunk.map_err(|error| {
                if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    BodyError::TooLarge { limit }
                } else {
                    BodyError::Broken(error.body_text())
                }
            })
        })
    }
}

fn form_error(error: &MultipartError, limits: FormLimits) -> ApiError {
    if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("An upload request may carry at most {} bytes.", limits.total_bytes),
        )
    } else {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_multipart", format!("The multipart body is malformed: {error}"))
    }
}

/// The problem for a required form field that was not sent.
pub(crate) fn missing(field: &str) -> ApiError {
    ApiError::validation(vec![FieldProblem { field: field.into(), message: "is required".into() }])
}
