//! `/admin/audit`: the audit log, newest first, a page at a time: who (by name), when (in the
//! tenant's zone), what in words, on whom or what (by name), and what changed, field by field.

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
    /// The action in words, and its code.
    action_label: String,
    action: String,
    subject: String,
    /// What changed: "field: before → after", or the values recorded.
    changes: Vec<String>,
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

/// A recorded value as staff read it: text as is, nothing as a dash.
fn value_text(value: Option<&serde_json::Value>) -> String {
    match value {
        None | Some(serde_json::Value::Null) => "—".to_owned(),
        Some(serde_json::Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    }
}

/// What an entry changed, one line per field: "field: before → after" for the fields that
/// differ, "field: value" when only one side was recorded.
fn changes(
    t: Texts,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
) -> Vec<String> {
    let field = |name: &str| {
        let key = format!("settings.audit.field.{name}");
        match t.get(&key) {
            text if text == key => name.to_owned(),
            text => text.to_owned(),
        }
    };
    let object = |value: &Option<serde_json::Value>| match value {
        Some(serde_json::Value::Object(map)) => Some(map.clone()),
        _ => None,
    };
    match (object(&before), object(&after)) {
        (Some(old), Some(new)) => {
            let mut names: Vec<&String> = new.keys().collect();
            names.extend(old.keys().filter(|name| !new.contains_key(*name)));
            names
                .into_iter()
                .filter(|name| old.get(*name) != new.get(*name))
                .map(|name| {
                    format!(
                        "{}: {} → {}",
                        field(name),
                        value_text(old.get(name)),
                        value_text(new.get(name))
                    )
                })
                .collect()
        }
        (None, Some(one)) | (Some(one), None) => one
            .iter()
            .map(|(name, value)| format!("{}: {}", field(name), value_text(Some(value))))
            .collect(),
        (None, None) => [before, after]
            .into_iter()
            .flatten()
            .map(|value| value_text(Some(&value)))
            .collect(),
    }
}

/// The action in words ("Sửa thành viên"), or its code when it has none.
fn action_label(t: Texts, action: &str) -> String {
    let key = format!("settings.audit.action.{}", action.replace('.', "_"));
    match t.get(&key) {
        text if text == key => action.to_owned(),
        text => text.to_owned(),
    }
}

/// Names of the things entries are about, looked up once per page.
struct Names {
    users: Vec<patron_store::users::User>,
    keys: Vec<patron_store::admin::ApiKeyView>,
    rewards: Vec<patron_store::RewardView>,
    members: std::collections::HashMap<String, String>,
}

impl Names {
    fn subject(&self, t: Texts, subject: &str) -> String {
        let (kind, id) = subject.split_once(':').unwrap_or((subject, ""));
        let found = match kind {
            "member" => self.members.get(id).cloned(),
            "user" => self
                .users
                .iter()
                .find(|user| user.id == id)
                .map(|user| format!("{} ({})", user.name, user.email)),
            "api_key" => self
                .keys
                .iter()
                .find(|key| key.id == id)
                .map(|key| t.fill("settings.audit.actor_key", &[("name", &key.name)])),
            "reward" => self
                .rewards
                .iter()
                .find(|reward| reward.id == id)
                .map(|reward| t.fill("settings.audit.subject_reward", &[("name", &reward.name)])),
            "programme" => Some(t.fill("settings.audit.subject_programme", &[("version", id)])),
            _ => None,
        };
        found.unwrap_or_else(|| subject.to_owned())
    }
}

/// A member's name (and phone), or that they were erased.
async fn member_names(
    state: &AppState,
    staff: &Staff,
    entries: &[patron_store::audit::AuditEntry],
) -> std::collections::HashMap<String, String> {
    let mut names = std::collections::HashMap::new();
    for entry in entries {
        let Some(id) = entry.subject.strip_prefix("member:") else {
            continue;
        };
        if names.contains_key(id) {
            continue;
        }
        let Ok(member_id) = patron_core::MemberId::parse(id) else {
            continue;
        };
        let reference = patron_store::MemberRef::Id(member_id);
        let name = match state
            .store
            .member(staff.tenant_id, &reference, chrono::Utc::now())
            .await
        {
            Ok(member) => match (member.name, member.phone) {
                (Some(name), Some(phone)) => format!("{name} ({phone})"),
                (Some(name), None) => name,
                (None, Some(phone)) => phone,
                (None, None) => staff.t.get("settings.audit.member_erased").to_owned(),
            },
            Err(_) => staff.t.get("settings.audit.member_gone").to_owned(),
        };
        names.insert(id.to_owned(), name);
    }
    names
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
    let (users, keys, rewards) = match (
        store.users(staff.tenant_id).await,
        store.api_keys(staff.tenant_id).await,
        store.rewards(staff.tenant_id, None).await,
    ) {
        (Ok(users), Ok(keys), Ok(rewards)) => (users, keys, rewards),
        (Err(error), _, _) | (_, Err(error), _) | (_, _, Err(error)) => {
            return page::failed(t, error)
        }
    };
    let names = Names {
        members: member_names(&state, &staff, &entries).await,
        users,
        keys,
        rewards,
    };
    let older = (entries.len() as i64 == PAGE_SIZE)
        .then(|| entries.last().map(|entry| entry.id.clone()))
        .flatten();
    let entries = entries
        .into_iter()
        .map(|entry| EntryRow {
            at: local_time(&staff, &entry.at),
            actor: actor_label(t, &names.users, &names.keys, &entry.actor),
            action_label: action_label(t, &entry.action),
            subject: names.subject(t, &entry.subject),
            changes: changes(t, entry.before, entry.after),
            action: entry.action,
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
