//! Campaigns and the message outbox as stored. The application layer owns what a campaign's
//! definition says (JSON here) and decides each message's fate; the store keeps the rows,
//! queues a campaign's messages in bulk, leases due messages to one dispatcher at a time
//! (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite has one writer) and answers the report's
//! counts and conversions.

use crate::db::{Bind, Row};
use crate::sql::Rows;
use crate::{binds, Backend, Store, StoreError};
use patron_core::time::{from_micros, to_micros, Timestamp};
use patron_core::{MemberId, TenantId};

/// A campaign as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CampaignRow {
    pub id: String,
    pub tenant_id: TenantId,
    pub name: String,
    pub segment_id: String,
    /// JSON: the application layer's definition.
    pub definition: String,
    /// `draft`, `scheduled`, `sending`, `sent`, `cancelled`.
    pub status: String,
    pub scheduled_at: Option<Timestamp>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    /// Members targeted when it started.
    pub audience: Option<i64>,
    pub created_at: Timestamp,
    pub created_by: String,
}

/// A message to queue.
#[derive(Clone, Debug)]
pub struct NewMessage {
    pub id: String,
    pub member_id: MemberId,
    pub campaign_id: Option<String>,
    pub variant: i64,
    pub held_out: bool,
    pub purpose: String,
    pub channel: String,
    pub to_address: String,
    /// JSON: the rendered body for `channel`.
    pub body: String,
    /// JSON: the channels to fall back to, each with its rendered body.
    pub fallback: Option<String>,
    /// `queued`, or final at once: `held_out`, `suppressed`.
    pub status: String,
    pub reason: Option<String>,
    pub next_at: Timestamp,
}

/// A message leased to the dispatcher.
#[derive(Clone, Debug)]
pub struct MessageRow {
    pub id: String,
    pub tenant_id: TenantId,
    pub member_id: MemberId,
    pub campaign_id: Option<String>,
    pub purpose: String,
    pub channel: String,
    pub to_address: String,
    pub body: String,
    pub fallback: Option<String>,
    pub attempts: i64,
    pub created_at: Timestamp,
}

/// What happened to a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageOutcome {
    Sent {
        provider_id: String,
        cost: Option<i64>,
        parts: i64,
    },
    /// Not now: tried again at `until` (quiet hours, advertising hours, a cap, a retryable
    /// failure).
    Deferred { until: Timestamp, reason: String },
    /// Never sent, for `reason` (no consent, opted out, invalid address, …).
    Suppressed { reason: String },
    /// Failed for good on its last channel.
    Failed { reason: String, detail: String },
    /// Goes on on the next channel.
    FellBack {
        channel: String,
        to_address: String,
        body: String,
        fallback: Option<String>,
        reason: String,
    },
}

/// Counts of a campaign's messages by variant, hold-out, status, reason and channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageCount {
    pub variant: i64,
    pub held_out: bool,
    pub status: String,
    pub reason: Option<String>,
    pub channel: String,
    pub messages: i64,
    pub cost: i64,
}

/// A campaign member's purchases in the attribution window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conversion {
    pub variant: i64,
    pub held_out: bool,
    pub status: String,
    pub purchases: i64,
    pub revenue: i64,
}

const CAMPAIGN_COLUMNS: &str =
    "id, tenant_id, name, segment_id, definition, status, scheduled_at, \
     started_at, finished_at, audience, created_at, created_by";

const MESSAGE_COLUMNS: &str =
    "id, tenant_id, member_id, campaign_id, purpose, channel, to_address, \
     body, fallback, attempts, created_at";

fn campaign_from(row: &Row) -> Result<CampaignRow, StoreError> {
    Ok(CampaignRow {
        id: row.text("id")?,
        tenant_id: crate::batch::parse_tenant_id(&row.text("tenant_id")?)?,
        name: row.text("name")?,
        segment_id: row.text("segment_id")?,
        definition: row.text("definition")?,
        status: row.text("status")?,
        scheduled_at: row.opt_int("scheduled_at")?.map(from_micros),
        started_at: row.opt_int("started_at")?.map(from_micros),
        finished_at: row.opt_int("finished_at")?.map(from_micros),
        audience: row.opt_int("audience")?,
        created_at: from_micros(row.int("created_at")?),
        created_by: row.text("created_by")?,
    })
}

