//! Downloads: a document's file streamed whole or as one `Range` (RFC 9110), for
//! this route and the storage routes.

use std::ops::{Bound, Range};

use aether_domain::document::content_disposition;
use aether_domain::id::DocumentId;
use aether_services::ServiceError;
use aether_services::documents::{Download, Variant};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use headers::Header as _;
use serde::Deserialize;

use super::parse;
use crate::error::{ApiError, FieldProblem};
use crate::extract::{ApiQuery, AuthUser};
use crate::openapi as doc;
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DownloadQuery {
    /// A version number; the current version when absent.
    pub version: Option<u32>,
    /// `original` or `redacted`. Read-only collaborators get the redacted copy of a
    /// redacted document by default and may not ask for the original.
    #[param(inline, value_type = Option<crate::openapi::values::Variant>)]
    pub variant: Option<String>,
}

/// Downloads a document (streamed; honours `Range`).
#[utoipa::path(
    get,
    path = "/api/v1/documents/{id}/download",
    tag = "documents",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Document id (UUID)"), DownloadQuery),
    responses(
        (status = 200, description = "The file, in its own content type", content_type = "*/*", body = Vec<u8>),
        (status = 206, description = "Part of the file", content_type = "*/*", body = Vec<u8>),
        doc::Authenticated,
        doc::BadRequest,
        doc::Forbidden,
        (status = 404, description = "`not_found`, `version_not_found` or `no_redacted_copy`"),
        doc::RangeNotSatisfiable,
        doc::Unprocessable,
    )
)]
pub async fn download_document(
    State(state): State<AppState>,
    AuthUser(caller): AuthUser,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<DownloadQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = parse(DocumentId::parse(&id))?;
    let variant = parse_variant(query.variant.as_deref())?;
    let version = query.version;
    ranged(&headers, move |range| {
        let (documents, caller) = (state.documents.clone(), caller.clone());
        Box::pin(async move { documents.download(&caller, id, version, variant, range).await })
    })
    .await
}

pub(crate) fn parse_variant(text: Option<&str>) -> Result<Variant, ApiError> {
    match text {
        None => Ok(Variant::Default),
        Some("original") => Ok(Variant::Original),
        Some("redacted") => Ok(Variant::Redacted),
        Some(_) => Err(ApiError::validation(vec![FieldProblem {
            field: "variant".into(),
            message: "must be original or redacted".into(),
        }])),
    }
}

/// Opens a stored file (or a range of it) for [`ranged`].
pub(crate) type OpenFuture = futures::future::BoxFuture<'static, Result<Download, ServiceError>>;

/// Answers a download, honouring a `Range` header. A range that names its start
/// (`a-b`, `a-`, the common forms) is read in one go: the store clamps its end and
/// reports the size. A suffix (`-n`), or a start the store refuses, needs the size
/// first: `open` is then called for the whole file, and again for the range.
pub(crate) async fn ranged(
    headers: &HeaderMap,
    open: impl Fn(Option<Range<u64>>) -> OpenFuture,
) -> Result<Response, ApiError> {
    let range_header = headers.get(header::RANGE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let Some(range_header) = range_header else {
        return Ok(file_response(StatusCode::OK, open(None).await?, None));
    };
    if let Some(wanted) = range_from_start(&range_header)
        && let Ok(part) = open(Some(wanted.clone())).await
        && part.read.range.start == wanted.start
        && !part.read.range.is_empty()
    {
        let range = part.read.range.clone();
        return Ok(file_response(StatusCode::PARTIAL_CONTENT, part, Some(range)));
    }
    let whole = open(None).await?;
    let size = whole.read.size;
    let Some(range) = parse_range(&range_header, size) else {
        let mut response = ApiError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "range_not_satisfiable",
            "The Range header does not match the file's size.",
        )
        .into_response();
        if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
            response.headers_mut().insert(header::CONTENT_RANGE, value);
        }
        return Ok(response);
    };
    drop(whole);
    let part = open(Some(range.clone())).await?;
    Ok(file_response(StatusCode::PARTIAL_CONTENT, part, Some(range)))
}

fn file_response(status: StatusCode, download: Download, range: Option<Range<u64>>) -> Response {
    let size = download.read.size;
    let length = download.read.range.end - download.read.range.start;
    let mut response = Response::new(Body::from_stream(download.read.stream));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    let mut set = |name: header::HeaderName, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set(header::CONTENT_TYPE, download.content_type.clone());
    set(header::CONTENT_LENGTH, length.to_string());
    set(header::ACCEPT_RANGES, "bytes".to_owned());
    set(header::ETAG, download.etag.clone());
    set(header::CONTENT_DISPOSITION, content_disposition(download.filename.as_str()));
    set(header::CACHE_CONTROL, "private, no-store".to_owned());
    if let Some(range) = range {
        set(header::CONTENT_RANGE, format!("bytes {}-{}/{size}", range.start, range.end - 1));
    }
    response
}

