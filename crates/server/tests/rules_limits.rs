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
    let (status, body) = admin
        .post(
            "/v1/programme/dry-run",
            json!({"programme": "given", "definition": attack, "purchase": sale()}),
        )
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (422, Some("definition.rules[0].when")),
        "{body}"
    );
    let (status, body) = admin
        .post("/v1/programme/versions", json!({"definition": attack}))
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (422, Some("definition.rules[0].when")),
        "{body}"
    );
    let (status, body) = admin
        .put("/v1/programme/draft", json!({"definition": attack}))
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (422, Some("definition.rules[0].when")),
        "{body}"
    );
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

on_both_backends! {
    dry_run_needs_the_programme_permission;
    nested_exists_is_refused_everywhere;
}
