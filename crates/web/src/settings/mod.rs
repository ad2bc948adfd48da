//! The owner's settings: staff (`/admin/staff`), API keys (`/admin/keys`), webhooks with their
//! delivery log (`/admin/webhooks`) and the audit log (`/admin/audit`). Owners only
//! (`Permission::Administer`); every other role gets a 403. Each page calls the same store
//! functions as the JSON API, so both write the same audit entries.

mod audit;
mod keys;
mod staff;
mod webhooks;

use crate::i18n::Texts;
use crate::staff::Staff;
use axum::Router;
use patron_server::AppState;
use patron_store::admin::ApiKeyView;
use patron_store::users::{Role, User};

pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(staff::routes())
        .merge(keys::routes())
        .merge(webhooks::routes())
        .merge(audit::routes())
}

/// An instant the store wrote as RFC 3339, as the visitor reads it in the tenant's zone; the
/// text as is if it is not one.
pub(crate) fn local_time(staff: &Staff, rfc3339: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(rfc3339) {
        Ok(at) => crate::format::date_time(
            staff.t.locale,
            at.with_timezone(&chrono::Utc),
            staff.tenant.zone,
        ),
        Err(_) => rfc3339.to_owned(),
    }
}

/// Who an audit actor (`user:<id>`, `key:<id>`, `cli`) is, in words.
pub(crate) fn actor_label(t: Texts, users: &[User], keys: &[ApiKeyView], actor: &str) -> String {
    if let Some(id) = actor.strip_prefix("user:") {
        if let Some(user) = users.iter().find(|user| user.id == id) {
            return format!("{} ({})", user.name, user.email);
        }
    }
    if let Some(id) = actor.strip_prefix("key:") {
        if let Some(key) = keys.iter().find(|key| key.id == id) {
            return t.fill("settings.audit.actor_key", &[("name", &key.name)]);
        }
    }
    if actor == "cli" {
        return t.get("settings.audit.actor_cli").to_owned();
    }
    if actor == "system" {
        return t.get("settings.audit.actor_system").to_owned();
    }
    actor.to_owned()
}

/// The roles a person may hold, in order of power, with their message keys.
pub(crate) const STAFF_ROLES: [(Role, &str); 5] = [
    (Role::Owner, "role.owner"),
    (Role::Manager, "role.manager"),
    (Role::Marketer, "role.marketer"),
    (Role::Cashier, "role.cashier"),
    (Role::Viewer, "role.viewer"),
];

/// The message key of a role's name.
pub(crate) fn role_key(role: Role) -> &'static str {
    STAFF_ROLES
        .iter()
        .find(|(candidate, _)| *candidate == role)
        .map(|(_, key)| *key)
        .unwrap_or("role.integration")
}

/// A field at fault in a settings form, with its message.
pub(crate) struct FieldFault {
    pub field: String,
    pub message: String,
}

impl FieldFault {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldFault {
        FieldFault {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The message for `field` when it is the one at fault.
pub(crate) fn fault_for<'a>(fault: &'a Option<FieldFault>, field: &str) -> Option<&'a str> {
    fault
        .as_ref()
        .filter(|fault| fault.field == field)
        .map(|fault| fault.message.as_str())
}
