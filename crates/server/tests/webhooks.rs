//! Webhooks end to end: a real server and dispatcher over a fresh SQLite file or PostgreSQL
//! database, sending to a real receiver on 127.0.0.1 that records what it gets.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use patron_server::DispatcherConfig;
use patron_store::admin::{KeyScope, NewTenant};
use patron_store::users::Role;
use patron_store::{Journal, JournalConfig, Store};
use serde_json::{json, Value};
use sha2::Sha256;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use patron_testkit::fresh_store;

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Received {
    webhook_id: String,
    topic: String,
    signature: String,
    content_type: String,
    body: String,
}

/// A webhook receiver on 127.0.0.1 that answers 500 to its first `failures` requests.
#[derive(Clone)]
struct Receiver {
    received: Arc<Mutex<Vec<Received>>>,
    failures: Arc<AtomicUsize>,
    /// Milliseconds to wait before answering.
    delay_ms: Arc<AtomicUsize>,
    /// Requests are answered while this is true; set false to hold them.
    open: Arc<tokio::sync::watch::Sender<bool>>,
    /// Requests finished: answered, or dropped when the sender gave up.
    ended: Arc<AtomicUsize>,
}

impl Default for Receiver {
    fn default() -> Receiver {
        Receiver {
            received: Arc::default(),
            failures: Arc::default(),
            delay_ms: Arc::default(),
            open: Arc::new(tokio::sync::watch::channel(true).0),
            ended: Arc::default(),
        }
    }
}

/// Counts a request as ended when its handler finishes or is dropped.
struct Ends(Arc<AtomicUsize>);

impl Drop for Ends {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl Receiver {
    fn new(failures: usize) -> Receiver {
        let receiver = Receiver::default();
        receiver.failures.store(failures, Ordering::SeqCst);
        receiver
    }

    /// Serves on `listener`; returns the URL to subscribe.
    fn serve(&self, listener: tokio::net::TcpListener) -> String {
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        let router = axum::Router::new()
            .route("/hooks", axum::routing::post(receive))
            .with_state(self.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        url
    }

    async fn start(&self) -> String {
        self.serve(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap())
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: String) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    receiver.received.lock().unwrap().push(Received {
        webhook_id: header("patron-webhook-id"),
        topic: header("patron-topic"),
        signature: header("patron-signature"),
        content_type: header("content-type"),
        body,
    });
    let _ends = Ends(receiver.ended.clone());
    let _ = receiver.open.subscribe().wait_for(|open| *open).await;
    let delay = receiver.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay as u64)).await;
    }
    let fail = receiver
        .failures
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
            left.checked_sub(1)
        })
        .is_ok();
    if fail {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}

