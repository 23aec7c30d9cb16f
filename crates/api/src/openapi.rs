//! The OpenAPI document's frame, the problem responses operations share, and the
//! pass that completes the document once the route annotations are added.
//!
//! Route annotations list their problem responses with the types below (one per
//! status, or a set per extractor: [`Authenticated`], [`WriterRole`], [`JsonBody`]
//! …), or with a `(status = 409, description = "…")` tuple when the reason is
//! particular to the operation. [`finish`] then gives every response of 400 and
//! above the `Problem` schema as `application/problem+json`, and every `/api/v1`
//! operation the rate limiter's 429. `tests/openapi.rs` checks the result.

use std::collections::BTreeMap;

use utoipa::openapi::path::Operation;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::security::{Flow, Http, HttpAuthScheme, OAuth2, Password, Scopes, SecurityScheme};
use utoipa::openapi::{ContentBuilder, HttpMethod, OpenApi, Ref, RefOr};
use utoipa::{IntoResponses, Modify};

use crate::error::PROBLEM_CONTENT_TYPE;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Aether API",
        description = "The backend of the Aether AI document platform. Errors are RFC 9457 problem \
                       documents with a stable `code`; lists use `{items, next_cursor}` with `limit`/`cursor`.",
    ),
    modifiers(&BearerAuth),
    components(schemas(crate::error::Problem)),
    tags(
        (name = "operations", description = "Liveness, readiness, metrics"),
        (name = "auth", description = "The built-in identity provider"),
        (name = "users", description = "Accounts"),
        (name = "notebooks", description = "Notebooks and their hierarchy"),
        (name = "sharing", description = "Invitations, permissions and why a user has access"),
        (name = "documents", description = "Uploads, upload jobs and documents"),
        (name = "search", description = "Full-text search over what you may read"),
        (name = "storage", description = "The design's file storage endpoints, over documents' files"),
        (name = "admin", description = "Administration: users and the audit log"),
    )
)]
#[derive(Debug)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.bearer_format = Some("JWT".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
        // Where bearer tokens come from with the built-in provider: the password grant
        // of `POST /api/v1/auth/token` (which also takes refresh tokens).
        let password = Password::new("/api/v1/auth/token", Scopes::new());
        components.add_security_scheme("password", SecurityScheme::OAuth2(OAuth2::new([Flow::Password(password)])));
    }
}

/// A problem response: the `Problem` schema as `application/problem+json`.
pub fn problem(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(PROBLEM_CONTENT_TYPE, ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build())
        .build()
}

/// Declares `IntoResponses` types, each a set of problem responses.
macro_rules! problem_responses {
    ($($(#[$doc:meta])* $name:ident => [$($status:literal),+ $(,)?];)+) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $name;

        impl IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                [$($status),+]
                    .into_iter()
                    .map(|status: u16| (status.to_string(), RefOr::T(problem(describe(status)))))
                    .collect()
            }
        }
    )+};
}

/// What a problem status means in this API, naming the `code`s it carries. One
/// text per status, so that the sets below compose in any order.
fn describe(status: u16) -> &'static str {
    match status {
        400 => {
            "Bad request; `code` says why: `invalid_id` (a path id is not a UUID), `invalid_query`, \
             `invalid_cursor`, `malformed_body`, `invalid_multipart`, `invalid_if_match` …"
        }
        401 => {
            "No valid credential: `missing_token`, `invalid_token` or `token_expired` \
             (with a `WWW-Authenticate` challenge)"
        }
        403 => "`forbidden`: the caller's role, or its permission on the resource, does not allow this",
        404 => "`not_found`: the resource does not exist or is not visible to the caller",
        409 => "`conflict` or a state that forbids the change; `code` says which",
        412 => "`precondition_failed`: the resource changed since the `If-Match` version",
        413 => "`payload_too_large` (or `file_too_large` for uploads): the body is over the limit",
        415 => "`unsupported_media_type`: the body is not of the content type the operation takes",
        416 => "`range_not_satisfiable`: the `Range` does not fit the file (with `Content-Range: bytes */size`)",
        422 => "`validation_failed`: the body or a parameter breaks a rule; `errors` lists each field",
        429 => "`rate_limited`: too many requests; retry after `Retry-After` seconds",
        _ => "A problem; `code` says which",
    }
}