fn message_from(row: &Row) -> Result<MessageRow, StoreError> {
    Ok(MessageRow {
        id: row.text("id")?,
        tenant_id: crate::batch::parse_tenant_id(&row.text("tenant_id")?)?,
        member_id: crate::batch::parse_member_id(&row.text("member_id")?)?,
        campaign_id: row.opt_text("campaign_id")?,
        purpose: row.text("purpose")?,
        channel: row.text("channel")?,
        to_address: row.text("to_address")?,
        body: row.text("body")?,
        fallback: row.opt_text("fallback")?,
        attempts: row.int("attempts")?,
        created_at: from_micros(row.int("created_at")?),
    })
}

/// How long a leased message is the dispatcher's before another may take it.
pub const LEASE_MICROS: i64 = 120_000_000;

impl Store {
    /// Saves a new campaign.
    pub async fn create_campaign(&self, campaign: &CampaignRow) -> Result<(), StoreError> {
        self.db
            .execute(
                &format!(
                    "INSERT INTO campaigns ({CAMPAIGN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
                ),
                binds![
                    campaign.id.clone(),
                    campaign.tenant_id.to_string(),
                    campaign.name.clone(),
                    campaign.segment_id.clone(),
                    campaign.definition.clone(),
                    campaign.status.clone(),
                    campaign.scheduled_at.map(to_micros),
                    campaign.started_at.map(to_micros),
                    campaign.finished_at.map(to_micros),
                    campaign.audience,
                    to_micros(campaign.created_at),
                    campaign.created_by.clone()
                ],
            )
            .await?;
        Ok(())
    }

    pub async fn campaign(&self, tenant_id: TenantId, id: &str) -> Result<CampaignRow, StoreError> {
        let row = self
            .db
            .fetch_optional(
                &format!(
                    "SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE tenant_id = $1 AND id = $2"
                ),
                binds![tenant_id.to_string(), id],
            )
            .await?
            .ok_or(StoreError::NotFound { what: "campaign" })?;
        campaign_from(&row)
    }

    /// The tenant's campaigns, newest first.
    pub async fn campaigns(&self, tenant_id: TenantId) -> Result<Vec<CampaignRow>, StoreError> {
        self.db
            .fetch(
                &format!(
                    "SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE tenant_id = $1 ORDER BY created_at DESC, id LIMIT 500"
                ),
                binds![tenant_id.to_string()],
            )
            .await?
            .iter()
            .map(campaign_from)
            .collect()
    }

    /// Campaigns scheduled at or before `now`, of every tenant.
    pub async fn due_campaigns(&self, now: Timestamp) -> Result<Vec<CampaignRow>, StoreError> {
        self.db
            .fetch(
                &format!(
                    "SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE status = 'scheduled' AND scheduled_at <= $1 ORDER BY scheduled_at LIMIT 100"
                ),
                binds![to_micros(now)],
            )
            .await?
            .iter()
            .map(campaign_from)
            .collect()
    }

    /// Moves a campaign from one of `from` to `to`; false when it was in none of them (another
    /// node started it, or it was cancelled).
    pub async fn move_campaign(
        &self,
        tenant_id: TenantId,
        id: &str,
        from: &[&str],
        to: &str,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let column = match to {
            "sending" => Some("started_at"),
            "sent" | "cancelled" => Some("finished_at"),
            _ => None,
        };
        let statuses: Vec<String> = from.iter().map(|status| (*status).to_owned()).collect();
        let mut values: Vec<Bind> = vec![to.into()];
        let mut set = String::new();
        if let Some(column) = column {
            values.push(to_micros(at).into());
            set = format!(", {column} = $2");
        }
        let first = values.len() + 1;
        values.extend([
            tenant_id.to_string().into(),
            id.into(),
            Bind::Texts(statuses),
        ]);
        let changed = self
            .db
            .execute(
                &format!(
                    "UPDATE campaigns SET status = $1{set} WHERE tenant_id = ${first} AND id = ${} AND {}",
                    first + 1,
                    crate::sql::one_of(self.backend, "status", first + 2)
                ),
                values,
            )
            .await?;
        Ok(changed == 1)
    }

