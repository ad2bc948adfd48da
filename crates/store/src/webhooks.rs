//! Webhooks: tenants' subscriptions, the outbox and deliveries.
//!
//! The journal writes an outbox row for each topic an accepted event implies, in the same
//! transaction as the event, and only for topics some live subscription of the tenant wants
//! ([`outbox_rows`]). A dispatcher (in the server, which knows HTTP) then fans each outbox row
//! out into one delivery per matching live subscription ([`Store::fan_out_outbox`]), claims due
//! deliveries ([`Store::claim_due_deliveries`]), sends them and records the outcome. Delivery
//! is at least once: a receiver should de-duplicate by the `Patron-Webhook-Id` header.

use crate::audit::{record_tx, Actor, Change};
use crate::db::Row;
use crate::model::EventResult;
use crate::sql::{one_of, Bind, Rows};
use crate::{rfc3339, Store, StoreError, TenantSettings};
use patron_core::time::{from_micros, to_micros, Timestamp};
use patron_core::TenantId;
use rand::RngCore;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// Every topic a subscription may ask for.
pub const TOPICS: [&str; 10] = [
    "member.created",
    "points.earned",
    "points.redeemed",
    "points.adjusted",
    "points.refunded",
    "tier.changed",
    "voucher.used",
    "voucher.cancelled",
    "points.expiring",
    "member.sign_in_code",
];

/// Longest subscription URL, in bytes.
pub const URL_LENGTH_MAX: usize = 2048;
/// Most live subscriptions per tenant.
pub const SUBSCRIPTIONS_MAX: i64 = 20;
/// Most deliveries in one page of a subscription's log.
pub const DELIVERY_PAGE_MAX: i64 = 200;
/// Attempts before a delivery is given up (`failed`). With the default 10 s base delay the
/// retries span about 21 hours, so a receiver that is down for an hour (or a night) loses
/// nothing.
pub const ATTEMPTS_MAX: i64 = 30;
/// The longest wait between two attempts.
pub const RETRY_DELAY_MAX: Duration = Duration::from_secs(3600);

/// Why an attempt failed, as recorded in the delivery log. The log holds the receiver's status
/// code or one of three fixed reasons, never the transport's error text: that text tells open
/// ports from closed ones ("invalid HTTP version parsed" is a database's port), which would
/// make the log a port scanner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryFailure {
    /// The receiver answered with this status (not 2xx).
    Status(u16),
    /// No answer within the request timeout.
    Timeout,
    /// Anything else on the way: name, connection, TLS or a reply that is not HTTP.
    ConnectionFailed,
    /// The URL's address (or one its name resolves to) is not one Patron sends to.
    AddressNotAllowed,
}

/// The reasons `last_error` may hold, as shown in the delivery log.
pub const FAILURE_REASONS: [&str; 3] = ["timeout", "connection failed", "address not allowed"];

impl DeliveryFailure {
    /// The status code and the reason recorded for this failure.
    fn recorded(self) -> (Option<i64>, Option<&'static str>) {
        match self {
            DeliveryFailure::Status(code) => (Some(i64::from(code)), None),
            DeliveryFailure::Timeout => (None, Some(FAILURE_REASONS[0])),
            DeliveryFailure::ConnectionFailed => (None, Some(FAILURE_REASONS[1])),
            DeliveryFailure::AddressNotAllowed => (None, Some(FAILURE_REASONS[2])),
        }
    }
}

/// The reason to show for a stored `last_error`: rows written before reasons were fixed hold
/// the transport's text, which is shown as "connection failed" (or nothing, when the receiver
/// answered with a status).
fn shown_reason(stored: Option<String>, status_code: Option<i64>) -> Option<String> {
    let stored = stored?;
    if FAILURE_REASONS.contains(&stored.as_str()) {
        return Some(stored);
    }
    match status_code {
        Some(_) => None,
        None => Some(FAILURE_REASONS[1].to_owned()),
    }
}

