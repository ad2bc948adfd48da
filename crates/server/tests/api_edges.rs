//! The API's edges over HTTP on both backends: who may take the personal-data exports and the
//! audit entry each leaves, spreadsheet formulas defused in them, the history's cursor over
//! entries that share one instant, profile edits while events load (SQLite's write lock),
//! bodies and batches past their limits, and the OpenAPI document's parameters.

mod common;

use common::*;
use patron_server::{ServerOptions, BATCH_EVENTS_MAX, BODY_BYTES_MAX};
use serde_json::{json, Value};
use std::collections::HashSet;

/// The status and body text of a GET (CSV answers are not JSON).
async fn get_text(client: &Client, path: &str) -> (u16, String) {
    let mut request = client.http.get(format!("{}{path}", client.address));
    match &client.auth {
        Auth::Key(key) => request = request.bearer_auth(key),
        Auth::Session { cookie, .. } => request = request.header("cookie", cookie),
        Auth::None => {}
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn audit_entries(admin: &Client, action: &str) -> Vec<Value> {
    let (status, body) = admin.get("/v1/audit?limit=200").await;
    assert_eq!(status, 200, "{body}");
    body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["action"] == action)
        .cloned()
        .collect()
}

async fn enrol(client: &Client, id: &str, phone: &str, name: &str) {
    let body =
        json!({"id": id, "type": "enrol", "member": {"phone": phone}, "profile": {"name": name}});
    let (status, answer) = client.post("/v1/events", body).await;
    assert_eq!(status, 200, "{answer}");
}

async fn personal_data_exports_are_for_owners_and_managers(postgres: bool) {
    let cafe = cafe(postgres, ServerOptions::default()).await;
    let admin = &cafe.admin;
    enrol(admin, "EN-1", "0912000001", "Trần Thị An").await;
    let refused = [
        ("read key", api_key(admin, "read", None).await.0),
        ("write key", api_key(admin, "write", None).await.0),
        (
            "viewer",
            signed_in_staff(admin, "viewer@example.com", "viewer")
                .await
                .0,
        ),
        (
            "cashier",
            signed_in_staff(admin, "cashier@example.com", "cashier")
                .await
                .0,
        ),
        (
            "marketer",
            signed_in_staff(admin, "marketer@example.com", "marketer")
                .await
                .0,
        ),
    ];
    for (who, client) in &refused {
        for path in ["/v1/exports/members.csv", "/v1/exports/ledger.csv"] {
            let (status, body) = client.get(path).await;
            assert_eq!(status, 403, "{who} {path}: {body}");
            assert_eq!(body["code"], "forbidden", "{who} {path}");
        }
        let (status, _) = get_text(client, "/v1/exports/liability.csv").await;
        assert_eq!(
            status, 200,
            "{who}: the liability table holds no one's data"
        );
    }
    assert!(audit_entries(admin, "export.members").await.is_empty());

    let (status, members) = get_text(admin, "/v1/exports/members.csv").await;
    assert_eq!(status, 200, "{members}");
    assert!(members.contains("Trần Thị An"));
    let manager = signed_in_staff(admin, "manager@example.com", "manager")
        .await
        .0;
    let (status, ledger) = get_text(&manager, "/v1/exports/ledger.csv").await;
    assert_eq!(status, 200, "{ledger}");

    let (_, member) = admin.get("/v1/members/by-phone/0912000001").await;
    let id = member["id"].as_str().unwrap();
    let (status, _) = admin.get(&format!("/v1/members/{id}/export")).await;
    assert_eq!(status, 200);
    let taken = audit_entries(admin, "member.export").await;
    assert_eq!(taken.len(), 1, "{taken:?}");
    assert_eq!(taken[0]["subject"], format!("member:{id}"));

    let taken = audit_entries(admin, "export.members").await;
    assert_eq!(taken.len(), 1, "{taken:?}");
    assert!(taken[0]["actor"].as_str().unwrap().starts_with("key:"));
    assert!(taken[0]["at"].is_string());
    let taken = audit_entries(admin, "export.ledger").await;
    assert_eq!(taken.len(), 1, "{taken:?}");
    assert!(taken[0]["actor"].as_str().unwrap().starts_with("user:"));
}

/// Names are trimmed when stored, so the tab- and return-led cases of the one defusing rule are
/// proved by its unit test (`patron_store::exports`).
async fn exported_text_never_runs_as_a_formula(postgres: bool) {
    let cafe = cafe(postgres, ServerOptions::default()).await;
    let admin = &cafe.admin;
    let names = [
        ("=HYPERLINK(\"http://evil.example\",\"Bấm\")", true),
        ("+1+cmd|' /C calc'!A0", true),
        ("-2+3", true),
        ("@SUM(1+1)*cmd", true),
        ("Lê Văn Bình", false),
    ];
    for (index, (name, _)) in names.iter().enumerate() {
        enrol(
            admin,
            &format!("EN-{index}"),
            &format!("091200000{index}"),
            name,
        )
        .await;
    }
    let (status, text) = get_text(admin, "/v1/exports/members.csv").await;
    assert_eq!(status, 200, "{text}");
    let exported: Vec<String> = csv::Reader::from_reader(text.as_bytes())
        .records()
        .map(|record| record.unwrap()[2].to_owned())
        .collect();
    for (name, formula_like) in names {
        let expected = if formula_like {
            format!("'{name}")
        } else {
            name.to_owned()
        };
        assert!(
            exported.contains(&expected),
            "{name:?} is exported as {expected:?}: {exported:?}"
        );
    }
    let (_, ledger) = get_text(admin, "/v1/exports/ledger.csv").await;
    assert!(!ledger.lines().any(|line| line.starts_with(['=', '+', '@'])));
}

/// `count` purchases of one member, all at one instant.
fn same_instant_purchases(count: usize) -> Value {
    let events: Vec<Value> = (0..count)
        .map(|index| purchase(&format!("R-{index:04}"), "0912345678", 10_000))
        .collect();
    json!({ "events": events })
}

async fn history_pages_out_every_entry_of_one_instant(postgres: bool) {
    const ENTRIES: usize = 801;
    let cafe = cafe(postgres, ServerOptions::default()).await;
    let admin = &cafe.admin;
    let (status, answer) = admin
        .post("/v1/events/batch", same_instant_purchases(ENTRIES))
        .await;
    assert_eq!(status, 200, "{answer}");
    let (_, member) = admin.get("/v1/members/by-phone/0912345678").await;
    let id = member["id"].as_str().unwrap().to_owned();

    for limit in [200, 50, 7] {
        let mut seen = HashSet::new();
        let mut path = format!("/v1/members/{id}/history?limit={limit}");
        let mut pages = 0;
        loop {
            let (status, page) = admin.get(&path).await;
            assert_eq!(status, 200, "{page}");
            pages += 1;
            for entry in page["entries"].as_array().unwrap() {
                let fresh = seen.insert(entry["transaction_id"].as_str().unwrap().to_owned());
                assert!(fresh, "an entry came twice: {entry}");
            }
            match page["next_cursor"].as_str() {
                Some(cursor) => {
                    path = format!("/v1/members/{id}/history?limit={limit}&cursor={cursor}")
                }
                None => break,
            }
        }
        assert_eq!(seen.len(), ENTRIES, "limit {limit}");
        assert_eq!(pages, ENTRIES.div_ceil(limit) as i32, "limit {limit}");
    }

    // `before` keeps its meaning: the entries strictly older than an instant.
    let before = "2026-01-10T09:00:01%2B07:00";
    let (_, page) = admin
        .get(&format!(
            "/v1/members/{id}/history?limit=200&before={before}"
        ))
        .await;
    assert_eq!(page["entries"].as_array().unwrap().len(), 200);
    let at = "2026-01-10T09:00:00%2B07:00";
    let (_, page) = admin
        .get(&format!("/v1/members/{id}/history?before={at}"))
        .await;
    assert_eq!(page["entries"].as_array().unwrap().len(), 0);
    for bad in [
        "cursor=nonsense",
        "cursor=12_a%27b",
        "cursor=1_x&before=2026-01-10T09:00:00Z",
    ] {
        let (status, body) = admin.get(&format!("/v1/members/{id}/history?{bad}")).await;
        assert_eq!(
            (status, body["field"].as_str()),
            (422, Some("cursor")),
            "{bad}"
        );
    }
}

async fn bodies_and_batches_past_their_limits_answer_413_in_json(postgres: bool) {
    let cafe = cafe(postgres, ServerOptions::default()).await;
    let admin = &cafe.admin;
    let send_raw = |body: String| {
        let Auth::Key(key) = admin.auth.clone() else {
            unreachable!()
        };
        admin
            .http
            .post(format!("{}/v1/events", admin.address))
            .bearer_auth(key)
            .header("content-type", "application/json")
            .body(body)
    };
    // A purchase padded with spaces to exactly the limit is read; one byte more is not.
    let event = purchase("BIG-1", "0912000009", 10_000).to_string();
    let padded = format!("{event}{}", " ".repeat(BODY_BYTES_MAX - event.len()));
    let response = send_raw(padded.clone()).send().await.unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let response = send_raw(format!("{padded} ")).send().await.unwrap();
    assert_eq!(response.status(), 413);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "payload_too_large", "{body}");
    assert!(body["message"].as_str().unwrap().contains("1048576"));

    let (status, answer) = admin
        .post("/v1/events/batch", same_instant_purchases(BATCH_EVENTS_MAX))
        .await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = admin
        .post(
            "/v1/events/batch",
            same_instant_purchases(BATCH_EVENTS_MAX + 1),
        )
        .await;
    assert_eq!(status, 413, "{answer}");
    assert_eq!(
        (answer["code"].as_str(), answer["field"].as_str()),
        (Some("payload_too_large"), Some("events"))
    );
    let (status, answer) = admin.post("/v1/events/batch", json!({"events": []})).await;
    assert_eq!((status, answer["field"].as_str()), (422, Some("events")));
}

