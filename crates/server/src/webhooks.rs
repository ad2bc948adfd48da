//! Webhooks: `GET/POST /v1/webhooks`, `DELETE /v1/webhooks/{id}`,
//! `GET /v1/webhooks/{id}/deliveries`, `POST /v1/webhooks/deliveries/{id}/replay`, and the
//! [`Dispatcher`] that sends the outbox to subscribers, signed, with retries.

use crate::auth::{Caller, Permission};
use crate::error::{body_json, parse_json, ApiError};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use hmac::{Hmac, Mac};
use patron_store::webhooks::{Delivery, DueDelivery, Subscription};
use patron_store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_webhooks, create_webhook))
        .routes(routes!(disable_webhook))
        .routes(routes!(list_deliveries))
        .routes(routes!(replay_delivery))
}

/// A subscription to some topics.
#[derive(Serialize, ToSchema)]
struct WebhookView {
    id: String,
    url: String,
    /// Topics sent to `url`.
    #[schema(example = json!(["member.created", "points.earned"]))]
    topics: Vec<String>,
    created_at: String,
    /// Set once disabled: nothing more is sent.
    disabled_at: Option<String>,
}

impl From<Subscription> for WebhookView {
    fn from(subscription: Subscription) -> WebhookView {
        WebhookView {
            id: subscription.id,
            url: subscription.url,
            topics: subscription.topics,
            created_at: subscription.created_at,
            disabled_at: subscription.disabled_at,
        }
    }
}

/// A new subscription and its signing secret, shown this once.
#[derive(Serialize, ToSchema)]
struct CreatedWebhook {
    #[serde(flatten)]
    webhook: WebhookView,
    /// Key of the HMAC-SHA256 in `Patron-Signature`, e.g. `whsec_3f…`.
    secret: String,
}

/// One delivery of one event to one subscription.
#[derive(Serialize, ToSchema)]
struct DeliveryView {
    id: String,
    subscription_id: String,
    /// The outbox row: the `id` in the body sent.
    outbox_id: String,
    topic: String,
    /// `pending`, `delivered`, `failed` (attempts exhausted) or `cancelled` (webhook disabled).
    status: String,
    attempts: i64,
    next_attempt_at: String,
    last_status_code: Option<i64>,
    last_error: Option<String>,
    created_at: String,
    delivered_at: Option<String>,
}

impl From<Delivery> for DeliveryView {
    fn from(delivery: Delivery) -> DeliveryView {
        DeliveryView {
            id: delivery.id,
            subscription_id: delivery.subscription_id,
            outbox_id: delivery.outbox_id,
            topic: delivery.topic,
            status: delivery.status,
            attempts: delivery.attempts,
            next_attempt_at: delivery.next_attempt_at,
            last_status_code: delivery.last_status_code,
            last_error: delivery.last_error,
            created_at: delivery.created_at,
            delivered_at: delivery.delivered_at,
        }
    }
}

/// What to subscribe.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct WebhookRequest {
    /// `http://` or `https://`; receives a POST per event.
    #[schema(example = "https://example.com/patron/webhooks")]
    #[serde(default)]
    url: String,
    /// A non-empty subset of: member.created, points.earned, points.redeemed, points.adjusted,
    /// points.refunded, tier.changed, voucher.used, voucher.cancelled.
    #[serde(default)]
    topics: Vec<String>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct DeliveriesQuery {
    /// Most deliveries returned (1 to 200, default 50).
    limit: Option<i64>,
}

/// The tenant's webhooks, disabled ones included.
#[utoipa::path(
    get,
    path = "/v1/webhooks",
    tag = "webhooks",
    responses(
        (status = 200, description = "The tenant's webhooks, oldest first", body = Vec<WebhookView>),
        (status = 401, description = "No valid API key"),
    )
)]
async fn list_webhooks(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<WebhookView>>, ApiError> {
    let webhooks = state.store.webhooks(caller.0.tenant_id).await?;
    Ok(Json(webhooks.into_iter().map(WebhookView::from).collect()))
}

/// Subscribes a URL to topics; the answer holds the signing secret, shown this once.
#[utoipa::path(
    post,
    path = "/v1/webhooks",
    tag = "webhooks",
    request_body = WebhookRequest,
    responses(
        (status = 201, description = "Subscribed", body = CreatedWebhook),
        (status = 401, description = "No valid API key"),
        (status = 403, description = "The caller may not administer the tenant"),
        (status = 422, description = "A bad `url` or topic; `field` names it"),
    )
)]
async fn create_webhook(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<(StatusCode, Json<CreatedWebhook>), ApiError> {
    caller.require(Permission::Administer)?;
    let request: WebhookRequest = parse_json(body_json(&body)?)?;
    let (subscription, secret) = state
        .store
        .create_webhook(
            caller.0.tenant_id,
            caller.actor(),
            &request.url,
            &request.topics,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedWebhook {
            webhook: subscription.into(),
            secret,
        }),
    ))
}