/// A subscription as listed (the secret is shown only at creation).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Subscription {
    pub id: String,
    pub url: String,
    pub topics: Vec<String>,
    pub created_at: String,
    pub disabled_at: Option<String>,
}

/// One delivery of one outbox row to one subscription.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Delivery {
    pub id: String,
    pub subscription_id: String,
    pub outbox_id: String,
    pub topic: String,
    /// `pending`, `delivered`, `failed` (attempts exhausted) or `cancelled` (subscription
    /// disabled before it was delivered).
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: String,
    pub last_status_code: Option<i64>,
    /// Why the last attempt failed when the receiver gave no status: one of
    /// [`FAILURE_REASONS`].
    pub last_error: Option<String>,
    pub created_at: String,
    pub delivered_at: Option<String>,
}

/// A delivery claimed for sending, with what is needed to send it.
#[derive(Clone, Debug)]
pub struct DueDelivery {
    pub id: String,
    pub tenant_id: String,
    pub subscription_id: String,
    pub topic: String,
    pub url: String,
    pub secret: String,
    /// The JSON body, exactly as signed.
    pub payload: String,
    /// Attempts made before this one.
    pub attempts: i64,
}

/// What a dispatcher asks of [`Store::claim_due_deliveries`].
#[derive(Clone, Debug)]
pub struct Claim<'a> {
    /// Deliveries whose next attempt is not after this are due.
    pub now: Timestamp,
    /// How long a claimed delivery is left to its claimer.
    pub lease: Duration,
    /// Most deliveries claimed (the dispatcher's free send slots).
    pub limit: usize,
    /// Most deliveries of one tenant in flight at once.
    pub per_tenant_max: usize,
    /// The claimer's deliveries in flight, by tenant id.
    pub in_flight: &'a HashMap<String, usize>,
}

/// How far behind webhook delivery is.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OutboxLag {
    /// Deliveries waiting to be sent (or retried).
    pub pending: i64,
    /// Age of the oldest pending delivery, in seconds (0 when none).
    pub oldest_pending_seconds: f64,
    /// Outbox rows not yet fanned out into deliveries.
    pub unfanned: i64,
}

/// The topics an accepted event implies, in [`TOPICS`] order.
pub fn topics_of(kind: &str, result: &EventResult) -> Vec<&'static str> {
    let mut topics = Vec::new();
    if result.member_created {
        topics.push("member.created");
    }
    if result.points_earned > 0 {
        topics.push("points.earned");
    }
    match kind {
        "redemption" => topics.push("points.redeemed"),
        "adjustment" => topics.push("points.adjusted"),
        "refund" | "void" => topics.push("points.refunded"),
        _ => {}
    }
    if result.tier_change.is_some() {
        topics.push("tier.changed");
    }
    match kind {
        "voucher_use" => topics.push("voucher.used"),
        "voucher_cancel" => topics.push("voucher.cancelled"),
        _ => {}
    }
    topics
}

/// Columns of an outbox row, in [`OUTBOX_INSERT`] order.
pub(crate) const OUTBOX_COLUMNS: usize = 6;
pub(crate) const OUTBOX_INSERT: &str =
    "INSERT INTO outbox (id, tenant_id, topic, payload, created_at, fanned_out)";

/// Adds to `rows` the outbox rows of one accepted event: one per implied topic the tenant
/// subscribes to. Costs one set lookup when the tenant has no subscription.
pub(crate) fn outbox_rows(
    rows: &mut Rows,
    settings: &TenantSettings,
    kind: &str,
    occurred_at: Timestamp,
    result: &EventResult,
    recorded_at: i64,
) {
    if settings.webhook_topics.is_empty() {
        return;
    }
    for topic in topics_of(kind, result) {
        if !settings.webhook_topics.contains(topic) {
            continue;
        }
        let (id, payload) = crate::records::webhook_payload(
            topic,
            settings.id.to_string(),
            rfc3339(occurred_at, settings.zone),
            result,
        );
        rows.push(vec![
            id.into(),
            settings.id.to_string().into(),
            topic.into(),
            payload.into(),
            recorded_at.into(),
            0i64.into(),
        ]);
    }
}