async fn openapi_puts_each_parameter_where_it_is_read(postgres: bool) {
    let cafe = cafe(postgres, ServerOptions::default()).await;
    let (status, document) = cafe.admin.get("/openapi.json").await;
    assert_eq!(status, 200);
    let mut checked = 0;
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                let name = parameter["name"].as_str().unwrap();
                let in_path = path.contains(&format!("{{{name}}}"));
                let expected = if in_path { "path" } else { "query" };
                assert_eq!(parameter["in"], expected, "{method} {path} {name}");
                checked += 1;
            }
        }
    }
    assert!(checked > 10, "{checked} parameters");
    let history = &document["paths"]["/v1/members/{id}/history"]["get"]["parameters"];
    let placed: Vec<(&str, &str)> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|parameter| {
            (
                parameter["name"].as_str().unwrap(),
                parameter["in"].as_str().unwrap(),
            )
        })
        .collect();
    for expected in [
        ("id", "path"),
        ("limit", "query"),
        ("cursor", "query"),
        ("before", "query"),
    ] {
        assert!(placed.contains(&expected), "{expected:?} in {placed:?}");
    }
}

/// Store credit through the API: an adjustment of `money` moves the member's money, not their
/// points, and answers the new holding; other assets are refused naming the field.
async fn store_credit_is_adjusted_beside_points(postgres: bool) {
    let cafe = cafe(postgres, ServerOptions::default()).await;
    let admin = &cafe.admin;
    enrol(admin, "EN-1", "0912000001", "Trần Thị An").await;
    let adjust = |id: &str, asset: &str, points: i64| {
        json!({"id": id, "type": "adjustment", "member": {"phone": "0912000001"},
               "asset": asset, "points": points, "reason": "gift"})
    };
    let (status, body) = admin
        .post("/v1/events", adjust("C-1", "money", 200_000))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["holdings"]["money"], 200_000);
    assert_eq!(body["points_earned"], 0);
    let (status, body) = admin
        .post("/v1/events", adjust("C-2", "money", -250_000))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("adjustment_below_zero")),
        "{body}"
    );
    let (status, body) = admin
        .post("/v1/events", adjust("C-3", "stamps:coffee", 1))
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (422, Some("asset")),
        "{body}"
    );
    let (_, member) = admin.get("/v1/members/by-phone/0912000001").await;
    assert_eq!(member["balance"], 0, "points untouched");
    // The ledger export names each entry's asset.
    let (status, ledger) = get_text(admin, "/v1/exports/ledger.csv").await;
    assert_eq!(status, 200, "{ledger}");
    let mut lines = ledger.trim_start_matches('\u{feff}').lines();
    assert!(
        lines.next().unwrap().ends_with(",amount,occurred_at,asset"),
        "{ledger}"
    );
    let credit: Vec<&str> = lines
        .filter(|line| line.contains(",member,") && line.ends_with(",money"))
        .collect();
    assert_eq!(credit.len(), 1, "{ledger}");
    assert!(credit[0].contains(",200000,"), "{ledger}");
}

