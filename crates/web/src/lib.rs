//! Patron's web pages, served by the same binary as the API: the owner's admin, the cashier
//! screen and the member page. Server-rendered HTML (askama templates in `templates/`) with a
//! little JavaScript; every text comes from the message files in `messages/`.
//!
//! Areas, each with its own module, templates folder and message files:
//! - `/admin/…`: staff sign-in and the admin (dashboard, members, programme, staff, keys,
//!   segments, webhooks, audit), gated by role;
//! - `/cashier`: the till;
//! - `/m/…`: the member page, public per tenant.

// Page helpers answer "no" with the page to show (`Result<_, Response>`), which handlers return
// as is; the response is large, but it is the answer, not an error travelling far.
#![allow(clippy::result_large_err)]

pub mod format;
pub mod i18n;
pub mod page;
pub mod reasons;
pub mod segment_condition;
pub mod staff;

mod admin;
mod cashier;
mod member_page;
mod programme;
mod settings;

pub use member_page::MEMBER_COOKIE;

use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use patron_server::AppState;

/// Where scripts, styles, images and forms may come from: this server only. No inline
/// script or style anywhere, so an injected `<script>` would not run even if it slipped
/// past escaping.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; media-src 'self' blob:; \
     object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// Every page and static file of the web.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(page::front))
        .route("/lang/{code}", get(page::choose_language))
        .route("/static/app.css", get(app_css))
        .route("/static/app.js", get(app_js))
        .merge(staff::routes())
        .merge(admin::routes())
        .merge(programme::routes())
        .merge(settings::routes())
        .merge(cashier::routes())
        .merge(member_page::routes())
        .layer(axum::middleware::from_fn(security_headers))
}

async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

pub(crate) fn static_file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

async fn app_css() -> Response {
    static_file("text/css; charset=utf-8", include_str!("../static/app.css"))
}

async fn app_js() -> Response {
    static_file(
        "text/javascript; charset=utf-8",
        include_str!("../static/app.js"),
    )
}
