//! `/admin/audit`: the audit log, newest first, a page at a time: who, when (in the tenant's
//! zone), what, and the value before and after (JSON, shown as text).

use super::{actor_label, local_time};
use crate::i18n::Texts;
use crate::page::{self, render};
use crate::staff::Staff;
use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use patron_server::auth::Permission;
use patron_server::AppState;
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new().route("/admin/audit", get(log))
}

/// Entries on one page.
const PAGE_SIZE: i64 = 50;

struct EntryRow {
    at: String,
    actor: String,
    action: String,
    subject: String,
    before: Option<String>,
    after: Option<String>,
}

#[derive(Template)]
#[template(path = "settings/audit.html")]
struct AuditPage {
    t: Texts,
    staff: Staff,
    entries: Vec<EntryRow>,
    /// The `before` of the next (older) page, when there may be one.
    older: Option<String>,
    is_first_page: bool,
}

#[derive(Deserialize)]
struct AuditQuery {
    before: Option<String>,
}

fn pretty(value: Option<serde_json::Value>) -> Option<String> {
    value.map(|value| serde_json::to_string_pretty(&value).unwrap_or_else(|_| value.to_string()))
}

async fn log(
    State(state): State<AppState>,
    staff: Staff,
    Query(query): Query<AuditQuery>,
) -> Response {
    if let Err(refused) = staff.require(Permission::Administer) {
        return refused;
    }
    let t = staff.t;
    let before = query.before.filter(|before| !before.is_empty());
    let store = &state.store;
    let entries = match store
        .audit_log(staff.tenant_id, PAGE_SIZE, before.as_deref())
        .await
    {
        Ok(entries) => entries,
        Err(error) => return page::failed(t, error),
    };
    let (users, keys) = match (
        store.users(staff.tenant_id).await,
        store.api_keys(staff.tenant_id).await,
    ) {
        (Ok(users), Ok(keys)) => (users, keys),
        (Err(error), _) | (_, Err(error)) => return page::failed(t, error),
    };
    let older = (entries.len() as i64 == PAGE_SIZE)
        .then(|| entries.last().map(|entry| entry.id.clone()))
        .flatten();
    let entries = entries
        .into_iter()
        .map(|entry| EntryRow {
            at: local_time(&staff, &entry.at),
            actor: actor_label(t, &users, &keys, &entry.actor),
            action: entry.action,
            subject: entry.subject,
            before: pretty(entry.before),
            after: pretty(entry.after),
        })
        .collect();
    render(&AuditPage {
        t,
        staff,
        entries,
        older,
        is_first_page: before.is_none(),
    })
}
