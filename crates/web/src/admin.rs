//! The admin: dashboard, members, staff, keys, webhooks, audit.

use crate::page::render;
use crate::staff::Staff;
use askama::Template;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use patron_server::auth::Permission;
use patron_server::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/admin", get(dashboard))
}

#[derive(Template)]
#[template(path = "admin/dashboard.html")]
struct Dashboard {
    t: crate::i18n::Texts,
    staff: Staff,
}

async fn dashboard(staff: Staff) -> Response {
    if let Err(refused) = staff.require(Permission::Read) {
        return refused;
    }
    render(&Dashboard { t: staff.t, staff })
}