/// Whether `Patron-Signature` (`t=<seconds>,v1=<hex>`) is the HMAC-SHA256 of `"<t>.<body>"`
/// under the secret, computed here, and recent.
fn signature_valid(received: &Received, secret: &str) -> bool {
    let Some((t, v1)) = received.signature.split_once(',') else {
        return false;
    };
    let (Some(timestamp), Some(v1)) = (t.strip_prefix("t="), v1.strip_prefix("v1=")) else {
        return false;
    };
    let Ok(seconds) = timestamp.parse::<i64>() else {
        return false;
    };
    if !(0..60).contains(&(chrono::Utc::now().timestamp() - seconds)) {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{}", received.body).as_bytes());
    hex::decode(v1).is_ok_and(|expected| mac.verify_slice(&expected).is_ok())
}

fn assert_signed(received: &Received, secret: &str) {
    assert!(signature_valid(received, secret), "{received:?}");
}

struct App {
    address: String,
    /// The server's dispatcher, for tests that stop it.
    dispatcher: Option<patron_server::Dispatcher>,
    key: String,
    tenant: patron_core::TenantId,
    store: Store,
    client: reqwest::Client,
}

impl App {
    async fn send(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request.bearer_auth(&self.key).send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(
            self.client
                .post(format!("{}{path}", self.address))
                .json(&body),
        )
        .await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.client.get(format!("{}{path}", self.address)))
            .await
    }

    async fn delete(&self, path: &str) -> (u16, Value) {
        self.send(self.client.delete(format!("{}{path}", self.address)))
            .await
    }

    /// Another app handle on the same server, for a new tenant with a key of `scope`.
    async fn other_tenant(&self, scope: KeyScope) -> App {
        let tenant = self
            .store
            .create_tenant(&NewTenant::vietnamese("Trà sữa Khác"))
            .await
            .unwrap();
        App {
            address: self.address.clone(),
            dispatcher: None,
            key: self
                .store
                .create_api_key(tenant, "other", scope)
                .await
                .unwrap(),
            tenant,
            store: self.store.clone(),
            client: self.client.clone(),
        }
    }

    async fn subscribe(&self, url: &str, topics: &[&str]) -> (String, String) {
        let (status, body) = self
            .post("/v1/webhooks", json!({"url": url, "topics": topics}))
            .await;
        assert_eq!(status, 201, "{body}");
        (
            body["id"].as_str().unwrap().to_owned(),
            body["secret"].as_str().unwrap().to_owned(),
        )
    }

    async fn purchase(&self, id: &str, phone: &str, amount: i64) -> Value {
        let (status, body) = self
            .post(
                "/v1/events",
                json!({"id": id, "type": "purchase", "occurred_at": "2026-01-10T09:00:00+07:00",
                       "member": {"phone": phone}, "store": "HN01", "amount": amount}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    async fn deliveries(&self, webhook: &str) -> Vec<Value> {
        let (status, body) = self
            .get(&format!("/v1/webhooks/{webhook}/deliveries?limit=200"))
            .await;
        assert_eq!(status, 200, "{body}");
        body.as_array().unwrap().clone()
    }

    async fn outbox_rows(&self) -> i64 {
        self.store
            .db()
            .fetch_one("SELECT COUNT(*) AS n FROM outbox", vec![])
            .await
            .unwrap()
            .int("n")
            .unwrap()
    }
}

/// A new tenant set up like a café (store HN01, a programme from 2020) and its admin key.
async fn cafe_tenant(store: &Store, name: &str) -> (patron_core::TenantId, String) {
    let tenant = store
        .create_tenant(&NewTenant::vietnamese(name))
        .await
        .unwrap();
    let key = store
        .create_api_key(tenant, "test", KeyScope::Admin)
        .await
        .unwrap();
    store
        .create_store(tenant, "HN01", "Hà Nội 1")
        .await
        .unwrap();
    let programme = serde_json::from_value(json!({
        "amount_per_point": 10000, "point_value": 1000, "return_window_days": 0,
        "expiry": {"kind": "days", "days": 365},
        "rules": [],
        "tiers": [{"code": "member", "name": "Member", "threshold": 0},
                  {"code": "gold", "name": "Gold", "threshold": 5000000, "multiplier_percent": 150}],
        "qualification": {"metric": "spend", "window": "rolling_12_months", "grace_days": 30}
    }))
    .unwrap();
    let from = chrono::DateTime::parse_from_rfc3339("2020-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    store
        .publish_programme(tenant, programme, from)
        .await
        .unwrap();
    (tenant, key)
}

/// The dispatcher the tests use: pacing in milliseconds, local receivers allowed.
fn quick_dispatcher() -> DispatcherConfig {
    DispatcherConfig {
        base_delay: Duration::from_millis(40),
        poll_interval: Duration::from_millis(20),
        concurrency: 4,
        request_timeout: Duration::from_secs(2),
        sends_per_tenant_max: 2,
        allow_private_targets: true,
    }
}

/// A server with a café tenant and an admin key, and a dispatcher pacing in milliseconds; both
/// allow local receivers, as every receiver here is on 127.0.0.1.
async fn spawn(postgres: bool) -> App {
    spawn_with(postgres, true, quick_dispatcher()).await
}

/// As [`spawn`], with the server's `webhooks_allow_private_targets` and the dispatcher given.
async fn spawn_with(postgres: bool, allow_private: bool, dispatcher: DispatcherConfig) -> App {
    let store = fresh_store(postgres).await;
    let (tenant, key) = cafe_tenant(&store, "Cà phê Webhook").await;
    let (journal, _) = Journal::start(store.clone(), JournalConfig::default());
    let application = patron_server::Application::build_with(
        store.clone(),
        journal,
        "127.0.0.1:0".parse().unwrap(),
        patron_server::ServerOptions {
            webhooks_allow_private_targets: allow_private,
            ..patron_server::ServerOptions::default()
        },
    )
    .await
    .unwrap();
    let address = format!("http://{}", application.local_addr());
    tokio::spawn(application.run(std::future::pending()));
    let dispatcher = patron_server::Dispatcher::start(store.clone(), dispatcher);
    App {
        address,
        dispatcher: Some(dispatcher),
        key,
        tenant,
        store,
        client: reqwest::Client::new(),
    }
}

/// Polls `check` until it holds (at most 20 s).
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn all_delivered(app: &App, webhook: &str, count: usize) -> bool {
    let deliveries = app.deliveries(webhook).await;
    deliveries.len() == count && deliveries.iter().all(|d| d["status"] == "delivered")
}

macro_rules! on_both_backends {
    ($($name:ident;)*) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(super::spawn(false).await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(super::spawn(true).await).await;
            }
        }
    )*};
}

on_both_backends! {
    delivers_signed_events_after_retries;
    receiver_down_then_up_gets_everything;
    replay_resends_and_disabled_webhook_gets_nothing;
    api_is_scoped_to_the_tenant_and_validated;
    gives_up_after_attempts_max;
    stopping_finishes_sends_in_flight;
    only_owners_see_webhooks_and_their_logs;
    the_log_shows_a_status_or_a_fixed_reason;
}

/// As `on_both_backends!`, for tests that set up their own server.
macro_rules! on_both_backends_own_setup {
    ($($name:ident;)*) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(false).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(true).await;
            }
        }
    )*};
}

