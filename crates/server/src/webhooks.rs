//! Webhooks: `GET/POST /v1/webhooks`, `DELETE /v1/webhooks/{id}`,
//! `GET /v1/webhooks/{id}/deliveries`, `POST /v1/webhooks/deliveries/{id}/replay` (all for
//! owners and admin keys only), and the [`Dispatcher`] that sends the outbox to subscribers,
//! signed, with retries, fairly across tenants, and only to the addresses [`targets`] allows.

use crate::auth::{Caller, Permission};
use crate::error::{body_json, parse_json, ApiError};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use hmac::{Hmac, Mac};
use patron_store::webhooks::{Claim, Delivery, DeliveryFailure, DueDelivery, Subscription};
use patron_store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub mod targets;

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
    /// The receiver's HTTP status at the last attempt, when it answered.
    last_status_code: Option<i64>,
    /// Why the last attempt got no answer: `timeout`, `connection failed` or
    /// `address not allowed` (never the network's own error text).
    #[schema(example = "timeout")]
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
    /// `http://` or `https://`, at a public address; receives a POST per event.
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

/// The tenant's webhooks, disabled ones included (owners and admin keys only: a URL may hold
/// the receiver's credentials).
#[utoipa::path(
    get,
    path = "/v1/webhooks",
    tag = "webhooks",
    responses(
        (status = 200, description = "The tenant's webhooks, oldest first", body = Vec<WebhookView>),
        (status = 401, description = "No valid API key"),
        (status = 403, description = "The caller may not administer the tenant"),
    )
)]
async fn list_webhooks(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<WebhookView>>, ApiError> {
    caller.require(Permission::Administer)?;
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
        (status = 422, description = "A bad `url` (not http(s), or a loopback, private, \
            link-local or other non-public address, or a name resolving to one) or topic; \
            `field` names it"),
    )
)]
async fn create_webhook(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<(StatusCode, Json<CreatedWebhook>), ApiError> {
    caller.require(Permission::Administer)?;
    let request: WebhookRequest = parse_json(body_json(&body)?)?;
    targets::check_url(&request.url, state.webhooks_allow_private_targets)
        .await
        .map_err(|refusal| ApiError::invalid("url", refusal.message()))?;
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

/// A webhook's deliveries, newest first (owners and admin keys only).
#[utoipa::path(
    get,
    path = "/v1/webhooks/{id}/deliveries",
    tag = "webhooks",
    params(("id" = String, Path, description = "The webhook's id"), DeliveriesQuery),
    responses(
        (status = 200, description = "Deliveries, newest first", body = Vec<DeliveryView>),
        (status = 401, description = "No valid API key"),
        (status = 403, description = "The caller may not administer the tenant"),
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
    caller.require(Permission::Administer)?;
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

/// Longest wait for a receiver's answer, connecting included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for a receiver to accept the connection (name resolution included).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Deliveries sent at once by default.
pub const SENDS_CONCURRENT_DEFAULT: usize = 16;
/// Deliveries of one tenant sent at once by default: a tenant whose receiver hangs holds at
/// most this many of the dispatcher's slots, and the others go on serving other tenants.
pub const SENDS_PER_TENANT_DEFAULT: usize = 4;
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
    /// Most deliveries of one tenant in flight at once (in this dispatcher); keep it below
    /// `concurrency`, or one tenant's hanging receiver can take every slot.
    pub sends_per_tenant_max: usize,
    /// Send to loopback, private and link-local addresses too (tests, closed networks); off,
    /// such deliveries fail with "address not allowed".
    pub allow_private_targets: bool,
}

impl Default for DispatcherConfig {
    fn default() -> DispatcherConfig {
        DispatcherConfig {
            base_delay: Duration::from_secs(10),
            poll_interval: Duration::from_secs(1),
            concurrency: SENDS_CONCURRENT_DEFAULT,
            request_timeout: REQUEST_TIMEOUT,
            sends_per_tenant_max: SENDS_PER_TENANT_DEFAULT,
            allow_private_targets: false,
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
            .connect_timeout(CONNECT_TIMEOUT.min(config.request_timeout))
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would make the connection on our behalf, past the address check.
            .no_proxy()
            .dns_resolver(Arc::new(targets::CheckedResolver {
                allow_private: config.allow_private_targets,
            }))
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

/// The sends in flight, and whose they are.
#[derive(Default)]
struct InFlight {
    sends: JoinSet<()>,
    tenants: HashMap<tokio::task::Id, String>,
    by_tenant: HashMap<String, usize>,
}

impl InFlight {
    fn start(
        &mut self,
        store: &Store,
        client: &reqwest::Client,
        config: &DispatcherConfig,
        delivery: DueDelivery,
    ) {
        let tenant = delivery.tenant_id.clone();
        let handle = self.sends.spawn(send(
            store.clone(),
            client.clone(),
            config.clone(),
            delivery,
        ));
        self.tenants.insert(handle.id(), tenant.clone());
        *self.by_tenant.entry(tenant).or_default() += 1;
    }

    fn finished(&mut self, joined: Result<(tokio::task::Id, ()), tokio::task::JoinError>) {
        let id = match joined {
            Ok((id, ())) => id,
            Err(error) => {
                tracing::error!(%error, "webhook send panicked");
                error.id()
            }
        };
        let Some(tenant) = self.tenants.remove(&id) else {
            return;
        };
        if let Some(count) = self.by_tenant.get_mut(&tenant) {
            *count -= 1;
            if *count == 0 {
                self.by_tenant.remove(&tenant);
            }
        }
    }
}

async fn run(
    store: Store,
    config: DispatcherConfig,
    client: reqwest::Client,
    mut stopped: watch::Receiver<bool>,
) {
    let mut in_flight = InFlight::default();
    loop {
        if *stopped.borrow() {
            break;
        }
        let more = match dispatch_once(&store, &config, &client, &mut in_flight).await {
            Ok(more) => more,
            Err(error) => {
                tracing::warn!(%error, "webhook dispatch failed");
                false
            }
        };
        if more {
            continue;
        }
        // Nothing more to take now: wait for a send to finish (its slot may serve someone),
        // the next look at the outbox, or the stop.
        tokio::select! {
            Some(joined) = in_flight.sends.join_next_with_id() => in_flight.finished(joined),
            _ = tokio::time::sleep(config.poll_interval) => {}
            changed = stopped.changed() => {
                if changed.is_err() {
                    break;
                }
            }
        }
    }
    while let Some(joined) = in_flight.sends.join_next_with_id().await {
        in_flight.finished(joined);
    }
    tracing::debug!("webhook dispatcher stopped");
}

/// One round: fan out waiting outbox rows, start sends for due deliveries in the free slots,
/// fairly across tenants. Whether there may be more to take at once.
async fn dispatch_once(
    store: &Store,
    config: &DispatcherConfig,
    client: &reqwest::Client,
    in_flight: &mut InFlight,
) -> Result<bool, StoreError> {
    while let Some(joined) = in_flight.sends.try_join_next_with_id() {
        in_flight.finished(joined);
    }
    let fanned = store.fan_out_outbox(FAN_OUT_BATCH).await?;
    let free = config
        .concurrency
        .max(1)
        .saturating_sub(in_flight.sends.len());
    let due = store
        .claim_due_deliveries(&Claim {
            now: chrono::Utc::now(),
            lease: config.request_timeout + LEASE_MARGIN,
            limit: free,
            per_tenant_max: config.sends_per_tenant_max.max(1),
            in_flight: &in_flight.by_tenant,
        })
        .await?;
    let claimed = due.len();
    for delivery in due {
        in_flight.start(store, client, config, delivery);
    }
    Ok(fanned as i64 == FAN_OUT_BATCH || (claimed > 0 && claimed == free))
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

/// An error with its causes, for the server's log: reqwest's own message rarely says what
/// went wrong. Never shown to the tenant (see [`DeliveryFailure`]).
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

/// What the delivery log may say about a request that got no answer.
fn failure_of(error: &reqwest::Error) -> DeliveryFailure {
    if targets::is_address_refused(error) {
        DeliveryFailure::AddressNotAllowed
    } else if error.is_timeout() {
        DeliveryFailure::Timeout
    } else {
        DeliveryFailure::ConnectionFailed
    }
}

/// Makes one attempt and records its outcome.
async fn send(
    store: Store,
    client: reqwest::Client,
    config: DispatcherConfig,
    delivery: DueDelivery,
) {
    let outcome = attempt(&client, &config, &delivery).await;
    let now = chrono::Utc::now();
    let recorded = match outcome {
        Ok(status) if (200..300).contains(&status) => {
            store.delivery_succeeded(&delivery.id, status, now).await
        }
        Ok(status) => {
            store
                .delivery_failed(
                    &delivery,
                    DeliveryFailure::Status(status),
                    now,
                    config.base_delay,
                )
                .await
        }
        Err(failure) => {
            store
                .delivery_failed(&delivery, failure, now, config.base_delay)
                .await
        }
    };
    if let Err(error) = recorded {
        tracing::error!(%error, delivery = %delivery.id, "recording a webhook delivery failed");
    }
}

/// POSTs the delivery, signed; the receiver's status, or why there was none.
async fn attempt(
    client: &reqwest::Client,
    config: &DispatcherConfig,
    delivery: &DueDelivery,
) -> Result<u16, DeliveryFailure> {
    // Names are checked by the client's resolver; an address literal never reaches it.
    if !targets::literal_allowed(&delivery.url, config.allow_private_targets) {
        tracing::info!(delivery = %delivery.id, tenant = %delivery.tenant_id,
            "webhook not sent: its address is not allowed");
        return Err(DeliveryFailure::AddressNotAllowed);
    }
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
    match sent {
        Ok(response) => Ok(response.status().as_u16()),
        Err(error) => {
            let failure = failure_of(&error);
            tracing::info!(delivery = %delivery.id, tenant = %delivery.tenant_id,
                ?failure, error = %describe(&error), "webhook attempt failed");
            Err(failure)
        }
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