/// The wait after the `attempts`-th failed attempt: `base · 2^(attempts-1)`, at most
/// [`RETRY_DELAY_MAX`].
pub fn retry_delay(base: Duration, attempts: i64) -> Duration {
    let exponent = (attempts.max(1) - 1).min(32) as u32;
    base.saturating_mul(2u32.saturating_pow(exponent))
        .min(RETRY_DELAY_MAX)
}

fn validate_url(url: &str) -> Result<(), StoreError> {
    let invalid = || StoreError::invalid("url", "must be an http:// or https:// URL with a host");
    if url.len() > URL_LENGTH_MAX {
        return Err(StoreError::invalid(
            "url",
            format!("must be at most {URL_LENGTH_MAX} bytes"),
        ));
    }
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(invalid)?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    if host.is_empty()
        || host.starts_with(':')
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(invalid());
    }
    Ok(())
}

fn validate_topics(topics: &[String]) -> Result<Vec<String>, StoreError> {
    if topics.is_empty() {
        return Err(StoreError::invalid(
            "topics",
            format!("must name at least one of {}", TOPICS.join(", ")),
        ));
    }
    let mut chosen = Vec::new();
    for (index, topic) in topics.iter().enumerate() {
        if !TOPICS.contains(&topic.as_str()) {
            return Err(StoreError::invalid(
                format!("topics[{index}]"),
                format!("unknown topic; one of {}", TOPICS.join(", ")),
            ));
        }
        if !chosen.contains(topic) {
            chosen.push(topic.clone());
        }
    }
    Ok(chosen)
}

fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("whsec_{}", hex::encode(bytes))
}

const SUBSCRIPTION_SELECT: &str =
    "SELECT id, url, topics, created_at, disabled_at FROM webhook_subscriptions";

fn subscription_from_row(row: &Row, zone: chrono_tz::Tz) -> Result<Subscription, StoreError> {
    Ok(Subscription {
        id: row.text("id")?,
        url: row.text("url")?,
        topics: serde_json::from_str(&row.text("topics")?).unwrap_or_default(),
        created_at: rfc3339(from_micros(row.int("created_at")?), zone),
        disabled_at: row
            .opt_int("disabled_at")?
            .map(|at| rfc3339(from_micros(at), zone)),
    })
}

const DELIVERY_SELECT: &str =
    "SELECT id, subscription_id, outbox_id, topic, status, attempts, next_attempt_at, last_status_code, \
     last_error, created_at, delivered_at FROM webhook_deliveries";

fn delivery_from_row(row: &Row, zone: chrono_tz::Tz) -> Result<Delivery, StoreError> {
    let at = |micros: i64| rfc3339(from_micros(micros), zone);
    let last_status_code = row.opt_int("last_status_code")?;
    Ok(Delivery {
        id: row.text("id")?,
        subscription_id: row.text("subscription_id")?,
        outbox_id: row.text("outbox_id")?,
        topic: row.text("topic")?,
        status: row.text("status")?,
        attempts: row.int("attempts")?,
        next_attempt_at: at(row.int("next_attempt_at")?),
        last_status_code,
        last_error: shown_reason(row.opt_text("last_error")?, last_status_code),
        created_at: at(row.int("created_at")?),
        delivered_at: row.opt_int("delivered_at")?.map(at),
    })
}