on_both_backends_own_setup! {
    private_targets_are_refused_at_subscription;
    a_stored_private_target_is_not_sent_to;
    a_slow_tenant_does_not_hold_up_another;
}

async fn delivers_signed_events_after_retries(app: App) {
    // No subscriber: the journal writes no outbox row.
    app.purchase("HD-0", "0912 000 000", 100000).await;
    assert_eq!(app.outbox_rows().await, 0);

    let receiver = Receiver::new(2);
    let url = receiver.start().await;
    let (webhook, secret) = app
        .subscribe(&url, &["member.created", "points.earned", "tier.changed"])
        .await;
    assert!(
        secret.starts_with("whsec_") && secret.len() == 6 + 64,
        "{secret}"
    );
    let result = app.purchase("HD-1", "0912 345 678", 359000).await;
    assert_eq!(result["member_created"], true);
    assert_eq!(result["points_earned"], 35);
    // member.created and points.earned; no tier change.
    assert_eq!(app.outbox_rows().await, 2);
    eventually("both delivered", || all_delivered(&app, &webhook, 2)).await;

    let deliveries = app.deliveries(&webhook).await;
    let received = receiver.received();
    let attempts: i64 = deliveries
        .iter()
        .map(|d| d["attempts"].as_i64().unwrap())
        .sum();
    // Two answers of 500, then two of 200: each attempt counted.
    assert_eq!(received.len(), 4);
    assert_eq!(attempts, 4);
    for delivery in &deliveries {
        assert_eq!(delivery["last_status_code"], 200);
        assert!(delivery["last_error"].is_null(), "{delivery}");
        assert!(delivery["delivered_at"].is_string());
    }
    let mut topics: Vec<&str> = received.iter().map(|r| r.topic.as_str()).collect();
    topics.sort();
    topics.dedup();
    assert_eq!(topics, ["member.created", "points.earned"]);
    for request in &received {
        assert_signed(request, &secret);
        assert_eq!(request.content_type, "application/json");
        let body: Value = serde_json::from_str(&request.body).unwrap();
        assert_eq!(
            body["version"],
            patron_store::records::WEBHOOK_PAYLOAD_VERSION
        );
        assert_eq!(body["topic"], request.topic.as_str());
        assert_eq!(body["tenant_id"], app.tenant.to_string());
        assert_eq!(body["occurred_at"], "2026-01-10T09:00:00+07:00");
        assert_eq!(body["data"]["event_id"], "HD-1");
        assert_eq!(body["data"]["points_earned"], 35);
        let delivery = deliveries
            .iter()
            .find(|d| d["id"] == request.webhook_id.as_str())
            .expect("the header names the delivery");
        assert_eq!(delivery["outbox_id"], body["id"]);
    }
    // A forged body does not verify.
    let mut forged = received[0].clone();
    forged.body = forged.body.replace("35", "36");
    assert!(!signature_valid(&forged, &secret));
    assert!(!signature_valid(&received[0], "whsec_other"));

    let metrics = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("patron_webhook_deliveries_pending 0"),
        "{metrics}"
    );
    assert!(metrics.contains("patron_webhook_oldest_pending_seconds 0"));
    let audit = app.store.audit_log(app.tenant, 10, None).await.unwrap();
    assert!(audit
        .iter()
        .any(|entry| entry.action == "webhook.create"
            && entry.subject == format!("webhook:{webhook}")));
}

