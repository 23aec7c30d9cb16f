//! The OpenAPI document's frame; paths are added from the route annotations.

use utoipa::Modify;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Aether API",
        description = "The backend of the Aether AI document platform. Errors are RFC 9457 problem \
                       documents with a stable `code`; lists use `{items, next_cursor}` with `limit`/`cursor`.",
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "operations", description = "Liveness, readiness, metrics"),
        (name = "auth", description = "The built-in identity provider"),
        (name = "users", description = "Accounts"),
        (name = "notebooks", description = "Notebooks and their hierarchy"),
        (name = "sharing", description = "Invitations, permissions and why a user has access"),
        (name = "admin", description = "Administration: the audit log"),
    )
)]
#[derive(Debug)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.bearer_format = Some("JWT".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}