problem_responses! {
    /// 400: a malformed request (path id, query, body framing).
    BadRequest => [400];
    /// 401: a route behind [`crate::extract::AuthUser`].
    Authenticated => [401];
    /// 401 and 403: a route behind [`crate::extract::Writer`] or [`crate::extract::Admin`],
    /// which refuse roles without the capability.
    WriterRole => [401, 403];
    /// 403: the caller may read the resource but not do this to it.
    Forbidden => [403];
    /// 404: a resource that does not exist or that the caller may not read.
    NotFound => [404];
    /// 409: the resource's state forbids the change.
    Conflict => [409];
    /// 412: `If-Match` no longer matches.
    PreconditionFailed => [412];
    /// 413: a body over the limit.
    PayloadTooLarge => [413];
    /// 416: a `Range` that does not fit.
    RangeNotSatisfiable => [416];
    /// 422: a parameter or body field breaks a rule.
    Unprocessable => [422];
    /// A body read by [`crate::extract::ApiJson`].
    JsonBody => [400, 413, 415, 422];
    /// A form read by [`crate::extract::ApiForm`]: its rejections are 400, not 422.
    FormBody => [400, 413, 415];
    /// A multipart body.
    MultipartBody => [400, 413, 415, 422];
}

/// Completes the document built from the annotations: every response of 400 and
/// above without content gets the problem's, every operation under `/api/v1` gets
/// 429, which the rate limiter may answer to any of them, and the multipart forms
/// say which part names they take.
pub fn finish(openapi: &mut OpenApi) {
    if let Some(components) = openapi.components.as_mut() {
        // Unknown parts are ignored, but a part name with a control character makes
        // the multipart parser refuse the whole body (400). JSON Schema's
        // `propertyNames`, which utoipa has no attribute for, says so.
        for form in ["UploadForm", "BatchUploadForm", "AvatarUpload"] {
            if let Some(RefOr::T(utoipa::openapi::schema::Schema::Object(form))) = components.schemas.get_mut(form) {
                form.extensions
                    .get_or_insert_with(Default::default)
                    .insert("propertyNames".into(), serde_json::json!({"pattern": "^[^\\x00-\\x1f\\x7f]*$"}));
            }
        }
    }
    for (path, item) in &mut openapi.paths.paths {
        let limited = path.starts_with("/api/v1/");
        for operation in operations_mut(item) {
            let responses = &mut operation.responses.responses;
            if limited {
                responses.entry("429".into()).or_insert_with(|| RefOr::T(problem(describe(429))));
            }
            for (status, response) in responses.iter_mut() {
                if let (Ok(400..), RefOr::T(response)) = (status.parse::<u16>(), response)
                    && response.content.is_empty()
                {
                    let description = std::mem::take(&mut response.description);
                    *response = problem(&description);
                }
            }
        }
    }
}