async fn receiver_down_then_up_gets_everything(app: App) {
    // A port with nothing listening.
    let address = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let (webhook, secret) = app
        .subscribe(&format!("http://{address}/hooks"), &["points.earned"])
        .await;
    for n in 0..3 {
        app.purchase(&format!("HD-{n}"), &format!("0912 345 67{n}"), 100000)
            .await;
    }
    eventually("three failed attempts each", || async {
        let deliveries = app.deliveries(&webhook).await;
        deliveries.len() == 3
            && deliveries.iter().all(|d| {
                d["status"] == "pending"
                    && d["attempts"].as_i64().unwrap() >= 3
                    && d["last_status_code"].is_null()
                    && d["last_error"] == "connection failed"
            })
    })
    .await;
    let lag = app.store.outbox_lag(chrono::Utc::now()).await.unwrap();
    assert_eq!(lag.pending, 3);
    assert!(lag.oldest_pending_seconds > 0.0);

    let receiver = Receiver::new(0);
    receiver.serve(tokio::net::TcpListener::bind(address).await.unwrap());
    eventually("all delivered once up", || all_delivered(&app, &webhook, 3)).await;
    let received = receiver.received();
    let mut ids: Vec<&str> = received.iter().map(|r| r.webhook_id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3);
    for request in &received {
        assert_signed(request, &secret);
    }
}

async fn replay_resends_and_disabled_webhook_gets_nothing(app: App) {
    let receiver = Receiver::new(0);
    let url = receiver.start().await;
    let (webhook, secret) = app.subscribe(&url, &["points.earned"]).await;
    // Another subscriber that wants other topics only gets nothing of a purchase.
    let (quiet, _) = app.subscribe(&url, &["voucher.used"]).await;
    app.purchase("HD-1", "0912 345 678", 200000).await;
    eventually("delivered", || all_delivered(&app, &webhook, 1)).await;
    assert!(app.deliveries(&quiet).await.is_empty());
    let delivery = app.deliveries(&webhook).await[0].clone();
    let delivery_id = delivery["id"].as_str().unwrap();

    let (status, replayed) = app
        .post(
            &format!("/v1/webhooks/deliveries/{delivery_id}/replay"),
            json!({}),
        )
        .await;
    assert_eq!(status, 202, "{replayed}");
    assert_eq!(replayed["status"], "pending");
    eventually("sent again", || async { receiver.received().len() == 2 }).await;
    eventually("delivered again", || all_delivered(&app, &webhook, 1)).await;
    let received = receiver.received();
    assert_eq!(received[0].webhook_id, received[1].webhook_id);
    assert_eq!(received[0].body, received[1].body);
    assert_signed(&received[1], &secret);

    let (status, _) = app.delete(&format!("/v1/webhooks/{webhook}")).await;
    assert_eq!(status, 204);
    let (status, _) = app.delete(&format!("/v1/webhooks/{webhook}")).await;
    assert_eq!(status, 204, "disabling twice is harmless");
    let (_, list) = app.get("/v1/webhooks").await;
    let listed = list
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["id"] == webhook.as_str())
        .unwrap();
    assert!(listed["disabled_at"].is_string());
    assert!(listed.get("secret").is_none(), "the secret is shown once");

    app.purchase("HD-2", "0912 345 678", 200000).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(receiver.received().len(), 2);
    assert_eq!(app.deliveries(&webhook).await.len(), 1);
    // With no live subscription for the topic, nothing goes to the outbox.
    assert_eq!(app.outbox_rows().await, 1);
    let (status, body) = app
        .post(
            &format!("/v1/webhooks/deliveries/{delivery_id}/replay"),
            json!({}),
        )
        .await;
    assert_eq!(status, 422, "{body}");

    let audit = app.store.audit_log(app.tenant, 20, None).await.unwrap();
    for action in [
        "webhook.create",
        "webhook.disable",
        "webhook_delivery.replay",
    ] {
        assert!(audit.iter().any(|entry| entry.action == action), "{action}");
    }
}