/// Disables a webhook: nothing more is sent to it and its pending deliveries are cancelled.
#[utoipa::path(
    delete,
    path = "/v1/webhooks/{id}",
    tag = "webhooks",
    params(("id" = String, Path, description = "The webhook's id")),
    responses(
        (status = 204, description = "Disabled (or already disabled)"),
        (status = 401, description = "No valid API key"),
        (status = 403, description = "The caller may not administer the tenant"),
        (status = 404, description = "No such webhook of this tenant"),
    )
)]
async fn disable_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Permission::Administer)?;
    state
        .store
        .disable_webhook(caller.0.tenant_id, caller.actor(), &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A webhook's deliveries, newest first.
#[utoipa::path(
    get,
    path = "/v1/webhooks/{id}/deliveries",
    tag = "webhooks",
    params(("id" = String, Path, description = "The webhook's id"), DeliveriesQuery),
    responses(
        (status = 200, description = "Deliveries, newest first", body = Vec<DeliveryView>),
        (status = 401, description = "No valid API key"),
        (status = 404, description = "No such webhook of this tenant"),
        (status = 422, description = "A bad query"),
    )
)]
async fn list_deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    query: Result<Query<DeliveriesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<DeliveryView>>, ApiError> {
    let Query(query) = query.map_err(|error| ApiError::invalid("query", error.body_text()))?;
    let deliveries = state
        .store
        .webhook_deliveries(caller.0.tenant_id, &id, query.limit.unwrap_or(50))
        .await?;
    Ok(Json(
        deliveries.into_iter().map(DeliveryView::from).collect(),
    ))
}

/// Sends a delivery again: pending, due now, attempts counted afresh.
#[utoipa::path(
    post,
    path = "/v1/webhooks/deliveries/{id}/replay",
    tag = "webhooks",
    params(("id" = String, Path, description = "The delivery's id")),
    responses(
        (status = 202, description = "Queued to be sent again", body = DeliveryView),
        (status = 401, description = "No valid API key"),
        (status = 403, description = "The caller may not administer the tenant"),
        (status = 404, description = "No such delivery of this tenant"),
        (status = 422, description = "The delivery's webhook is disabled"),
    )
)]
async fn replay_delivery(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<DeliveryView>), ApiError> {
    caller.require(Permission::Administer)?;
    let delivery = state
        .store
        .replay_delivery(caller.0.tenant_id, caller.actor(), &id)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(delivery.into())))
}

// ---------------------------------------------------------------------------------------------
// The dispatcher

/// Longest wait for a receiver's answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Deliveries sent at once by default.
pub const SENDS_CONCURRENT_DEFAULT: usize = 8;
/// Outbox rows fanned out per transaction.
const FAN_OUT_BATCH: i64 = 500;
/// A claimed delivery is left alone by other dispatchers for the request timeout plus this.
const LEASE_MARGIN: Duration = Duration::from_secs(30);

/// How the dispatcher paces itself; tests use milliseconds.
#[derive(Clone, Debug)]
pub struct DispatcherConfig {
    /// Wait after the first failed attempt; doubled after each further one, at most an hour.
    pub base_delay: Duration,
    /// Wait between looks at the outbox when there is nothing to do.
    pub poll_interval: Duration,
    /// Most deliveries in flight at once.
    pub concurrency: usize,
    pub request_timeout: Duration,
}

impl Default for DispatcherConfig {
    fn default() -> DispatcherConfig {
        DispatcherConfig {
            base_delay: Duration::from_secs(10),
            poll_interval: Duration::from_secs(1),
            concurrency: SENDS_CONCURRENT_DEFAULT,
            request_timeout: REQUEST_TIMEOUT,
        }
    }
}

/// The running dispatcher: fans the outbox out into deliveries and sends them.
pub struct Dispatcher {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Dispatcher {
    pub fn start(store: Store, config: DispatcherConfig) -> Dispatcher {
        let (stop, stopped) = watch::channel(false);
        let client = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Patron-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("an HTTP client");
        let task = tokio::spawn(run(store, config, client, stopped));
        Dispatcher { stop, task }
    }

    /// Stops after the sends in flight finish.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(error) = self.task.await {
            tracing::error!(%error, "webhook dispatcher panicked");
        }
    }
}