    /// Records how many members a started campaign targets.
    pub async fn set_campaign_audience(&self, id: &str, audience: i64) -> Result<(), StoreError> {
        self.db
            .execute(
                "UPDATE campaigns SET audience = $1 WHERE id = $2",
                binds![audience, id],
            )
            .await?;
        Ok(())
    }

    /// Queues messages in one transaction (a campaign's whole audience, or a part of it).
    pub async fn queue_messages(
        &self,
        tenant_id: TenantId,
        messages: Vec<NewMessage>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut rows = Rows::new(16);
        let tenant = tenant_id.to_string();
        let created = to_micros(now);
        for message in messages {
            rows.push(vec![
                message.id.into(),
                tenant.clone().into(),
                message.member_id.to_string().into(),
                message.campaign_id.into(),
                message.variant.into(),
                i64::from(message.held_out).into(),
                message.purpose.into(),
                message.channel.into(),
                message.to_address.into(),
                message.body.into(),
                message.fallback.into(),
                message.status.into(),
                message.reason.into(),
                0i64.into(),
                to_micros(message.next_at).into(),
                created.into(),
            ]);
        }
        let mut tx = self.db.begin_write().await?;
        tx.execute_all(rows.statements(
            self.backend,
            "INSERT INTO messages (id, tenant_id, member_id, campaign_id, variant, held_out, purpose, channel, \
             to_address, body, fallback, status, reason, attempts, next_at, created_at)",
            "ON CONFLICT (id) DO NOTHING",
        ))
        .await?;
        tx.commit().await
    }

    /// Leases up to `limit` messages due at `now` (queued or deferred, not leased by another
    /// dispatcher) for [`LEASE_MICROS`].
    pub async fn lease_messages(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<MessageRow>, StoreError> {
        let now = to_micros(now);
        let skip_locked = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let mut tx = self.db.begin_write().await?;
        let ids: Vec<String> = tx
            .fetch(
                &format!(
                    "SELECT id FROM messages WHERE status IN ('queued', 'deferred') AND next_at <= $1 \
                     AND (lease_until IS NULL OR lease_until < $1) ORDER BY next_at LIMIT {}{skip_locked}",
                    limit.clamp(1, 1_000)
                ),
                binds![now],
            )
            .await?
            .iter()
            .map(|row| row.text("id"))
            .collect::<Result<_, _>>()?;
        if ids.is_empty() {
            tx.commit().await?;
            return Ok(Vec::new());
        }
        tx.execute(
            &format!(
                "UPDATE messages SET lease_until = $1, attempts = attempts + 1 WHERE {}",
                crate::sql::one_of(self.backend, "id", 2)
            ),
            vec![(now + LEASE_MICROS).into(), Bind::Texts(ids.clone())],
        )
        .await?;
        let rows = tx
            .fetch(
                &format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages WHERE {}",
                    crate::sql::one_of(self.backend, "id", 1)
                ),
                vec![Bind::Texts(ids)],
            )
            .await?;
        tx.commit().await?;
        rows.iter().map(message_from).collect()
    }

    /// Records what happened to a leased message.
    pub async fn finish_message(
        &self,
        id: &str,
        outcome: &MessageOutcome,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let at = to_micros(at);
        let (sql, values): (&str, Vec<Bind>) = match outcome {
            MessageOutcome::Sent {
                provider_id,
                cost,
                parts,
            } => (
                "UPDATE messages SET status = 'sent', provider_id = $1, cost = $2, parts = $3, sent_at = $4, \
                 reason = NULL, lease_until = NULL WHERE id = $5",
                binds![provider_id.clone(), *cost, *parts, at, id],
            ),
            MessageOutcome::Deferred { until, reason } => (
                "UPDATE messages SET status = 'deferred', next_at = $1, reason = $2, lease_until = NULL WHERE id = $3",
                binds![to_micros(*until), reason.clone(), id],
            ),
            MessageOutcome::Suppressed { reason } => (
                "UPDATE messages SET status = 'suppressed', reason = $1, lease_until = NULL WHERE id = $2",
                binds![reason.clone(), id],
            ),
            MessageOutcome::Failed { reason, detail } => (
                "UPDATE messages SET status = 'failed', reason = $1, detail = $2, lease_until = NULL WHERE id = $3",
                binds![reason.clone(), detail.clone(), id],
            ),
            MessageOutcome::FellBack {
                channel,
                to_address,
                body,
                fallback,
                reason,
            } => (
                "UPDATE messages SET status = 'queued', channel = $1, to_address = $2, body = $3, fallback = $4, \
                 detail = $5, next_at = $6, lease_until = NULL WHERE id = $7",
                binds![channel.clone(), to_address.clone(), body.clone(), fallback.clone(), reason.clone(), at, id],
            ),
        };
        self.db.execute(sql, values).await?;
        Ok(())
    }

