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

/// `/openapi.json` and `/docs`.
pub fn router(document: utoipa::openapi::OpenApi) -> Router<AppState> {
    Router::new().merge(utoipa_swagger_ui::SwaggerUi::new("/docs").url("/openapi.json", document))
}