async fn api_is_scoped_to_the_tenant_and_validated(app: App) {
    let receiver = Receiver::new(0);
    let url = receiver.start().await;
    let (webhook, _) = app.subscribe(&url, &["points.earned"]).await;
    app.purchase("HD-1", "0912 345 678", 200000).await;
    eventually("delivered", || all_delivered(&app, &webhook, 1)).await;
    let delivery = app.deliveries(&webhook).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let other = app.other_tenant(KeyScope::Admin).await;
    let (status, list) = other.get("/v1/webhooks").await;
    assert_eq!((status, list), (200, json!([])));
    for (status, body) in [
        other
            .get(&format!("/v1/webhooks/{webhook}/deliveries"))
            .await,
        other.delete(&format!("/v1/webhooks/{webhook}")).await,
        other
            .post(
                &format!("/v1/webhooks/deliveries/{delivery}/replay"),
                json!({}),
            )
            .await,
        other.get("/v1/webhooks/no-such-id/deliveries").await,
    ] {
        assert_eq!(status, 404, "{body}");
        assert_eq!(body["code"], "not_found");
    }
    let (_, list) = app.get("/v1/webhooks").await;
    assert!(
        list[0]["disabled_at"].is_null(),
        "untouched by the other tenant"
    );

    // Webhooks are the owner's: neither a read key nor a till's write key may change them.
    for scope in [KeyScope::Read, KeyScope::Write] {
        let (tenant, key) = (
            app.tenant,
            app.store
                .create_api_key(app.tenant, "k", scope)
                .await
                .unwrap(),
        );
        let limited = App {
            key,
            tenant,
            dispatcher: None,
            store: app.store.clone(),
            address: app.address.clone(),
            client: app.client.clone(),
        };
        let (status, _) = limited
            .post(
                "/v1/webhooks",
                json!({"url": url, "topics": ["points.earned"]}),
            )
            .await;
        assert_eq!(status, 403, "{scope:?}");
        let (status, _) = limited.delete(&format!("/v1/webhooks/{webhook}")).await;
        assert_eq!(status, 403, "{scope:?}");
    }

    for (body, field) in [
        (
            json!({"url": "ftp://example.com", "topics": ["points.earned"]}),
            "url",
        ),
        (
            json!({"url": "https://", "topics": ["points.earned"]}),
            "url",
        ),
        (
            json!({"url": "https://example.com", "topics": []}),
            "topics",
        ),
        (
            json!({"url": "https://example.com", "topics": ["points.earned", "points.stolen"]}),
            "topics[1]",
        ),
        (
            json!({"url": "https://example.com", "topics": "points.earned"}),
            "topics",
        ),
        (
            json!({"url": "https://example.com", "topics": ["points.earned"], "events": []}),
            "events",
        ),
        (json!({"topics": ["points.earned"]}), "url"),
    ] {
        let (status, error) = app.post("/v1/webhooks", body.clone()).await;
        assert_eq!(status, 422, "{body} → {error}");
        assert_eq!(error["field"], field, "{body} → {error}");
    }
    let (status, error) = app
        .get(&format!("/v1/webhooks/{webhook}/deliveries?limit=x"))
        .await;
    assert_eq!(status, 422, "{error}");

    let (status, document) = app.get("/openapi.json").await;
    assert_eq!(status, 200);
    let paths = &document["paths"];
    for (path, method) in [
        ("/v1/webhooks", "get"),
        ("/v1/webhooks", "post"),
        ("/v1/webhooks/{id}", "delete"),
        ("/v1/webhooks/{id}/deliveries", "get"),
        ("/v1/webhooks/deliveries/{id}/replay", "post"),
    ] {
        let operation = &paths[path][method];
        assert_eq!(operation["tags"][0], "webhooks", "{path} {method}");
    }
    assert!(document["components"]["schemas"]["WebhookRequest"].is_object());
}

