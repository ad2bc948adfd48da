//! Black-box tests over HTTP: a real server on port 0 over a fresh SQLite file or PostgreSQL
//! database, driven by a client as a POS would.

use patron_store::admin::{KeyScope, NewTenant};
use patron_store::{Journal, JournalConfig, Store};
use serde_json::{json, Value};

struct TestApp {
    address: String,
    key: String,
    store: Store,
    client: reqwest::Client,
}

use patron_testkit::fresh_store;

fn programme() -> Value {
    json!({
        "amount_per_point": 10000, "point_value": 1000, "return_window_days": 0,
        "expiry": {"kind": "days", "days": 365},
        "rules": [{"id": "cake", "name": "Cake", "when": "'cake' in event.categories",
                   "points": "event.quantity_by_category['cake'] * 10"}],
        "tiers": [{"code": "member", "name": "Member", "threshold": 0},
                  {"code": "gold", "name": "Gold", "threshold": 5000000, "multiplier_percent": 150}],
        "qualification": {"metric": "spend", "window": "rolling_12_months", "grace_days": 30}
    })
}

/// Starts the server on port 0 with its own journal; returns its address.
async fn serve(store: Store, limit: patron_server::RateLimit) -> String {
    let (journal, _) = Journal::start(store.clone(), JournalConfig::default());
    let application = patron_server::Application::build_with_limit(
        store,
        journal,
        "127.0.0.1:0".parse().unwrap(),
        limit,
    )
    .await
    .unwrap();
    let address = format!("http://{}", application.local_addr());
    tokio::spawn(application.run(std::future::pending()));
    address
}

/// A new tenant and an API key of `scope` for it.
async fn tenant_with_key(
    store: &Store,
    name: &str,
    scope: KeyScope,
) -> (patron_core::TenantId, String) {
    let tenant = store
        .create_tenant(&NewTenant::vietnamese(name))
        .await
        .unwrap();
    let key = store.create_api_key(tenant, "test", scope).await.unwrap();
    (tenant, key)
}

async fn spawn_app(postgres: bool) -> TestApp {
    let store = fresh_store(postgres).await;
    let (_, key) = tenant_with_key(&store, "Cà phê HTTP", KeyScope::Write).await;
    let address = serve(store.clone(), patron_server::RateLimit::default()).await;
    let app = TestApp {
        address,
        key,
        store,
        client: reqwest::Client::new(),
    };
    let (status, body) = app
        .post(
            "/v1/programme/versions",
            json!({"definition": programme(), "effective_from": "2020-01-01T00:00:00+07:00"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    for code in ["HN01", "HCM01"] {
        let (status, _) = app
            .post("/v1/stores", json!({"code": code, "name": code}))
            .await;
        assert_eq!(status, 201);
    }
    app
}

impl TestApp {
    async fn send(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request.send().await.unwrap();
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
                .bearer_auth(&self.key)
                .json(&body),
        )
        .await
    }

    async fn post_raw(&self, path: &str, body: String) -> (u16, Value) {
        self.send(
            self.client
                .post(format!("{}{path}", self.address))
                .bearer_auth(&self.key)
                .header("content-type", "application/json")
                .body(body),
        )
        .await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(
            self.client
                .get(format!("{}{path}", self.address))
                .bearer_auth(&self.key),
        )
        .await
    }
}

fn purchase(id: &str, phone: &str, amount: i64) -> Value {
    json!({"id": id, "type": "purchase", "occurred_at": "2026-01-10T09:00:00+07:00",
           "member": {"phone": phone}, "store": "HN01", "amount": amount})
}

macro_rules! on_both_backends {
    ($($name:ident;)*) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() { super::$name(super::spawn_app(false).await).await; }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() { super::$name(super::spawn_app(true).await).await; }
        }
    )*};
}

