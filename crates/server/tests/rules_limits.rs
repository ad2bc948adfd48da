//! Limits on what a programme's rules may cost and give, and on the sums the ledger keeps
//! (issue 10: nested `exists` stalling every tenant; a huge rule result or many huge purchases
//! wrapping balances and totals).

mod common;

use common::*;
use patron_server::ServerOptions;
use patron_store::admin::KeyScope;
use serde_json::{json, Value};

/// `exists` nested `depth` deep over the purchase's categories: the attack at 8.
fn nested_exists(depth: usize) -> String {
    let mut source = "c0 == 'x'".to_owned();
    for level in (0..depth).rev() {
        source = format!("event.categories.exists(c{level}, {source})");
    }
    source
}

fn with_rule(when: &str, points: &str) -> Value {
    let mut definition = programme();
    definition["rules"][0]["when"] = json!(when);
    definition["rules"][0]["points"] = json!(points);
    definition
}

fn sale() -> Value {
    let items: Vec<Value> = (0..500)
        .map(|index| json!({"category": format!("category {index}"), "amount": 1_000}))
        .collect();
    json!({"member": {"phone": "0916000001"}, "store": "HN01", "amount": 500_000,
           "items": items})
}

async fn dry_run_needs_the_programme_permission(postgres: bool) {
    let cafe = cafe(postgres, ServerOptions::default()).await;
    let key = cafe
        .store
        .create_api_key(cafe.tenant, "reader", KeyScope::Read)
        .await
        .unwrap();
    let reader = cafe.admin.with(Auth::Key(key));
    let (status, body) = reader
        .post(
            "/v1/programme/dry-run",
            json!({"programme": "current", "purchase": sale()}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = cafe
        .admin
        .post(
            "/v1/programme/dry-run",
            json!({"programme": "current", "purchase": sale()}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

async fn nested_exists_is_refused_everywhere(postgres: bool) {
    let cafe = cafe(postgres, ServerOptions::default()).await;
    let admin = &cafe.admin;
    let attack = with_rule(&nested_exists(8), "1");
    // Refused at the dry run, at publish and at the draft's save.
    for (method, path, body) in [
        (
            "POST",
            "/v1/programme/dry-run",
            json!({"programme": "given", "definition": attack, "purchase": sale()}),
        ),
        (
            "POST",
            "/v1/programme/versions",
            json!({"definition": attack}),
        ),
        ("PUT", "/v1/programme/draft", json!({"definition": attack})),
    ] {
        let (status, body) = admin.send(method, path, Some(body)).await;
        assert_eq!(
            (status, body["field"].as_str()),
            (422, Some("definition.rules[0].when")),
            "{path}: {body}"
        );
    }
    // Nesting within the limit but over the purchase's lines is refused by its cost; in the
    // points expression too.
    let costly = with_rule("true", &format!("{} ? 1 : 0", nested_exists(2)));
    let (status, body) = admin
        .put("/v1/programme/draft", json!({"definition": costly}))
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (422, Some("definition.rules[0].points")),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("too long"),
        "{body}"
    );

    // One comprehension over the lines, the kind a real rule uses, is accepted and runs.
    let fine = with_rule(
        "event.categories.exists(c, c == 'category 7')",
        "event.item_count",
    );
    let (status, body) = admin
        .post(
            "/v1/programme/dry-run",
            json!({"programme": "given", "definition": fine, "purchase": sale()}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["points_earned"], 50 + 500, "{body}");
}

async fn a_huge_rule_result_is_capped_not_wrapped(postgres: bool) {
    let cafe = cafe(postgres, ServerOptions::default()).await;
    let definition = with_rule("true", "6000000000000000000");
    let (status, body) = cafe
        .admin
        .post(
            "/v1/programme/versions",
            json!({"definition": definition, "effective_from": "2025-01-01T00:00:00+07:00"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let mut balance = 0;
    for id in ["HUGE-1", "HUGE-2"] {
        let (status, body) = cafe
            .admin
            .post("/v1/events", purchase(id, "0916000002", 10_000))
            .await;
        assert_eq!(status, 200, "{body}");
        balance = body["balance"].as_i64().unwrap();
    }
    // 1 base point per 10,000đ, and the rule's result capped at RULE_POINTS_MAX, twice.
    let expected = 2 * (1 + patron_core::rules::RULE_POINTS_MAX);
    assert_eq!(balance, expected);
    let (status, member) = cafe.admin.get("/v1/members/by-phone/0916000002").await;
    assert_eq!(status, 200, "{member}");
    assert_eq!(member["balance"], expected, "{member}");
    assert!(cafe.store.check_ledger().await.unwrap().is_sound());
}

async fn ten_thousand_purchases_at_the_largest_amount(postgres: bool) {
    let cafe = cafe(postgres, ServerOptions::default()).await;
    let amount_max = patron_server::AMOUNT_MAX;
    // The tenant first raises its own largest purchase (1,000,000,000đ by default) to the API's.
    let (status, body) = cafe
        .admin
        .put(
            "/v1/settings/purchase-limits",
            json!({"maximum": amount_max, "confirm": amount_max}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for batch in 0..10 {
        let events: Vec<Value> = (0..patron_server::BATCH_EVENTS_MAX)
            .map(|index| purchase(&format!("MAX-{batch}-{index}"), "0916000003", amount_max))
            .collect();
        let (status, answer) = cafe
            .admin
            .post("/v1/events/batch", json!({"events": events}))
            .await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["rejected"], 0, "{answer}");
    }
    let (status, member) = cafe.admin.get("/v1/members/by-phone/0916000003").await;
    assert_eq!(status, 200, "{member}");
    assert_eq!(
        member["balance"],
        patron_core::member::BALANCE_MAX.0,
        "{member}"
    );
    let id = member["id"].as_str().unwrap().to_owned();
    let (status, member) = cafe.admin.get(&format!("/v1/members/{id}")).await;
    assert_eq!(status, 200, "{member}");
    let (status, history) = cafe.admin.get(&format!("/v1/members/{id}/history")).await;
    assert_eq!(status, 200, "{history}");
    // What the dashboard (/admin) reads: revenue is 10^19, past i64, and is held at its top;
    // the kept figures' halves add up to what the scan says.
    let query = patron_store::stats::StatsQuery {
        tenant_id: cafe.tenant,
        from: "2026-01-01T00:00:00+07:00".parse().unwrap(),
        until: "2026-02-01T00:00:00+07:00".parse().unwrap(),
        store: None,
    };
    let overview = cafe.store.overview(&query).await.unwrap();
    assert_eq!(overview.purchases, 10_000);
    assert_eq!(overview.revenue, i64::MAX);
    assert_eq!(overview, cafe.store.overview_scanned(&query).await.unwrap());
    let boundaries = [
        query.from,
        "2026-01-15T00:00:00+07:00".parse().unwrap(),
        query.until,
    ];
    let series = cafe.store.series(&query, &boundaries).await.unwrap();
    assert_eq!(series[0].revenue, i64::MAX);
    let tiers = cafe.store.spend_by_tier(&query).await.unwrap();
    assert!(tiers.iter().any(|tier| tier.revenue == i64::MAX));
    assert!(cafe.store.check_ledger().await.unwrap().is_sound());
}

on_both_backends! {
    dry_run_needs_the_programme_permission;
    nested_exists_is_refused_everywhere;
    a_huge_rule_result_is_capped_not_wrapped;
    ten_thousand_purchases_at_the_largest_amount;
}
