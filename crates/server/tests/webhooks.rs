//! Webhooks end to end: a real server and dispatcher over a fresh SQLite file or PostgreSQL
//! database, sending to a real receiver on 127.0.0.1 that records what it gets.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use patron_server::DispatcherConfig;
use patron_store::admin::{KeyScope, NewTenant};
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
#[derive(Clone, Default)]
struct Receiver {
    received: Arc<Mutex<Vec<Received>>>,
    failures: Arc<AtomicUsize>,
    /// Milliseconds to wait before answering.
    delay_ms: Arc<AtomicUsize>,
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
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM outbox")
            .fetch_one(self.store.pool())
            .await
            .unwrap()
    }
}

/// A server with a café tenant and a write key, and a dispatcher pacing in milliseconds.
async fn spawn(postgres: bool) -> App {
    let store = fresh_store(postgres).await;
    let tenant = store
        .create_tenant(&NewTenant::vietnamese("Cà phê Webhook"))
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
    let (journal, _) = Journal::start(store.clone(), JournalConfig::default());
    let application =
        patron_server::Application::build(store.clone(), journal, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
    let address = format!("http://{}", application.local_addr());
    tokio::spawn(application.run(std::future::pending()));
    let dispatcher = patron_server::Dispatcher::start(
        store.clone(),
        DispatcherConfig {
            base_delay: Duration::from_millis(40),
            poll_interval: Duration::from_millis(20),
            concurrency: 4,
            request_timeout: Duration::from_secs(2),
        },
    );
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
                    && d["last_error"].is_string()
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
        sqlx::query(
            "UPDATE webhook_deliveries SET attempts = $1 WHERE status = 'pending' AND attempts BETWEEN 1 AND $2",
        )
        .bind(max - 1)
        .bind(max - 2)
        .execute(app.store.pool())
        .await
        .unwrap();
        let deliveries = app.deliveries(&webhook).await;
        deliveries.len() == 1 && deliveries[0]["status"] == "failed"
    })
    .await;
    let delivery = &app.deliveries(&webhook).await[0];
    assert_eq!(delivery["attempts"], max);
    assert!(delivery["last_error"].is_string());
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