async fn purchase_member_and_history(app: TestApp) {
    let mut body = purchase("HD-1", "0912 345 678", 359_000);
    body["items"] = json!([{"category": "cake", "quantity": 2, "amount": 70000}]);
    let (status, first) = app.post("/v1/events", body.clone()).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["points_earned"], 55);
    assert_eq!(first["member_created"], true);
    assert_eq!(first["lines"][0]["rule"], "base");
    assert_eq!(first["lines"][1]["rule"], "cake");
    // The same body with its keys in another order is the same event.
    let reordered = r#"{"amount": 359000, "items": [{"amount": 70000, "quantity": 2, "category": "cake"}], "store": "HN01",
            "member": {"phone": "0912 345 678"}, "occurred_at": "2026-01-10T09:00:00+07:00", "type": "purchase", "id": "HD-1"}"#
        .to_owned();
    let (status, again) = app.post_raw("/v1/events", reordered).await;
    assert_eq!((status, &again), (200, &first));
    let (status, conflict) = app
        .post("/v1/events", purchase("HD-1", "0912 345 678", 1))
        .await;
    assert_eq!(
        (status, conflict["code"].as_str()),
        (409, Some("exists_with_different_body"))
    );

    let (status, member) = app.get("/v1/members/by-phone/0912345678").await;
    assert_eq!(status, 200);
    assert_eq!(member["balance"], 55);
    assert_eq!(member["phone"], "+84912345678");
    assert_eq!(member["tier"]["next_tier"], "gold");
    let id = member["id"].as_str().unwrap();
    let (status, by_id) = app.get(&format!("/v1/members/{id}")).await;
    assert_eq!((status, &by_id["balance"]), (200, &json!(55)));
    let (status, history) = app.get(&format!("/v1/members/{id}/history")).await;
    assert_eq!(status, 200);
    assert_eq!(history["entries"][0]["points"], 55);
    assert_eq!(
        history["entries"][0]["reason"]["lines"][0]["detail"],
        "1 point per 10,000đ of 359,000đ"
    );
}

async fn enrolment_keeps_the_profile(app: TestApp) {
    let attributes: serde_json::Map<String, Value> = (0..patron_server::ATTRIBUTES_MAX)
        .map(|index| (format!("k{index}"), json!(index)))
        .collect();
    let body = json!({"id": "EN-1", "type": "enrol", "member": {"phone": "0987000001"},
        "profile": {"name": "<script>Lan</script>", "birthday": "1995-04-30", "city": "Huế", "tags": ["vip"],
                    "attributes": attributes}});
    let (status, answer) = app.post("/v1/events", body).await;
    assert_eq!(status, 200, "{answer}");
    let (_, member) = app.get("/v1/members/by-phone/0987000001").await;
    assert_eq!(member["name"], "<script>Lan</script>");
    assert_eq!(member["birthday"], "1995-04-30");
    assert_eq!(member["attributes"]["k49"], 49);
    let mut too_many = attributes.clone();
    too_many.insert("one_more".into(), json!(1));
    let body = json!({"id": "EN-2", "type": "enrol", "member": {"phone": "0987000002"}, "profile": {"attributes": too_many}});
    let (status, answer) = app.post("/v1/events", body).await;
    assert_eq!(
        (status, answer["field"].as_str()),
        (422, Some("profile.attributes"))
    );
    let big = json!({"note": "x".repeat(patron_server::ATTRIBUTES_BYTES_MAX)});
    let body = json!({"id": "EN-3", "type": "enrol", "member": {"phone": "0987000003"}, "profile": {"attributes": big}});
    let (status, answer) = app.post("/v1/events", body).await;
    assert_eq!(
        (status, answer["field"].as_str()),
        (422, Some("profile.attributes"))
    );
}