async fn gives_up_after_attempts_max(app: App) {
    let address = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let (webhook, _) = app
        .subscribe(&format!("http://{address}/hooks"), &["points.earned"])
        .await;
    app.purchase("HD-1", "0912 345 678", 100000).await;
    let max = patron_store::webhooks::ATTEMPTS_MAX;
    eventually("failed after the last attempt", || async {
        // Skip ahead to the last attempt (again, if an attempt in flight overwrote it).
        app.store
            .db()
            .execute(
                "UPDATE webhook_deliveries SET attempts = $1 WHERE status = 'pending' AND attempts BETWEEN 1 AND $2",
                patron_store::binds![max - 1, max - 2],
            )
            .await
            .unwrap();
        let deliveries = app.deliveries(&webhook).await;
        deliveries.len() == 1 && deliveries[0]["status"] == "failed"
    })
    .await;
    let delivery = &app.deliveries(&webhook).await[0];
    assert_eq!(delivery["attempts"], max);
    assert_eq!(delivery["last_error"], "connection failed");
    let lag = app.store.outbox_lag(chrono::Utc::now()).await.unwrap();
    assert_eq!(lag.pending, 0, "a failed delivery is no longer pending");

    // Replayed once the receiver is up, it is delivered.
    let receiver = Receiver::new(0);
    receiver.serve(tokio::net::TcpListener::bind(address).await.unwrap());
    let id = delivery["id"].as_str().unwrap();
    let (status, _) = app
        .post(&format!("/v1/webhooks/deliveries/{id}/replay"), json!({}))
        .await;
    assert_eq!(status, 202);
    eventually("delivered after replay", || {
        all_delivered(&app, &webhook, 1)
    })
    .await;
    assert_eq!(app.deliveries(&webhook).await[0]["attempts"], 1);
}

async fn stopping_finishes_sends_in_flight(mut app: App) {
    let receiver = Receiver::new(0);
    receiver.delay_ms.store(500, Ordering::SeqCst);
    let url = receiver.start().await;
    let (webhook, _) = app.subscribe(&url, &["points.earned"]).await;
    app.purchase("HD-1", "0912 345 678", 100000).await;
    eventually("a send in flight", || async {
        !receiver.received().is_empty()
    })
    .await;
    let started = std::time::Instant::now();
    app.dispatcher.take().unwrap().stop().await;
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "waited for the send"
    );
    // Recorded before stop returned, and nothing more is sent after it.
    assert!(all_delivered(&app, &webhook, 1).await);
    app.purchase("HD-2", "0912 345 678", 100000).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.received().len(), 1);
    assert_eq!(app.deliveries(&webhook).await.len(), 1);
}

async fn private_targets_are_refused_at_subscription(postgres: bool) {
    let app = spawn_with(postgres, false, quick_dispatcher()).await;
    let receiver = Receiver::new(0);
    let local = receiver.start().await;
    let port = local.split(':').nth(2).unwrap().split('/').next().unwrap();
    for url in [
        local.clone(),
        format!("http://localhost:{port}/hooks"),
        format!("http://LocalHost.:{port}/hooks"),
        format!("http://[::1]:{port}/hooks"),
        format!("http://0x7f.1:{port}/hooks"),
        "http://2130706433/".to_owned(),
        "http://[::ffff:127.0.0.1]/".to_owned(),
        "http://10.0.0.5:3306/".to_owned(),
        "http://172.16.0.1/".to_owned(),
        "http://192.168.1.1/".to_owned(),
        "http://100.64.0.1/".to_owned(),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://0.0.0.0/".to_owned(),
        "http://224.0.0.1/".to_owned(),
        "http://255.255.255.255/".to_owned(),
        "http://192.0.2.10/".to_owned(),
        "https://[fd12:3456::1]/".to_owned(),
        "https://[fe80::1]/".to_owned(),
        "https://hooks.example.com@127.0.0.1/".to_owned(),
    ] {
        let (status, error) = app
            .post(
                "/v1/webhooks",
                json!({"url": url, "topics": ["points.earned"]}),
            )
            .await;
        assert_eq!(status, 422, "{url} → {error}");
        assert_eq!(error["field"], "url", "{url} → {error}");
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("public address"),
            "{error}"
        );
    }
    // A public address literal is fine (no name to resolve here).
    app.subscribe("https://93.184.215.14/hooks", &["points.earned"])
        .await;
    let (status, error) = app
        .post(
            "/v1/webhooks",
            json!({"url": "gopher://93.184.215.14/", "topics": ["points.earned"]}),
        )
        .await;
    assert_eq!((status, &error["field"]), (422, &json!("url")), "{error}");

    // The same local URL is accepted once the server allows private targets.
    let allowing = spawn(postgres).await;
    allowing.subscribe(&local, &["points.earned"]).await;
}