impl Store {
    /// The topics the tenant's live subscriptions want (for [`TenantSettings`]).
    pub(crate) async fn live_webhook_topics(
        &self,
        tenant_id: TenantId,
    ) -> Result<HashSet<String>, StoreError> {
        let rows = self
            .db
            .fetch(
                "SELECT topics FROM webhook_subscriptions WHERE tenant_id = $1 AND disabled_at IS NULL",
                crate::binds![tenant_id.to_string()],
            )
            .await?;
        let mut topics = HashSet::new();
        for row in rows {
            let listed: Vec<String> = serde_json::from_str(&row.text("topics")?)
                .map_err(|error| StoreError::Corrupt(format!("webhook topics: {error}")))?;
            topics.extend(listed);
        }
        Ok(topics)
    }

    /// Subscribes `url` to `topics`. Returns the subscription and its signing secret, which is
    /// shown this once.
    pub async fn create_webhook(
        &self,
        tenant_id: TenantId,
        actor: &Actor,
        url: &str,
        topics: &[String],
    ) -> Result<(Subscription, String), StoreError> {
        let url = url.trim();
        validate_url(url)?;
        let topics = validate_topics(topics)?;
        let zone = self.tenant(tenant_id).await?.zone;
        let id = uuid::Uuid::now_v7().to_string();
        let secret = new_secret();
        let now = to_micros(chrono::Utc::now());
        let topics_text = serde_json::to_string(&topics).expect("strings serialise");
        let mut transaction = self.db.begin_write().await?;
        let live = transaction
            .fetch_one(
                "SELECT COUNT(*) AS live FROM webhook_subscriptions WHERE tenant_id = $1 AND disabled_at IS NULL",
                crate::binds![tenant_id.to_string()],
            )
            .await?
            .int("live")?;
        if live >= SUBSCRIPTIONS_MAX {
            return Err(StoreError::invalid(
                "url",
                format!("a tenant may have at most {SUBSCRIPTIONS_MAX} live webhooks"),
            ));
        }
        transaction
            .execute(
                "INSERT INTO webhook_subscriptions (id, tenant_id, url, topics, secret, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                crate::binds![&id, tenant_id.to_string(), url, topics_text, &secret, now],
            )
            .await?;
        let subscription = Subscription {
            id: id.clone(),
            url: url.to_owned(),
            topics,
            created_at: rfc3339(from_micros(now), zone),
            disabled_at: None,
        };
        record_tx(
            &mut transaction,
            &Change {
                tenant_id,
                actor,
                action: "webhook.create",
                subject: format!("webhook:{id}"),
                before: None,
                after: Some(serde_json::to_value(&subscription).expect("serialises")),
            },
        )
        .await?;
        transaction.commit().await?;
        self.forget_tenant(tenant_id);
        Ok((subscription, secret))
    }

    /// The tenant's subscriptions, oldest first, disabled ones included.
    pub async fn webhooks(&self, tenant_id: TenantId) -> Result<Vec<Subscription>, StoreError> {
        let zone = self.tenant(tenant_id).await?.zone;
        self.db
            .fetch(
                &format!("{SUBSCRIPTION_SELECT} WHERE tenant_id = $1 ORDER BY id"),
                crate::binds![tenant_id.to_string()],
            )
            .await?
            .iter()
            .map(|row| subscription_from_row(row, zone))
            .collect()
    }

    /// One of the tenant's subscriptions; another tenant's is not found.
    pub async fn webhook(&self, tenant_id: TenantId, id: &str) -> Result<Subscription, StoreError> {
        let zone = self.tenant(tenant_id).await?.zone;
        let row = self
            .db
            .fetch_optional(
                &format!("{SUBSCRIPTION_SELECT} WHERE tenant_id = $1 AND id = $2"),
                crate::binds![tenant_id.to_string(), id],
            )
            .await?
            .ok_or(StoreError::NotFound { what: "webhook" })?;
        subscription_from_row(&row, zone)
    }