    /// What was sent to a member since `since`: (channel, purpose, when), for the caps.
    pub async fn sent_to(
        &self,
        member_id: MemberId,
        since: Timestamp,
    ) -> Result<Vec<(String, String, Timestamp)>, StoreError> {
        self.db
            .fetch(
                "SELECT channel, purpose, sent_at FROM messages WHERE member_id = $1 AND sent_at >= $2 ORDER BY sent_at",
                binds![member_id.to_string(), to_micros(since)],
            )
            .await?
            .iter()
            .map(|row| {
                Ok((
                    row.text("channel")?,
                    row.text("purpose")?,
                    from_micros(row.int("sent_at")?),
                ))
            })
            .collect()
    }

    /// A provider's report that a message arrived (or failed): matched by the provider's id.
    pub async fn message_delivered(
        &self,
        provider_id: &str,
        delivered: bool,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let changed = if delivered {
            self.db
                .execute(
                    "UPDATE messages SET status = 'delivered', delivered_at = $1 WHERE provider_id = $2 AND status = 'sent'",
                    binds![to_micros(at), provider_id],
                )
                .await?
        } else {
            self.db
                .execute(
                    "UPDATE messages SET status = 'failed', reason = 'not_delivered' WHERE provider_id = $1 AND status = 'sent'",
                    binds![provider_id],
                )
                .await?
        };
        Ok(changed > 0)
    }

    /// Every message of a campaign as queued (bodies and all), in id order.
    pub async fn campaign_messages(
        &self,
        campaign_id: &str,
    ) -> Result<Vec<NewMessage>, StoreError> {
        self.db
            .fetch(
                "SELECT id, member_id, campaign_id, variant, held_out, purpose, channel, to_address, body, \
                 fallback, status, reason, next_at FROM messages WHERE campaign_id = $1 ORDER BY id",
                binds![campaign_id],
            )
            .await?
            .iter()
            .map(|row| {
                Ok(NewMessage {
                    id: row.text("id")?,
                    member_id: crate::batch::parse_member_id(&row.text("member_id")?)?,
                    campaign_id: row.opt_text("campaign_id")?,
                    variant: row.int("variant")?,
                    held_out: row.int("held_out")? != 0,
                    purpose: row.text("purpose")?,
                    channel: row.text("channel")?,
                    to_address: row.text("to_address")?,
                    body: row.text("body")?,
                    fallback: row.opt_text("fallback")?,
                    status: row.text("status")?,
                    reason: row.opt_text("reason")?,
                    next_at: from_micros(row.int("next_at")?),
                })
            })
            .collect()
    }

    /// Takes a cancelled campaign's unsent messages out of the queue.
    pub async fn cancel_campaign_messages(&self, campaign_id: &str) -> Result<(), StoreError> {
        self.db
            .execute(
                "UPDATE messages SET status = 'suppressed', reason = 'cancelled' WHERE campaign_id = $1 \
                 AND status IN ('queued', 'deferred')",
                binds![campaign_id],
            )
            .await?;
        Ok(())
    }

    /// Whether a campaign still has messages to send (queued or deferred).
    pub async fn campaign_pending(&self, campaign_id: &str) -> Result<i64, StoreError> {
        let row = self
            .db
            .fetch_one(
                "SELECT COUNT(*) AS n FROM messages WHERE campaign_id = $1 AND status IN ('queued', 'deferred')",
                binds![campaign_id],
            )
            .await?;
        row.int("n")
    }