/// One range of a `Range` header, as bounds within a file.
#[derive(Debug)]
struct ByteRange {
    start: Bound<u64>,
    end: Bound<u64>,
    /// Written as a suffix (`-n`): its start was counted back from the size.
    suffix: bool,
}

/// The one range of a `Range` header (RFC 9110 §14.1.2) as `headers::Range` reads
/// it for a file of `size` bytes, and whether it is a suffix (`-n`). `None` for
/// another unit, a malformed range or several ranges (only one is served).
///
/// `headers` turns a suffix into a start counted back from `size`, so a suffix is
/// told apart here; and it drops a suffix longer than the file, which RFC 9110 serves
/// whole.
fn one_range(header: &str, size: u64) -> Option<ByteRange> {
    if header.contains(',') {
        return None;
    }
    let value = HeaderValue::from_str(header.trim()).ok()?;
    let range = headers::Range::decode(&mut std::iter::once(&value)).ok()?;
    let suffix = header.trim().trim_start_matches("bytes=").trim_start().starts_with('-');
    match range.satisfiable_ranges(size).next() {
        Some((start, end)) => Some(ByteRange { start, end, suffix }),
        // A well-formed suffix longer than the file: all of it.
        None if suffix && range.satisfiable_ranges(u64::MAX).next().is_some() => {
            Some(ByteRange { start: Bound::Included(0), end: Bound::Unbounded, suffix })
        }
        None => None,
    }
}

/// The range of `bytes=a-b` or `bytes=a-`, before the size is known (an open end
/// stops at `i64::MAX`, which every store clamps and no server misparses).
fn range_from_start(header: &str) -> Option<Range<u64>> {
    let ByteRange { start, end, suffix } = one_range(header, u64::MAX)?;
    let Bound::Included(start) = start else { return None };
    if suffix {
        return None;
    }
    let end = match end {
        Bound::Unbounded => i64::MAX.unsigned_abs(),
        Bound::Included(end) => end.checked_add(1)?,
        Bound::Excluded(end) => end,
    };
    (start < end).then_some(start..end)
}

/// One `bytes=` range (RFC 9110 §14.1.2): `a-b`, `a-` or `-n`, clamped to the size.
/// Several ranges are answered with the first only being unsupported: `None`.
fn parse_range(header: &str, size: u64) -> Option<Range<u64>> {
    if size == 0 {
        return None;
    }
    let ByteRange { start, end, .. } = one_range(header, size)?;
    let Bound::Included(start) = start else { return None };
    let end = match end {
        Bound::Unbounded => size - 1,
        Bound::Included(end) => end.min(size - 1),
        Bound::Excluded(end) => end.checked_sub(1)?.min(size - 1),
    };
    (start <= end && start < size).then_some(start..end + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_that_name_their_start_are_read_before_the_size_is_known() {
        assert_eq!(range_from_start("bytes=0-9"), Some(0..10));
        assert_eq!(range_from_start("bytes=90-"), Some(90..i64::MAX.unsigned_abs()));
        assert_eq!(range_from_start("bytes=-5"), None);
        assert_eq!(range_from_start("bytes=5-1"), None);
        assert_eq!(range_from_start("bytes=0-1,5-6"), None);
        assert_eq!(range_from_start("items=0-1"), None);
        assert_eq!(range_from_start("bytes=1-18446744073709551615"), None);
    }

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(parse_range("bytes=0-9", 100), Some(0..10));
        assert_eq!(parse_range("bytes=90-", 100), Some(90..100));
        assert_eq!(parse_range("bytes=-5", 100), Some(95..100));
        assert_eq!(parse_range("bytes=95-200", 100), Some(95..100));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=5-1", 100), None);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
        assert_eq!(parse_range("bytes=-0", 100), None);
    }

    #[test]
    fn suffixes_longer_than_the_file_serve_all_of_it() {
        // RFC 9110 §14.1.2; `headers::Range` alone would drop such a range.
        assert_eq!(parse_range("bytes=-200", 100), Some(0..100));
        assert_eq!(parse_range("bytes=-x", 100), None);
        assert_eq!(parse_range("bytes=-", 100), None);
    }

    #[test]
    fn dispositions_keep_the_name_and_stay_ascii() {
        assert_eq!(
            content_disposition("résumé \"v2\".pdf"),
            "attachment; filename=\"r_sum_ _v2_.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%22v2%22.pdf"
        );
    }
}
