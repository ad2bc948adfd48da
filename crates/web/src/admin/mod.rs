//! The admin's owner pages: the dashboard (`/admin`, with CSV downloads of its tables), the
//! members (`/admin/members/…`: search, profile, adjustment, merge, Decree 13 export and
//! erasure), and the segments (`/admin/segments/…`: builder, live count, members, CSV).
//! Every role that may read opens them, except the cashier, whose place is the till.

mod charts;
mod csv;
mod dashboard;
mod members;
mod segments;

pub(crate) use segments::discount_text;

use crate::staff::Staff;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use chrono::{NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use patron_core::time::Timestamp;
use patron_server::auth::Permission;
use patron_server::AppState;
use patron_store::users::Role;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin", get(dashboard::dashboard))
        .route("/admin/export/{file}", get(dashboard::export))
        .route("/admin/members", get(members::list))
        .route("/admin/members/{id}", get(members::profile))
        .route("/admin/members/{id}/adjust", post(members::adjust))
        .route("/admin/members/{id}/merge", post(members::merge))
        .route(
            "/admin/members/{id}/merge/confirm",
            post(members::merge_confirm),
        )
        .route("/admin/members/{id}/export", get(members::export))
        .route("/admin/members/{id}/erase", post(members::erase))
        .route("/admin/segments", get(segments::list))
        .route(
            "/admin/segments/new",
            get(segments::new_builder).post(segments::submit_new),
        )
        .route("/admin/segments/{id}", get(segments::show))
        .route(
            "/admin/segments/{id}/edit",
            get(segments::edit_builder).post(segments::submit_edit),
        )
        .route("/admin/segments/{id}/members.csv", get(segments::download))
        .route("/admin/segments/{id}/archive", post(segments::archive))
}

/// A 403 page unless the staff member may read the admin (a cashier may read, at the till).
fn reader(staff: &Staff) -> Result<(), Response> {
    if staff.role() == Role::Cashier {
        return Err(crate::page::forbidden(staff.t));
    }
    staff.require(Permission::Read)
}

/// Percent-encodes `text` for a query string.
fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The instant a local day starts in `zone` (the first instant after midnight when a clock
/// change skips it).
fn local_midnight(day: NaiveDate, zone: Tz) -> Timestamp {
    let midnight = day.and_hms_opt(0, 0, 0).expect("midnight is a time");
    (0..3)
        .find_map(|hours| {
            zone.from_local_datetime(&(midnight + chrono::Duration::hours(hours)))
                .earliest()
        })
        .map(|at| at.with_timezone(&Utc))
        .unwrap_or_else(|| Utc.from_utc_datetime(&midnight))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_start_at_local_midnight() {
        let zone: Tz = "Asia/Ho_Chi_Minh".parse().unwrap();
        let day = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
        assert_eq!(
            local_midnight(day, zone).to_rfc3339(),
            "2026-02-28T17:00:00+00:00"
        );
        assert_eq!(url_encode("a b+c/đ"), "a%20b%2Bc%2F%C4%91");
    }
}
