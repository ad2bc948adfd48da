//! The OpenAPI 3.1 document, generated from the handlers' annotations, served at
//! `/openapi.json`, and the interactive docs at `/docs`.

use crate::AppState;
use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Patron",
        description = "Loyalty and customer-retention engine. Authenticate with `Authorization: Bearer pk_…` \
            (an API key) or a staff session. Errors are `{code, message, field?}`. Money is an integer in \
            minor units of the tenant's currency; instants are RFC 3339 with offset.",
        license(name = "Apache-2.0")
    ),
    modifiers(&BearerAuth),
    security(("api_key" = []))
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("pk_…")
                    .build(),
            ),
        );
    }
}

/// Answers any operation may give, documented once for all: 400 (not JSON), 401 (no or bad
/// credentials), 403 (role or scope), 404, 413 (body too large), 415, 422 (a field is wrong),
/// 429 (rate limit, with `Retry-After`).
struct CommonErrors;

const COMMON_ERRORS: &[(&str, &str)] = &[
    ("400", "The body is not JSON."),
    ("401", "A valid API key or staff session is required."),
    ("403", "The caller's role or key scope does not allow this."),
    ("404", "Not found in the caller's tenant."),
    ("413", "The body is larger than allowed."),
    ("415", "The body's content type is not accepted."),
    ("422", "A field is wrong; `field` names it."),
    (
        "429",
        "Too many requests for this key; retry after `Retry-After` seconds.",
    ),
];

impl Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            for operation in operations.into_iter().flatten() {
                for (status, description) in COMMON_ERRORS {
                    operation
                        .responses
                        .responses
                        .entry((*status).to_owned())
                        .or_insert_with(|| {
                            ResponseBuilder::new()
                                .description(*description)
                                .content(
                                    "application/json",
                                    ContentBuilder::new()
                                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                                        .build(),
                                )
                                .build()
                                .into()
                        });
                }
            }
        }
    }
}

/// `/openapi.json` and `/docs`.
/// Paths are gathered from the routers after `ApiDoc` is built, so the common errors are added
/// to the finished document here.
pub fn router(mut document: utoipa::openapi::OpenApi) -> Router<AppState> {
    CommonErrors.modify(&mut document);
    Router::new()
        .merge(utoipa_swagger_ui::SwaggerUi::new("/docs").url("/openapi.json", document))
        .layer(axum::middleware::from_fn(docs_security_headers))
}

/// What `/docs` may do: no page may frame it (clickjacking), nothing is sniffed, no plugin
/// runs. Swagger UI's own files set their styles, so its script and style sources are left to
/// the browser's defaults rather than the web pages' stricter policy.
pub const DOCS_CONTENT_SECURITY_POLICY: &str =
    "frame-ancestors 'none'; object-src 'none'; base-uri 'none'; form-action 'self'";

async fn docs_security_headers(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::{header, HeaderValue};
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(DOCS_CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}