async fn errors_name_the_field(app: TestApp) {
    let cases: Vec<(Value, u16, &str, &str)> = vec![
        (
            json!({"id": "E1", "type": "purchase", "member": {"phone": "0912345678"}}),
            422,
            "invalid_field",
            "amount",
        ),
        (
            json!({"id": "E2", "type": "purchase", "member": {"phone": "12"}, "amount": 1}),
            422,
            "invalid_field",
            "member.phone",
        ),
        (
            json!({"id": "E3", "type": "purchase", "member": {"phone": "0912345678"}, "amount": 1, "bogus": 1}),
            422,
            "invalid_field",
            "bogus",
        ),
        (
            json!({"id": "E4", "type": "purchase", "member": {"phone": "0912345678"}, "amount": 1, "reward_id": "x"}),
            422,
            "invalid_field",
            "reward_id",
        ),
        (
            json!({"id": "E5", "type": "purchase", "member": {"phone": "0912345678"}, "amount": 1, "occurred_at": "2999-01-01T00:00:00Z"}),
            422,
            "invalid_field",
            "occurred_at",
        ),
        (
            json!({"id": "E6", "type": "teleport"}),
            422,
            "invalid_field",
            "type",
        ),
        (
            json!({"id": "", "type": "purchase"}),
            422,
            "invalid_field",
            "id",
        ),
        (
            json!({"id": "E7", "type": "purchase", "member": {"phone": "0912345678"}, "amount": 100000, "points_paid": 5}),
            422,
            "insufficient_points",
            "points_paid",
        ),
        (
            json!({"id": "E8", "type": "refund", "original_id": "NOPE", "amount": 1}),
            404,
            "original_not_found",
            "original_id",
        ),
        (
            json!({"id": "E9", "type": "purchase", "member": {"phone": "0912345678"}, "amount": 1, "store": "XX"}),
            422,
            "unknown_store",
            "store",
        ),
    ];
    for (body, status, code, field) in cases {
        let (got, answer) = app.post("/v1/events", body.clone()).await;
        assert_eq!(got, status, "{body} → {answer}");
        assert_eq!(answer["code"], code, "{body} → {answer}");
        assert_eq!(answer["field"], field, "{body} → {answer}");
    }
    let (status, answer) = app.post_raw("/v1/events", "{not json".into()).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (400, Some("malformed_json"))
    );
    let big = format!(
        r#"{{"id": "BIG", "type": "purchase", "pad": "{}"}}"#,
        "x".repeat(patron_server::BODY_BYTES_MAX)
    );
    let (status, _) = app.post_raw("/v1/events", big).await;
    assert_eq!(status, 413);
}