async fn a_stored_private_target_is_not_sent_to(postgres: bool) {
    let app = spawn_with(
        postgres,
        false,
        DispatcherConfig {
            allow_private_targets: false,
            ..quick_dispatcher()
        },
    )
    .await;
    let receiver = Receiver::new(0);
    let local = receiver.start().await;
    let by_name = local.replace("127.0.0.1", "localhost");
    // Stored before the setting was turned off: straight into the store, as the API refuses them.
    let mut webhooks = Vec::new();
    for url in [&local, &by_name] {
        let (subscription, _) = app
            .store
            .create_webhook(
                app.tenant,
                &patron_store::audit::Actor::cli(),
                url,
                &["points.earned".to_owned()],
            )
            .await
            .unwrap();
        webhooks.push(subscription.id);
    }
    app.purchase("HD-1", "0912 345 678", 100000).await;
    for webhook in &webhooks {
        eventually("refused attempts recorded", || async {
            let deliveries = app.deliveries(webhook).await;
            deliveries.len() == 1 && deliveries[0]["attempts"].as_i64().unwrap() >= 2
        })
        .await;
        let delivery = &app.deliveries(webhook).await[0];
        assert_eq!(delivery["status"], "pending");
        assert!(delivery["last_status_code"].is_null(), "{delivery}");
        assert_eq!(delivery["last_error"], "address not allowed", "{delivery}");
    }
    assert!(
        receiver.received().is_empty(),
        "nothing reached 127.0.0.1: {:?}",
        receiver.received()
    );
}

/// A receiver that is not HTTP (a database's port, say) answers with its own bytes.
async fn not_http() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Ok((mut socket, _)) = listener.accept().await {
            let _ = socket
                .write_all(b"J\0\0\0\n8.0.36\0mysql_native_password\0")
                .await;
        }
    });
    format!("http://{address}/hooks")
}

async fn the_log_shows_a_status_or_a_fixed_reason(app: App) {
    let refusing = Receiver::new(usize::MAX);
    let (answers_500, _) = app
        .subscribe(&refusing.start().await, &["points.earned"])
        .await;
    let (speaks_mysql, _) = app.subscribe(&not_http().await, &["points.earned"]).await;
    let hanging = Receiver::new(0);
    hanging.open.send_replace(false);
    let (hangs, _) = app
        .subscribe(&hanging.start().await, &["points.earned"])
        .await;
    app.purchase("HD-1", "0912 345 678", 100000).await;
    eventually("every receiver tried", || async {
        for webhook in [&answers_500, &speaks_mysql, &hangs] {
            let deliveries = app.deliveries(webhook).await;
            if deliveries
                .first()
                .is_none_or(|delivery| delivery["attempts"] == 0)
            {
                return false;
            }
        }
        true
    })
    .await;
    let last = |deliveries: Vec<Value>| {
        assert_eq!(deliveries.len(), 1);
        (
            deliveries[0]["last_status_code"].clone(),
            deliveries[0]["last_error"].clone(),
        )
    };
    assert_eq!(
        last(app.deliveries(&answers_500).await),
        (json!(500), Value::Null)
    );
    assert_eq!(
        last(app.deliveries(&speaks_mysql).await),
        (Value::Null, json!("connection failed")),
        "not the parser's text (\"invalid HTTP version parsed\")"
    );
    assert_eq!(
        last(app.deliveries(&hangs).await),
        (Value::Null, json!("timeout"))
    );
    hanging.open.send_replace(true);
}

