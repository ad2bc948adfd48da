//! The cashier screen.

use crate::page::render;
use crate::staff::Staff;
use askama::Template;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use patron_server::auth::Permission;
use patron_server::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/cashier", get(till))
}

#[derive(Template)]
#[template(path = "cashier/till.html")]
struct Till {
    t: crate::i18n::Texts,
    staff: Staff,
}

async fn till(staff: Staff) -> Response {
    if let Err(refused) = staff.require(Permission::RecordEvents) {
        return refused;
    }
    render(&Till { t: staff.t, staff })
}