on_both_backends! {
    store_credit_is_adjusted_beside_points;
    personal_data_exports_are_for_owners_and_managers;
    exported_text_never_runs_as_a_formula;
    history_pages_out_every_entry_of_one_instant;
    bodies_and_batches_past_their_limits_answer_413_in_json;
    openapi_puts_each_parameter_where_it_is_read;
}

/// Profile edits while a bulk load keeps the journal committing: on SQLite a plain `BEGIN`
/// that read the member and then wrote failed at once with "database is locked" (a 500).
async fn profile_edits_during_a_bulk_load_all_succeed(postgres: bool) {
    const EDITS: usize = 30;
    let cafe = cafe(postgres, ServerOptions::default()).await;
    let admin = cafe.admin.clone();
    enrol(&admin, "EN-1", "0912000001", "Trần Thị An").await;
    let (_, member) = admin.get("/v1/members/by-phone/0912000001").await;
    let id = member["id"].as_str().unwrap().to_owned();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let loader = {
        let admin = admin.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut batch = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let events: Vec<Value> = (0..200)
                    .map(|index| {
                        purchase(
                            &format!("L-{batch}-{index}"),
                            &format!("09{:08}", batch * 200 + index + 100),
                            50_000,
                        )
                    })
                    .collect();
                let (status, answer) = admin
                    .post("/v1/events/batch", json!({ "events": events }))
                    .await;
                assert_eq!(status, 200, "{answer}");
                batch += 1;
            }
            batch
        })
    };
    let mut statuses = Vec::new();
    for edit in 0..EDITS {
        let (status, answer) = admin
            .patch(
                &format!("/v1/members/{id}"),
                json!({"profile": {"city": format!("Huế {edit}")}}),
            )
            .await;
        statuses.push((status, answer));
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let batches = loader.await.unwrap();
    assert!(batches > 0);
    let failed: Vec<_> = statuses
        .iter()
        .filter(|(status, _)| *status != 200)
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {EDITS} failed: {failed:?}",
        failed.len()
    );
    let (_, member) = admin.get(&format!("/v1/members/{id}")).await;
    assert_eq!(member["city"], format!("Huế {}", EDITS - 1));
}

on_both_backends! {
    profile_edits_during_a_bulk_load_all_succeed;
}