    /// A campaign's messages counted by variant, hold-out, status, reason and channel.
    pub async fn campaign_counts(
        &self,
        campaign_id: &str,
    ) -> Result<Vec<MessageCount>, StoreError> {
        self.db
            .fetch(
                "SELECT variant, held_out, status, reason, channel, COUNT(*) AS n, COALESCE(SUM(cost), 0) AS cost \
                 FROM messages WHERE campaign_id = $1 GROUP BY variant, held_out, status, reason, channel \
                 ORDER BY variant, held_out, status, reason, channel",
                binds![campaign_id],
            )
            .await?
            .iter()
            .map(|row| {
                Ok(MessageCount {
                    variant: row.int("variant")?,
                    held_out: row.int("held_out")? != 0,
                    status: row.text("status")?,
                    reason: row.opt_text("reason")?,
                    channel: row.text("channel")?,
                    messages: row.int("n")?,
                    cost: row.int("cost")?,
                })
            })
            .collect()
    }

    /// The purchases in `[from, to)` of each member of a campaign who bought then.
    pub async fn campaign_conversions(
        &self,
        tenant_id: TenantId,
        campaign_id: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Conversion>, StoreError> {
        self.db
            .fetch(
                "SELECT m.variant, m.held_out, m.status, p.purchases, p.revenue FROM messages m JOIN \
                 (SELECT member_id, COUNT(*) AS purchases, SUM(amount - refunded_amount) AS revenue FROM events \
                  WHERE tenant_id = $1 AND kind = 'purchase' AND voided_at IS NULL AND occurred_at >= $2 AND occurred_at < $3 \
                  GROUP BY member_id) p ON p.member_id = m.member_id WHERE m.campaign_id = $4",
                binds![tenant_id.to_string(), to_micros(from), to_micros(to), campaign_id],
            )
            .await?
            .iter()
            .map(|row| {
                Ok(Conversion {
                    variant: row.int("variant")?,
                    held_out: row.int("held_out")? != 0,
                    status: row.text("status")?,
                    purchases: row.int("purchases")?,
                    revenue: row.int("revenue")?,
                })
            })
            .collect()
    }

    /// Keeps a tenant's account with a provider, its credentials sealed by the caller.
    pub async fn save_channel_account(
        &self,
        tenant_id: TenantId,
        channel: &str,
        provider: &str,
        sealed: &str,
    ) -> Result<(), StoreError> {
        self.db
            .execute(
                "INSERT INTO channel_accounts (tenant_id, channel, provider, sealed, updated_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (tenant_id, channel) DO UPDATE SET provider = excluded.provider, sealed = excluded.sealed, \
                 updated_at = excluded.updated_at",
                binds![tenant_id.to_string(), channel, provider, sealed, to_micros(chrono::Utc::now())],
            )
            .await?;
        Ok(())
    }

    /// A tenant's accounts: (channel, provider, sealed credentials).
    pub async fn channel_accounts(
        &self,
        tenant_id: TenantId,
    ) -> Result<Vec<(String, String, String)>, StoreError> {
        self.db
            .fetch(
                "SELECT channel, provider, sealed FROM channel_accounts WHERE tenant_id = $1 ORDER BY channel",
                binds![tenant_id.to_string()],
            )
            .await?
            .iter()
            .map(|row| Ok((row.text("channel")?, row.text("provider")?, row.text("sealed")?)))
            .collect()
    }

    /// A tenant's rules of respect, as JSON (none kept: `None`).
    pub async fn outreach_settings(
        &self,
        tenant_id: TenantId,
    ) -> Result<Option<String>, StoreError> {
        self.db
            .fetch_optional(
                "SELECT settings FROM outreach_settings WHERE tenant_id = $1",
                binds![tenant_id.to_string()],
            )
            .await?
            .map(|row| row.text("settings"))
            .transpose()
    }

    pub async fn save_outreach_settings(
        &self,
        tenant_id: TenantId,
        settings: &str,
    ) -> Result<(), StoreError> {
        self.db
            .execute(
                "INSERT INTO outreach_settings (tenant_id, settings, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (tenant_id) DO UPDATE SET settings = excluded.settings, updated_at = excluded.updated_at",
                binds![tenant_id.to_string(), settings, to_micros(chrono::Utc::now())],
            )
            .await?;
        Ok(())
    }
}
