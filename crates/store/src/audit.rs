//! The audit log: every change made by a person or a key, with who, when, what, and the value
//! before and after. Written in the same transaction as the change where the change is a plain
//! row; read by owners through the API.

use crate::sql::Bind;
use crate::{binds, Store, StoreError};
use patron_core::time::{from_micros, to_micros};
use patron_core::TenantId;
use serde::Serialize;

/// Most entries in one page of the audit log.
pub const AUDIT_PAGE_MAX: i64 = 200;

/// Who made a change: `key:<id>`, `user:<id>` or `cli`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor(pub String);

impl Actor {
    pub fn key(id: &str) -> Actor {
        Actor(format!("key:{id}"))
    }
    pub fn user(id: &str) -> Actor {
        Actor(format!("user:{id}"))
    }
    pub fn cli() -> Actor {
        Actor("cli".into())
    }
}

/// One change to record.
pub struct Change<'a> {
    pub tenant_id: TenantId,
    pub actor: &'a Actor,
    /// e.g. `api_key.create`, `member.update`.
    pub action: &'a str,
    /// What was changed, e.g. `member:0193…`.
    pub subject: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Serialize)]
pub struct AuditEntry {
    pub id: String,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    pub at: String,
}

pub(crate) const INSERT: &str = "INSERT INTO audit_log (id, tenant_id, actor, action, subject, before_value, after_value, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

pub(crate) fn change_values(change: &Change<'_>) -> Vec<Bind> {
    vec![
        uuid::Uuid::now_v7().to_string().into(),
        change.tenant_id.to_string().into(),
        change.actor.0.clone().into(),
        change.action.into(),
        change.subject.clone().into(),
        change.before.as_ref().map(|value| value.to_string()).into(),
        change.after.as_ref().map(|value| value.to_string()).into(),
        to_micros(chrono::Utc::now()).into(),
    ]
}

/// Records `change` inside an open transaction.
pub async fn record_tx(tx: &mut crate::db::Tx<'_>, change: &Change<'_>) -> Result<(), StoreError> {
    tx.execute(INSERT, change_values(change)).await?;
    Ok(())
}

impl Store {
    /// Records `change` on its own.
    pub async fn audit(&self, change: &Change<'_>) -> Result<(), StoreError> {
        self.db.execute(INSERT, change_values(change)).await?;
        Ok(())
    }

    /// The tenant's audit log, newest first; `before` is the id of the last entry of the
    /// previous page.
    pub async fn audit_log(
        &self,
        tenant_id: TenantId,
        limit: i64,
        before: Option<&str>,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let zone = self.tenant(tenant_id).await?.zone;
        let rows = self
            .db
            .fetch(
                "SELECT id, actor, action, subject, before_value, after_value, at FROM audit_log \
                 WHERE tenant_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
                binds![
                    tenant_id.to_string(),
                    before.unwrap_or("~"),
                    limit.clamp(1, AUDIT_PAGE_MAX),
                ],
            )
            .await?;
        // A value that is not JSON any more is shown as none rather than failing the page.
        let json = |text: Option<String>| text.and_then(|text| serde_json::from_str(&text).ok());
        rows.iter()
            .map(|row| {
                Ok(AuditEntry {
                    id: row.text("id")?,
                    actor: row.text("actor")?,
                    action: row.text("action")?,
                    subject: row.text("subject")?,
                    before: json(row.opt_text("before_value")?),
                    after: json(row.opt_text("after_value")?),
                    at: crate::model::rfc3339(from_micros(row.int("at")?), zone),
                })
            })
            .collect()
    }
}