async fn only_owners_see_webhooks_and_their_logs(app: App) {
    let receiver = Receiver::new(0);
    let url = receiver.start().await;
    let (webhook, _) = app.subscribe(&url, &["points.earned"]).await;
    app.purchase("HD-1", "0912 345 678", 200000).await;
    eventually("delivered", || all_delivered(&app, &webhook, 1)).await;
    let delivery = app.deliveries(&webhook).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let mut callers = Vec::new();
    for scope in [KeyScope::Read, KeyScope::Write] {
        let key = app
            .store
            .create_api_key(app.tenant, "limited", scope)
            .await
            .unwrap();
        callers.push((format!("{scope:?} key"), format!("Bearer {key}")));
    }
    for role in [Role::Viewer, Role::Cashier, Role::Manager] {
        let email = format!("{}@cafe.vn", role.as_str());
        app.store
            .create_user(
                app.tenant,
                &email,
                role.as_str(),
                role,
                "correct horse battery",
                &patron_store::audit::Actor::cli(),
            )
            .await
            .unwrap();
        let (_, session) = app
            .store
            .sign_in(Some(app.tenant), &email, "correct horse battery")
            .await
            .unwrap()
            .unwrap();
        callers.push((
            format!("{} session", role.as_str()),
            format!(
                "{}={}|{}",
                patron_server::auth::SESSION_COOKIE,
                session.token,
                session.csrf_token
            ),
        ));
    }
    for (who, credential) in &callers {
        for (method, path) in [
            ("GET", "/v1/webhooks".to_owned()),
            ("GET", format!("/v1/webhooks/{webhook}/deliveries")),
            ("POST", "/v1/webhooks".to_owned()),
            ("DELETE", format!("/v1/webhooks/{webhook}")),
            ("POST", format!("/v1/webhooks/deliveries/{delivery}/replay")),
        ] {
            let mut request = app
                .client
                .request(method.parse().unwrap(), format!("{}{path}", app.address));
            request = match credential.split_once('|') {
                Some((cookie, csrf)) => request
                    .header("cookie", cookie)
                    .header("x-csrf-token", csrf),
                None => request.header("authorization", credential),
            };
            if method == "POST" {
                request = request.json(&json!({"url": url, "topics": ["points.earned"]}));
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            assert_eq!(status, 403, "{who}: {method} {path} → {text}");
            assert!(!text.contains(&url), "{who}: {method} {path} → {text}");
        }
    }
    let (status, list) = app.get("/v1/webhooks").await;
    assert_eq!(status, 200);
    assert_eq!(
        list[0]["url"],
        url.as_str(),
        "the owner's admin key sees it"
    );
}

async fn a_slow_tenant_does_not_hold_up_another(postgres: bool) {
    // Requests may hang for a minute, so only concurrency can let tenant B through while
    // tenant A's receiver hangs.
    let app = spawn_with(
        postgres,
        true,
        DispatcherConfig {
            request_timeout: Duration::from_secs(60),
            ..quick_dispatcher()
        },
    )
    .await;
    let slow = Receiver::new(0);
    slow.open.send_replace(false);
    let (slow_webhook, _) = app.subscribe(&slow.start().await, &["points.earned"]).await;
    // More of tenant A's deliveries than the dispatcher has slots, all due before B's.
    for n in 0..6 {
        app.purchase(&format!("A-{n}"), &format!("0912 000 00{n}"), 100000)
            .await;
    }
    eventually("tenant A's first deliveries hang", || async {
        !slow.received().is_empty()
    })
    .await;

    let (tenant_b, key_b) = cafe_tenant(&app.store, "Trà sữa B").await;
    let b = App {
        key: key_b,
        tenant: tenant_b,
        dispatcher: None,
        store: app.store.clone(),
        address: app.address.clone(),
        client: app.client.clone(),
    };
    let prompt = Receiver::new(0);
    let (prompt_webhook, _) = b.subscribe(&prompt.start().await, &["points.earned"]).await;
    b.purchase("B-1", "0987 654 321", 100000).await;
    eventually("tenant B's delivery arrives", || async {
        !prompt.received().is_empty()
    })
    .await;
    // The ordering fact: B's arrived while every one of A's requests was still hanging.
    assert_eq!(slow.ended.load(Ordering::SeqCst), 0);
    let hanging = slow.received().len();
    assert!(
        (1..=2).contains(&hanging),
        "at most sends_per_tenant_max of A's in flight: {hanging}"
    );
    eventually("B's recorded delivered", || {
        all_delivered(&b, &prompt_webhook, 1)
    })
    .await;

    slow.open.send_replace(true);
    eventually("all of A's delivered once it answers", || {
        all_delivered(&app, &slow_webhook, 6)
    })
    .await;
}