    /// Disables a subscription: it gets nothing more, and its pending deliveries are
    /// cancelled. Disabling a disabled subscription changes nothing.
    pub async fn disable_webhook(
        &self,
        tenant_id: TenantId,
        actor: &Actor,
        id: &str,
    ) -> Result<Subscription, StoreError> {
        let before = self.webhook(tenant_id, id).await?;
        if before.disabled_at.is_some() {
            return Ok(before);
        }
        let now = to_micros(chrono::Utc::now());
        let mut transaction = self.db.begin_write().await?;
        let changed = transaction
            .execute(
                "UPDATE webhook_subscriptions SET disabled_at = $1 WHERE tenant_id = $2 AND id = $3 AND disabled_at IS NULL",
                crate::binds![now, tenant_id.to_string(), id],
            )
            .await?;
        if changed == 1 {
            transaction
                .execute(
                    "UPDATE webhook_deliveries SET status = 'cancelled' WHERE subscription_id = $1 AND status = 'pending'",
                    crate::binds![id],
                )
                .await?;
            let mut after = before.clone();
            after.disabled_at = Some(rfc3339(
                from_micros(now),
                self.tenant(tenant_id).await?.zone,
            ));
            record_tx(
                &mut transaction,
                &Change {
                    tenant_id,
                    actor,
                    action: "webhook.disable",
                    subject: format!("webhook:{id}"),
                    before: Some(serde_json::to_value(&before).expect("serialises")),
                    after: Some(serde_json::to_value(&after).expect("serialises")),
                },
            )
            .await?;
        }
        transaction.commit().await?;
        self.forget_tenant(tenant_id);
        self.webhook(tenant_id, id).await
    }

    /// A subscription's deliveries, newest first.
    pub async fn webhook_deliveries(
        &self,
        tenant_id: TenantId,
        subscription_id: &str,
        limit: i64,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.webhook(tenant_id, subscription_id).await?;
        let zone = self.tenant(tenant_id).await?.zone;
        self.db
            .fetch(
                &format!(
                    "{DELIVERY_SELECT} WHERE subscription_id = $1 AND tenant_id = $2 ORDER BY id DESC LIMIT $3"
                ),
                crate::binds![
                    subscription_id,
                    tenant_id.to_string(),
                    limit.clamp(1, DELIVERY_PAGE_MAX),
                ],
            )
            .await?
            .iter()
            .map(|row| delivery_from_row(row, zone))
            .collect()
    }

    /// One of the tenant's deliveries.
    pub async fn webhook_delivery(
        &self,
        tenant_id: TenantId,
        id: &str,
    ) -> Result<Delivery, StoreError> {
        let zone = self.tenant(tenant_id).await?.zone;
        let row = self
            .db
            .fetch_optional(
                &format!("{DELIVERY_SELECT} WHERE id = $1 AND tenant_id = $2"),
                crate::binds![id, tenant_id.to_string()],
            )
            .await?
            .ok_or(StoreError::NotFound { what: "delivery" })?;
        delivery_from_row(&row, zone)
    }

    /// Sends a delivery again: back to `pending`, due now, with a fresh count of attempts.
    /// Its subscription must be live.
    pub async fn replay_delivery(
        &self,
        tenant_id: TenantId,
        actor: &Actor,
        id: &str,
    ) -> Result<Delivery, StoreError> {
        let before = self.webhook_delivery(tenant_id, id).await?;
        let subscription = self.webhook(tenant_id, &before.subscription_id).await?;
        if subscription.disabled_at.is_some() {
            return Err(StoreError::invalid(
                "id",
                "the delivery's webhook is disabled",
            ));
        }
        let now = to_micros(chrono::Utc::now());
        let mut transaction = self.db.begin_write().await?;
        transaction
            .execute(
                "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = $1, delivered_at = NULL \
                 WHERE id = $2 AND tenant_id = $3",
                crate::binds![now, id, tenant_id.to_string()],
            )
            .await?;
        record_tx(
            &mut transaction,
            &Change {
                tenant_id,
                actor,
                action: "webhook_delivery.replay",
                subject: format!("webhook_delivery:{id}"),
                before: Some(
                    serde_json::json!({"status": before.status, "attempts": before.attempts}),
                ),
                after: Some(serde_json::json!({"status": "pending", "attempts": 0})),
            },
        )
        .await?;
        transaction.commit().await?;
        self.webhook_delivery(tenant_id, id).await
    }