async fn run(
    store: Store,
    config: DispatcherConfig,
    client: reqwest::Client,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        if *stopped.borrow() {
            break;
        }
        let busy = match dispatch_once(&store, &config, &client).await {
            Ok(busy) => busy,
            Err(error) => {
                tracing::warn!(%error, "webhook dispatch failed");
                false
            }
        };
        if !busy {
            tokio::select! {
                _ = tokio::time::sleep(config.poll_interval) => {}
                changed = stopped.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
            }
        }
    }
    tracing::debug!("webhook dispatcher stopped");
}

/// One round: fan out waiting outbox rows, send due deliveries. Whether there may be more.
async fn dispatch_once(
    store: &Store,
    config: &DispatcherConfig,
    client: &reqwest::Client,
) -> Result<bool, StoreError> {
    let fanned = store.fan_out_outbox(FAN_OUT_BATCH).await?;
    let concurrency = config.concurrency.max(1);
    let due = store
        .claim_due_deliveries(
            chrono::Utc::now(),
            config.request_timeout + LEASE_MARGIN,
            concurrency as i64,
        )
        .await?;
    let claimed = due.len();
    let mut sends = JoinSet::new();
    for delivery in due {
        sends.spawn(send(
            store.clone(),
            client.clone(),
            config.base_delay,
            delivery,
        ));
    }
    while let Some(sent) = sends.join_next().await {
        if let Err(error) = sent {
            tracing::error!(%error, "webhook send panicked");
        }
    }
    Ok(fanned as i64 == FAN_OUT_BATCH || claimed == concurrency)
}

/// `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// An error with its causes: reqwest's own message rarely says what went wrong.
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

async fn send(store: Store, client: reqwest::Client, base_delay: Duration, delivery: DueDelivery) {
    let timestamp = chrono::Utc::now().timestamp();
    let sent = client
        .post(&delivery.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("Patron-Webhook-Id", &delivery.id)
        .header("Patron-Topic", &delivery.topic)
        .header(
            "Patron-Signature",
            signature(&delivery.secret, timestamp, &delivery.payload),
        )
        .body(delivery.payload.clone())
        .send()
        .await;
    let now = chrono::Utc::now();
    let recorded = match sent {
        Ok(response) if response.status().is_success() => {
            store
                .delivery_succeeded(&delivery.id, response.status().as_u16(), now)
                .await
        }
        Ok(response) => {
            let status = response.status();
            store
                .delivery_failed(
                    &delivery,
                    Some(status.as_u16()),
                    &format!("HTTP {status}"),
                    now,
                    base_delay,
                )
                .await
        }
        Err(error) => {
            store
                .delivery_failed(&delivery, None, &describe(&error), now, base_delay)
                .await
        }
    };
    if let Err(error) = recorded {
        tracing::error!(%error, delivery = %delivery.id, "recording a webhook delivery failed");
    }
}

/// Lines for `/metrics`: pending deliveries, the oldest one's age, outbox rows not fanned out.
pub async fn render_metrics(store: &Store, out: &mut String) {
    use std::fmt::Write;
    let lag = match store.outbox_lag(chrono::Utc::now()).await {
        Ok(lag) => lag,
        Err(error) => {
            tracing::warn!(%error, "reading webhook lag failed");
            return;
        }
    };
    let _ = writeln!(out, "# HELP patron_webhook_deliveries_pending Webhook deliveries waiting to be sent or retried.");
    let _ = writeln!(out, "# TYPE patron_webhook_deliveries_pending gauge");
    let _ = writeln!(out, "patron_webhook_deliveries_pending {}", lag.pending);
    let _ = writeln!(
        out,
        "# HELP patron_webhook_oldest_pending_seconds Age of the oldest pending webhook delivery."
    );
    let _ = writeln!(out, "# TYPE patron_webhook_oldest_pending_seconds gauge");
    let _ = writeln!(
        out,
        "patron_webhook_oldest_pending_seconds {}",
        lag.oldest_pending_seconds
    );
    let _ = writeln!(
        out,
        "# HELP patron_webhook_outbox_waiting Outbox rows not yet fanned out into deliveries."
    );
    let _ = writeln!(out, "# TYPE patron_webhook_outbox_waiting gauge");
    let _ = writeln!(out, "patron_webhook_outbox_waiting {}", lag.unfanned);
}

#[cfg(test)]
mod tests {
    #[test]
    fn signs_timestamp_dot_body() {
        // HMAC-SHA256("key", "1.{}"), computed with openssl.
        assert_eq!(
            super::signature("key", 1, "{}"),
            "t=1,v1=1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224"
        );
    }
}