fn operations_mut(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.options.as_mut(),
        item.head.as_mut(),
        item.patch.as_mut(),
        item.trace.as_mut(),
        item.query.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// The methods of a path item, for code that walks the document.
pub fn operations(item: &utoipa::openapi::PathItem) -> Vec<(HttpMethod, &Operation)> {
    [
        (HttpMethod::Get, item.get.as_ref()),
        (HttpMethod::Put, item.put.as_ref()),
        (HttpMethod::Post, item.post.as_ref()),
        (HttpMethod::Delete, item.delete.as_ref()),
        (HttpMethod::Options, item.options.as_ref()),
        (HttpMethod::Head, item.head.as_ref()),
        (HttpMethod::Patch, item.patch.as_ref()),
        (HttpMethod::Trace, item.trace.as_ref()),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.map(|operation| (method, operation)))
    .collect()
}

/// The values string parameters take, for the document only: handlers read the
/// text themselves, to answer a wrong value with 422 naming the parameter.
pub mod values {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type};
    use utoipa::openapi::{RefOr, schema};
    use utoipa::{PartialSchema, ToSchema};

    /// `CallbackUrl::parse`'s grammar with the host narrowed to a dotted DNS name outside the
    /// names that always mean a local machine (`.local`, `.internal`, `localhost` …, in any
    /// case): what the outbound policy lets any upload name. Addresses and other hosts need
    /// `outbound_allow`, so the document does not offer them.
    const CALLBACK_URL: &str = "^https?://(?!(?:[^/:]*\\.)?(?:[lL][oO][cC][aA][lL]|[iI][nN][tT][eE][rR][nN][aA][lL]|[lL][oO][cC][aA][lL][hH][oO][sS][tT]|[lL][oO][cC][aA][lL][dD][oO][mM][aA][iI][nN]|[hH][oO][mM][eE]\\.[aA][rR][pP][aA])(?:[:/]|$))\
        (?![^/:]*[xX][nN]--)[A-Za-z0-9][A-Za-z0-9-]*(?:\\.[A-Za-z0-9][A-Za-z0-9-]*)*\\.[A-Za-z][A-Za-z0-9-]*\
        (?::(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?(?:/[!-~]*)?$";
    /// Text that is not blank once trimmed and has no control characters (Rust's
    /// `char::is_control`: C0, DEL and C1).
    const NAME: &str = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$";

    fn text(min: Option<usize>, max: usize, pattern: &str) -> ObjectBuilder {
        ObjectBuilder::new().schema_type(Type::String).min_length(min).max_length(Some(max)).pattern(Some(pattern))
    }

    /// Declares string types whose schema is a length and a pattern.
    macro_rules! text_type {
        ($($(#[$doc:meta])* $name:ident => $schema:expr;)+) => {$(
            $(#[$doc])*
            #[derive(Debug)]
            pub struct $name;

            impl PartialSchema for $name {
                fn schema() -> RefOr<Schema> {
                    $schema.into()
                }
            }

            impl ToSchema for $name {}
        )+};
    }

    text_type! {
        /// A notebook's name: 1–200 characters, not blank, no control characters.
        NotebookName => text(Some(1), 200, NAME);
        /// A description: at most 10 000 characters, no control characters but newlines and tabs.
        Description => text(None, 10_000, "^[^\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f]*$");
        /// A tag: 1–64 characters, not blank, no control characters; stored in lower case.
        TagName => text(Some(1), 64, NAME);
        /// An API key's label: 1–100 characters, not blank, no control characters.
        ApiKeyName => text(Some(1), 100, NAME);
        /// A plain file name: no path separators, control characters or leading dots,
        /// at most 255 bytes.
        Filename => text(Some(1), 255, "^\\s*[^\\s./\\\\\\x00-\\x1f\\x7f-\\x9f][^/\\\\\\x00-\\x1f\\x7f-\\x9f]*$");
        /// A new version's change summary: at most 1 000 characters, no control characters but newlines.
        ChangeSummary => text(None, 1000, "^[^\\x00-\\x09\\x0b-\\x1f\\x7f-\\x9f]*$");
        /// An `http(s)` URL naming a public DNS host (see `CALLBACK_URL`), at most 2048 bytes.
        CallbackUrl => text(Some(8), 2048, CALLBACK_URL);
        /// A file's bytes, as one multipart part.
        Binary => ObjectBuilder::new().schema_type(Type::String).format(Some(schema::SchemaFormat::KnownFormat(schema::KnownFormat::Binary)));
        /// A person's full name: 1–200 characters, not blank.
        FullName => text(Some(1), 200, "\\S");
        /// A list of tags: at most 50 entries (repeats count; they are dropped after the check).
        Tags => ArrayBuilder::new().items(TagName::schema()).max_items(Some(50));
        /// A notebook's compliance settings; every member is optional and unknown ones are refused.
        ComplianceSettings => compliance_settings();
        /// The body of `POST /api/v1/notebooks`: a notebook, or a copy of a template.
        CreateNotebookBody => create_notebook_body();
        /// The body of `POST /api/v1/notebooks/bulk`.
        BulkBody => bulk_body();
    }

    /// `schema`, or `null`.
    fn nullable(schema: impl Into<RefOr<Schema>>) -> RefOr<Schema> {
        schema::OneOfBuilder::new().item(schema).item(ObjectBuilder::new().schema_type(Type::Null)).into()
    }

    fn uuid() -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(schema::SchemaFormat::KnownFormat(schema::KnownFormat::Uuid)))
    }

    /// A new notebook, or (with `template_id`) a copy of a template, which takes only
    /// `name` and `parent_id`: the rest comes from the template. `null` reads as absent.
    fn create_notebook_body() -> Schema {
        let only_null = || ObjectBuilder::new().schema_type(Type::Null);
        let notebook = ObjectBuilder::new()
            .title(Some("A new notebook"))
            .property("parent_id", nullable(uuid()))
            .property("name", NotebookName::schema())
            .required("name")
            .property("description", nullable(Description::schema()))
            .property("visibility", nullable(Visibility::schema()))
            .property("tags", nullable(Tags::schema()))
            .property("compliance_settings", nullable(ComplianceSettings::schema()))
            .property(
                "is_template",
                ObjectBuilder::new().schema_type(SchemaType::from_iter([Type::Boolean, Type::Null])),
            )
            .property("template_id", only_null())
            .additional_properties(Some(schema::AdditionalProperties::FreeForm(false)));
        let copy = ObjectBuilder::new()
            .title(Some("A copy of a template"))
            .property("template_id", uuid())
            .required("template_id")
            .property("parent_id", nullable(uuid()))
            .property("name", NotebookName::schema())
            .required("name")
            .property("description", only_null())
            .property("visibility", only_null())
            .property("tags", only_null())
            .property("compliance_settings", only_null())
            .property("is_template", only_null())
            .additional_properties(Some(schema::AdditionalProperties::FreeForm(false)));
        Schema::OneOf(schema::OneOfBuilder::new().item(notebook).item(copy).build())
    }

    fn compliance_settings() -> Schema {
        let media_range = "^[A-Za-z0-9!#$&^_.+-]{1,127}/([A-Za-z0-9!#$&^_.+-]{1,127}|\\*)$";
        let object = ObjectBuilder::new()
            .property("pii_detection", ObjectBuilder::new().schema_type(Type::Boolean))
            .property(
                "redaction_mode",
                ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["none", "mask", "remove"])),
            )
            .property(
                "retention_days",
                ObjectBuilder::new()
                    .schema_type(SchemaType::from_iter([Type::Integer, Type::Null]))
                    .minimum(Some(1))
                    .maximum(Some(36_500)),
            )
            .property(
                "allowed_content_types",
                ArrayBuilder::new().items(text(Some(3), 255, media_range)).max_items(Some(100)),
            )
            .property("hipaa_mode", ObjectBuilder::new().schema_type(Type::Boolean))
            .additional_properties(Some(schema::AdditionalProperties::FreeForm(false)))
            .description(Some(
                "`hipaa_mode: true` requires a `redaction_mode` other than `none`, and `pii_detection` true (its default).",
            ))
            .build();
        let without_hipaa = ObjectBuilder::new()
            .schema_type(Type::Object)
            .property("hipaa_mode", ObjectBuilder::new().schema_type(Type::Boolean).enum_values(Some([false])));
        let with_hipaa = ObjectBuilder::new()
            .schema_type(Type::Object)
            .property("hipaa_mode", ObjectBuilder::new().schema_type(Type::Boolean).enum_values(Some([true])))
            .property("pii_detection", ObjectBuilder::new().schema_type(Type::Boolean).enum_values(Some([true])))
            .property(
                "redaction_mode",
                ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["mask", "remove"])),
            )
            .required("hipaa_mode")
            .required("redaction_mode");
        let rule = schema::AnyOfBuilder::new().item(without_hipaa).item(with_hipaa);
        Schema::AllOf(schema::AllOfBuilder::new().item(object).item(rule).build())
    }

    /// The body of `POST /api/v1/notebooks/bulk`: `move` needs `parent_id` (`null`
    /// for the root), `tag` and `untag` need `tags`; other members are ignored by
    /// the actions that do not use them.
    fn bulk_body() -> Schema {
        let action =
            |values: &[&str]| ObjectBuilder::new().schema_type(Type::String).enum_values(Some(values.to_vec()));
        let object = ObjectBuilder::new()
            .property(
                "ids",
                ArrayBuilder::new()
                    .items(uuid())
                    .min_items(Some(1))
                    .max_items(Some(100))
                    .unique_items(true)
                    .description(Some("1–100 notebook ids, each once.")),
            )
            .required("ids")
            .property("action", action(&["move", "tag", "untag", "archive", "unarchive", "delete"]))
            .required("action")
            .property("parent_id", nullable(uuid()))
            .property("tags", nullable(Tags::schema()))
            .property("cascade", ObjectBuilder::new().schema_type(SchemaType::from_iter([Type::Boolean, Type::Null])))
            .additional_properties(Some(schema::AdditionalProperties::FreeForm(false)))
            .build();
        let moving =
            ObjectBuilder::new().schema_type(Type::Object).property("action", action(&["move"])).required("parent_id");
        let tagging = ObjectBuilder::new()
            .schema_type(Type::Object)
            .property("action", action(&["tag", "untag"]))
            .property("tags", ArrayBuilder::new().min_items(Some(1)))
            .required("tags");
        let other = ObjectBuilder::new()
            .schema_type(Type::Object)
            .property("action", action(&["archive", "unarchive", "delete"]));
        let rule = schema::OneOfBuilder::new().item(moving).item(tagging).item(other);
        Schema::AllOf(schema::AllOfBuilder::new().item(object).item(rule).build())
    }

    /// Which notebooks a list shows.
    #[derive(Debug, ToSchema)]
    #[schema(rename_all = "lowercase")]
    pub enum NotebookScope {
        Owned,
        Shared,
        Public,
    }

    /// Which notebooks' tags are counted.
    #[derive(Debug, ToSchema)]
    #[schema(rename_all = "lowercase")]
    pub enum TagScope {
        Owned,
        Public,
    }

    /// A notebook status a list may ask for.
    #[derive(Debug, ToSchema)]
    #[schema(rename_all = "lowercase")]
    pub enum NotebookStatus {
        Active,
        Archived,
    }

    #[derive(Debug, ToSchema)]
    #[schema(rename_all = "lowercase")]
    pub enum Visibility {
        Private,
        Shared,
        Public,
    }

    #[derive(Debug, ToSchema)]
    #[schema(rename_all = "lowercase")]
    pub enum SortOrder {
        Newest,
        Oldest,
    }

    /// Which copy of a document's file.
    #[derive(Debug, ToSchema)]
    #[schema(rename_all = "lowercase")]
    pub enum Variant {
        Original,
        Redacted,
    }

    #[derive(Debug, ToSchema)]
    #[schema(rename_all = "lowercase")]
    pub enum CollaborationStatus {
        Pending,
        Active,
        Declined,
        Revoked,
    }

    /// What a bulk request does.
    #[derive(Debug, ToSchema)]
    #[schema(rename_all = "lowercase")]
    pub enum BulkAction {
        Move,
        Tag,
        Untag,
        Archive,
        Unarchive,
        Delete,
    }

    /// The OAuth 2.0 grants the token endpoint takes.
    #[derive(Debug, ToSchema)]
    #[schema(rename_all = "snake_case")]
    pub enum GrantType {
        Password,
        RefreshToken,
    }

    /// A realm role.
    #[derive(Debug, ToSchema)]
    #[schema(rename_all = "kebab-case")]
    pub enum Role {
        AetherAdmin,
        AetherUser,
        AetherViewer,
        NotebookAdmin,
        ComplianceOfficer,
    }

    #[derive(Debug, ToSchema)]
    #[schema(rename_all = "lowercase")]
    pub enum SyncScope {
        Me,
        All,
    }

    /// How a document search ranks.
    #[derive(Debug, ToSchema)]
    #[schema(rename_all = "lowercase")]
    pub enum SearchMode {
        Hybrid,
        Text,
        Semantic,
    }

    /// Where a document is in its processing.
    #[derive(Debug, ToSchema)]
    #[schema(rename_all = "lowercase")]
    pub enum ProcessingStatus {
        Pending,
        Processing,
        Completed,
        Failed,
    }

    #[derive(Debug, ToSchema)]
    #[schema(rename_all = "lowercase")]
    pub enum Permission {
        Read,
        Write,
        Admin,
    }
}