    /// Fans up to `limit` outbox rows out into deliveries, one per live subscription of the
    /// row's tenant that wants its topic, and marks them fanned out, in one transaction.
    /// Returns how many outbox rows were taken.
    pub async fn fan_out_outbox(&self, limit: i64) -> Result<usize, StoreError> {
        let now = to_micros(chrono::Utc::now());
        let mut transaction = self.db.begin_write().await?;
        // The `fanned_out = 0` check keeps two dispatchers from taking the same row.
        let claimed = transaction
            .fetch(
                "UPDATE outbox SET fanned_out = $1 WHERE fanned_out = 0 AND id IN \
                 (SELECT id FROM outbox WHERE fanned_out = 0 ORDER BY id LIMIT $2) RETURNING id, tenant_id, topic",
                crate::binds![now, limit.max(1)],
            )
            .await?
            .iter()
            .map(|row| Ok((row.text("id")?, row.text("tenant_id")?, row.text("topic")?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        if claimed.is_empty() {
            transaction.rollback().await?;
            return Ok(0);
        }
        let tenants: Vec<String> = claimed
            .iter()
            .map(|(_, tenant_id, _)| tenant_id.clone())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let backend = self.backend;
        let mut subscriptions: HashMap<String, Vec<(String, HashSet<String>)>> = HashMap::new();
        let sql = format!(
            "SELECT id, tenant_id, topics FROM webhook_subscriptions WHERE disabled_at IS NULL AND {}",
            one_of(backend, "tenant_id", 1)
        );
        for row in transaction.fetch(&sql, crate::binds![tenants]).await? {
            let topics: HashSet<String> =
                serde_json::from_str(&row.text("topics")?).unwrap_or_default();
            subscriptions
                .entry(row.text("tenant_id")?)
                .or_default()
                .push((row.text("id")?, topics));
        }
        let mut deliveries = Rows::new(10);
        for (outbox_id, tenant_id, topic) in &claimed {
            for (subscription_id, topics) in subscriptions.get(tenant_id).into_iter().flatten() {
                if topics.contains(topic) {
                    deliveries.push(vec![
                        uuid::Uuid::now_v7().to_string().into(),
                        tenant_id.clone().into(),
                        subscription_id.clone().into(),
                        outbox_id.clone().into(),
                        topic.clone().into(),
                        "pending".into(),
                        0i64.into(),
                        now.into(),
                        now.into(),
                        Bind::NullInt,
                    ]);
                }
            }
        }
        transaction
            .execute_all(deliveries.statements(
                backend,
                "INSERT INTO webhook_deliveries (id, tenant_id, subscription_id, outbox_id, topic, status, attempts, \
                 next_attempt_at, created_at, delivered_at)",
                "",
            ))
            .await?;
        transaction.commit().await?;
        Ok(claimed.len())
    }

    /// Claims due deliveries (pending, next attempt not after `now`) of live subscriptions,
    /// fairly across tenants: each tenant's oldest first, taken in turns (every tenant's first,
    /// then every tenant's second, …), and never more than `per_tenant_max` in flight for one
    /// tenant, counting those the caller already has (`in_flight`). So one tenant's backlog or
    /// slow receiver cannot hold up another's deliveries. A claimed delivery's next attempt
    /// moves to `now + lease`, so another dispatcher does not take it, and a dispatcher that
    /// dies mid-send leaves it to be retried after the lease.
    pub async fn claim_due_deliveries(
        &self,
        claim: &Claim<'_>,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        if claim.limit == 0 || claim.per_tenant_max == 0 {
            return Ok(Vec::new());
        }
        let now_micros = to_micros(claim.now);
        let lease_until =
            now_micros.saturating_add(claim.lease.as_micros().try_into().unwrap_or(i64::MAX));
        // A tenant at its cap has at most `in_flight` of its candidates skipped, so this many
        // candidates always hold `limit` takeable ones when there are that many.
        let skippable: usize = claim.in_flight.values().sum();
        let candidates = self
            .db
            .fetch(
                "SELECT id, tenant_id FROM (SELECT id, tenant_id, next_attempt_at, \
                 ROW_NUMBER() OVER (PARTITION BY tenant_id ORDER BY next_attempt_at, id) AS turn \
                 FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $1) due \
                 WHERE turn <= $2 ORDER BY turn, next_attempt_at, id LIMIT $3",
                crate::binds![
                    now_micros,
                    i64::try_from(claim.per_tenant_max).unwrap_or(i64::MAX),
                    i64::try_from(claim.limit.saturating_add(skippable)).unwrap_or(i64::MAX),
                ],
            )
            .await?;
        let mut taken: HashMap<String, usize> = HashMap::new();
        let mut chosen = Vec::new();
        for row in &candidates {
            let tenant = row.text("tenant_id")?;
            let busy = claim.in_flight.get(&tenant).copied().unwrap_or(0);
            let count = taken.entry(tenant).or_default();
            if busy + *count >= claim.per_tenant_max {
                continue;
            }
            *count += 1;
            chosen.push(row.text("id")?);
            if chosen.len() == claim.limit {
                break;
            }
        }
        if chosen.is_empty() {
            return Ok(Vec::new());
        }
        let backend = self.backend;
        let mut transaction = self.db.begin_write().await?;
        // The `status` and `next_attempt_at` conditions again: another dispatcher may have
        // claimed some of these since they were read; it keeps them.
        let claimed = transaction
            .fetch(
                &format!(
                    "UPDATE webhook_deliveries SET next_attempt_at = $1 WHERE status = 'pending' AND next_attempt_at <= $2 \
                     AND {} RETURNING id",
                    one_of(backend, "id", 3)
                ),
                crate::binds![lease_until, now_micros, chosen],
            )
            .await?
            .iter()
            .map(|row| row.text("id"))
            .collect::<Result<Vec<String>, StoreError>>()?;
        if claimed.is_empty() {
            transaction.rollback().await?;
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT d.id, d.tenant_id, d.subscription_id, d.topic, s.url, s.secret, o.payload, d.attempts \
             FROM webhook_deliveries d JOIN webhook_subscriptions s ON s.id = d.subscription_id \
             JOIN outbox o ON o.id = d.outbox_id WHERE s.disabled_at IS NULL AND {} ORDER BY d.id",
            one_of(backend, "d.id", 1)
        );
        let rows = transaction.fetch(&sql, crate::binds![claimed]).await?;
        transaction.commit().await?;
        rows.iter()
            .map(|row| {
                Ok(DueDelivery {
                    id: row.text("id")?,
                    tenant_id: row.text("tenant_id")?,
                    subscription_id: row.text("subscription_id")?,
                    topic: row.text("topic")?,
                    url: row.text("url")?,
                    secret: row.text("secret")?,
                    payload: row.text("payload")?,
                    attempts: row.int("attempts")?,
                })
            })
            .collect()
    }

    /// Records a delivered attempt.
    pub async fn delivery_succeeded(
        &self,
        id: &str,
        status_code: u16,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        self.db
            .execute(
                "UPDATE webhook_deliveries SET status = 'delivered', attempts = attempts + 1, last_status_code = $1, \
                 last_error = NULL, delivered_at = $2 WHERE id = $3 AND status = 'pending'",
                crate::binds![i64::from(status_code), to_micros(at), id],
            )
            .await?;
        Ok(())
    }

    /// Records a failed attempt: retried after [`retry_delay`], or `failed` after
    /// [`ATTEMPTS_MAX`] attempts.
    pub async fn delivery_failed(
        &self,
        delivery: &DueDelivery,
        failure: DeliveryFailure,
        at: Timestamp,
        base_delay: Duration,
    ) -> Result<(), StoreError> {
        let attempts = delivery.attempts + 1;
        let status = if attempts >= ATTEMPTS_MAX {
            "failed"
        } else {
            "pending"
        };
        let next = at
            + chrono::Duration::from_std(retry_delay(base_delay, attempts))
                .unwrap_or(chrono::Duration::hours(1));
        let (status_code, reason) = failure.recorded();
        self.db
            .execute(
                "UPDATE webhook_deliveries SET status = $1, attempts = $2, next_attempt_at = $3, last_status_code = $4, \
                 last_error = $5 WHERE id = $6 AND status = 'pending'",
                crate::binds![
                    status,
                    attempts,
                    to_micros(next),
                    status_code,
                    reason,
                    &delivery.id,
                ],
            )
            .await?;
        Ok(())
    }

    /// How far behind delivery is, for `/metrics`.
    pub async fn outbox_lag(&self, now: Timestamp) -> Result<OutboxLag, StoreError> {
        let pending = self
            .db
            .fetch_one(
                "SELECT COUNT(*) AS pending, MIN(created_at) AS oldest FROM webhook_deliveries WHERE status = 'pending'",
                vec![],
            )
            .await?;
        let unfanned = self
            .db
            .fetch_one(
                "SELECT COUNT(*) AS unfanned FROM outbox WHERE fanned_out = 0",
                vec![],
            )
            .await?
            .int("unfanned")?;
        // No pending delivery: no oldest one, and no lag.
        let oldest = pending.opt_int("oldest")?;
        Ok(OutboxLag {
            pending: pending.int("pending")?,
            oldest_pending_seconds: oldest
                .map(|micros| (to_micros(now).saturating_sub(micros).max(0)) as f64 / 1e6)
                .unwrap_or(0.0),
            unfanned,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_span_about_a_day_and_wait_at_most_an_hour() {
        let base = Duration::from_secs(10);
        assert_eq!(retry_delay(base, 1), base);
        assert_eq!(retry_delay(base, 2), base * 2);
        assert_eq!(retry_delay(base, 9), Duration::from_secs(2560));
        assert_eq!(retry_delay(base, 10), RETRY_DELAY_MAX);
        assert_eq!(retry_delay(base, 1000), RETRY_DELAY_MAX);
        let total: Duration = (1..ATTEMPTS_MAX).map(|n| retry_delay(base, n)).sum();
        assert!(total > Duration::from_secs(20 * 3600), "{total:?}");
        assert!(total < Duration::from_secs(26 * 3600), "{total:?}");
    }

    #[test]
    fn urls_must_be_http_with_a_host() {
        assert!(validate_url("https://example.com/hooks").is_ok());
        assert!(validate_url("http://127.0.0.1:8080").is_ok());
        for bad in [
            "ftp://example.com",
            "https://",
            "https:///path",
            "example.com",
            "https://exa mple.com",
            "http://:80/",
        ] {
            assert!(validate_url(bad).is_err(), "{bad}");
        }
        let long = format!("https://example.com/{}", "a".repeat(URL_LENGTH_MAX));
        assert!(validate_url(&long).is_err());
    }

    #[test]
    fn topics_must_be_known_and_not_empty() {
        assert!(validate_topics(&[]).is_err());
        let error = validate_topics(&["points.earned".into(), "nope".into()]).unwrap_err();
        assert!(matches!(error, StoreError::Invalid { field, .. } if field == "topics[1]"));
        let chosen = validate_topics(&["tier.changed".into(), "tier.changed".into()]).unwrap();
        assert_eq!(chosen, vec!["tier.changed".to_owned()]);
    }
}