async fn batches_answer_each_event(app: TestApp) {
    let events = json!({"events": [
        purchase("B1", "0912000001", 100_000),
        {"id": "B2", "type": "purchase", "member": {"phone": "0912000001"}},
        purchase("B3", "0912000001", 200_000),
    ]});
    let (status, answer) = app.post("/v1/events/batch", events).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (answer["accepted"].as_u64(), answer["rejected"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(answer["results"][1]["status"], "rejected");
    assert_eq!(answer["results"][1]["error"]["field"], "events[1].amount");
    assert_eq!(answer["results"][2]["result"]["balance"], 30);
    let too_many: Vec<Value> = (0..=patron_server::BATCH_EVENTS_MAX)
        .map(|index| purchase(&format!("M{index}"), "0912000001", 10_000))
        .collect();
    let (status, answer) = app
        .post("/v1/events/batch", json!({"events": too_many}))
        .await;
    assert_eq!((status, answer["field"].as_str()), (413, Some("events")));
    let (status, answer) = app.post("/v1/events/batch", json!({"events": []})).await;
    assert_eq!((status, answer["field"].as_str()), (422, Some("events")));
}

async fn rewards_redeem_use_cancel(app: TestApp) {
    app.post("/v1/events", purchase("RW-0", "0912000002", 1_000_000))
        .await;
    let (status, reward) = app
        .post(
            "/v1/rewards",
            json!({"name": "Cà phê sữa", "cost": 40, "stock": 5}),
        )
        .await;
    assert_eq!(status, 201, "{reward}");
    let (status, list) = app.get("/v1/rewards").await;
    assert_eq!((status, list.as_array().unwrap().len()), (200, 1));
    let reward_id = reward["id"].as_str().unwrap();
    let (status, redeemed) = app
        .post(
            "/v1/redemptions",
            json!({"id": "RW-1", "member": {"phone": "0912000002"}, "reward_id": reward_id}),
        )
        .await;
    assert_eq!(status, 200, "{redeemed}");
    assert_eq!(redeemed["balance"], 60);
    let code = redeemed["voucher"]["code"].as_str().unwrap().to_owned();
    let (status, used) = app
        .post(
            &format!("/v1/vouchers/{code}/use"),
            json!({"id": "RW-2", "store": "HN01"}),
        )
        .await;
    assert_eq!((status, &used["voucher"]["status"]), (200, &json!("used")));
    let (status, again) = app
        .post(
            &format!("/v1/vouchers/{code}/use"),
            json!({"id": "RW-3", "store": "HN01"}),
        )
        .await;
    assert_eq!(
        (status, again["code"].as_str()),
        (422, Some("voucher_not_usable"))
    );
    let (_, second) = app
        .post(
            "/v1/redemptions",
            json!({"id": "RW-4", "member": {"phone": "0912000002"}, "reward_id": reward_id}),
        )
        .await;
    let code = second["voucher"]["code"].as_str().unwrap().to_owned();
    let (status, cancelled) = app
        .post(
            &format!("/v1/vouchers/{code}/cancel"),
            json!({"id": "RW-5"}),
        )
        .await;
    assert_eq!((status, &cancelled["balance"]), (200, &json!(60)));
    let (status, poor) = app
        .post(
            "/v1/redemptions",
            json!({"id": "RW-6", "member": {"phone": "0912000003"}, "reward_id": reward_id}),
        )
        .await;
    assert_eq!(
        (status, poor["code"].as_str()),
        (404, Some("member_not_found"))
    );
}

async fn keys_scopes_and_tenants(app: TestApp) {
    let (_, bought) = app
        .post("/v1/events", purchase("K-1", "0912000004", 100_000))
        .await;
    let member_id = bought["member_id"].as_str().unwrap().to_owned();
    let unauthenticated = app
        .client
        .get(format!("{}/v1/rewards", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status().as_u16(), 401);
    let wrong = app
        .client
        .get(format!("{}/v1/rewards", app.address))
        .bearer_auth("pk_nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let tenant = app
        .store
        .create_tenant(&NewTenant::vietnamese("Other"))
        .await
        .unwrap();
    let other_key = app
        .store
        .create_api_key(tenant, "other", KeyScope::Write)
        .await
        .unwrap();
    let other = TestApp {
        address: app.address.clone(),
        key: other_key,
        store: app.store.clone(),
        client: app.client.clone(),
    };
    let (status, _) = other.get(&format!("/v1/members/{member_id}")).await;
    assert_eq!(status, 404);
    let (status, _) = other.get("/v1/members/by-phone/0912000004").await;
    assert_eq!(status, 404);
    let (status, _) = other.get(&format!("/v1/members/{member_id}/history")).await;
    assert_eq!(status, 404);
    let reader_key = app
        .store
        .create_api_key(tenant, "reader", KeyScope::Read)
        .await
        .unwrap();
    let reader = TestApp {
        key: reader_key,
        ..other
    };
    let (status, answer) = reader
        .post("/v1/events", purchase("K-2", "0912000004", 100_000))
        .await;
    assert_eq!((status, answer["code"].as_str()), (403, Some("forbidden")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_past_its_rate_limit_gets_429_with_retry_after() {
    let store = fresh_store(false).await;
    let (tenant, key) = tenant_with_key(&store, "Busy", KeyScope::Read).await;
    let other = store
        .create_api_key(tenant, "other till", KeyScope::Read)
        .await
        .unwrap();
    let limit = patron_server::RateLimit {
        requests_per_second: 1,
        burst: 3,
    };
    let address = serve(store, limit).await;
    let client = reqwest::Client::new();
    for _ in 0..3 {
        let response = client
            .get(format!("{address}/v1/rewards"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
    }
    let response = client
        .get(format!("{address}/v1/rewards"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 429);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "rate_limited");
    let response = client
        .get(format!("{address}/v1/rewards"))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status().as_u16(),
        200,
        "each key has its own allowance"
    );
}

async fn health_readiness_and_metrics(app: TestApp) {
    app.post("/v1/events", purchase("MX-1", "0912000010", 100_000))
        .await;
    app.post("/v1/events", json!({"id": "MX-2", "type": "purchase", "member": {"phone": "0912000010"}, "amount": 1, "points_paid": 9})).await;
    for path in ["/healthz", "/readyz"] {
        let response = app
            .client
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
    }
    let text = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("patron_events_total{outcome=\"accepted\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("patron_events_total{outcome=\"rejected\"} 1"),
        "{text}"
    );
    assert!(
        text.contains(
            "patron_http_request_duration_seconds_count{method=\"POST\",route=\"/v1/events\"} 2"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "patron_http_responses_total{method=\"POST\",route=\"/v1/events\",status=\"422\"} 1"
        ),
        "{text}"
    );
    assert!(text.contains("patron_journal_batch_size_count 2"), "{text}");
}

async fn programme_errors_point_at_the_rule(app: TestApp) {
    let mut definition = programme();
    definition["rules"][0]["when"] = json!("evnt.type == 'x'");
    let (status, answer) = app
        .post("/v1/programme/versions", json!({"definition": definition}))
        .await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["field"], "definition.rules[0].when");
}

on_both_backends! {
    enrolment_keeps_the_profile;
    purchase_member_and_history;
    errors_name_the_field;
    batches_answer_each_event;
    rewards_redeem_use_cancel;
    keys_scopes_and_tenants;
    programme_errors_point_at_the_rule;
    health_readiness_and_metrics;
}
