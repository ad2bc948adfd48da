//! The integration surface over HTTP on both backends: keys and their scopes, staff users and
//! sessions with CSRF, the audit log, members (search, cursor, update, merge, adjust, export,
//! erase), programme drafts and dry runs, tenants, and isolation between tenants.

mod common;

use common::*;
use patron_server::ServerOptions;
use patron_store::admin::KeyScope;
use serde_json::{json, Value};

async fn audit_actions(admin: &Client) -> Vec<(String, String)> {
    let (status, body) = admin.get("/v1/audit?limit=200").await;
    assert_eq!(status, 200, "{body}");
    body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            (
                entry["action"].as_str().unwrap().to_owned(),
                entry["actor"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn keys_scopes_revocation_and_store_keys(postgres: bool) {
    let cafe = cafe(postgres, ServerOptions::default()).await;
    let admin = &cafe.admin;
    let reader = api_key(admin, "read", None).await.0;
    let writer = api_key(admin, "write", None).await.0;
    let till = api_key(admin, "write", Some("HN01")).await.0;

    // A read key reads but cannot write; a write key records but cannot administer.
    let (status, _) = reader
        .post("/v1/events", purchase("r1", "0912000001", 50_000))
        .await;
    assert_eq!(status, 403);
    let (status, _) = writer
        .post("/v1/events", purchase("w1", "0912000001", 50_000))
        .await;
    assert_eq!(status, 200);
    let (status, _) = reader.get("/v1/members/by-phone/0912000001").await;
    assert_eq!(status, 200);
    let (status, body) = writer.get("/v1/api-keys").await;
    assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")));
    let (status, _) = writer
        .post("/v1/api-keys", json!({"name": "x", "scope": "admin"}))
        .await;
    assert_eq!(status, 403);

    // A till's key records its own store's sales only, and no adjustments.
    let mut other_store = purchase("t1", "0912000002", 50_000);
    other_store["store"] = json!("HCM01");
    let (status, body) = till.post("/v1/events", other_store).await;
    assert_eq!((status, body["field"].as_str()), (403, Some("store")));
    let (status, _) = till
        .post("/v1/events", purchase("t2", "0912000002", 50_000))
        .await;
    assert_eq!(status, 200);

    // Listing shows names, scopes, stores and last use, never secrets.
    let (status, keys) = admin.get("/v1/api-keys").await;
    assert_eq!(status, 200);
    let keys = keys.as_array().unwrap().clone();
    assert_eq!(keys.len(), 4);
    assert!(keys.iter().all(|key| key.get("secret").is_none()));
    let till_view = keys.iter().find(|key| key["store"] == "HN01").unwrap();
    assert!(till_view["last_used_at"].is_string());
    let reader_view = keys.iter().find(|key| key["scope"] == "read").unwrap();

    // Revocation takes effect at once, even with the key cached.
    let path = format!("/v1/api-keys/{}", reader_view["id"].as_str().unwrap());
    let (status, _) = admin.delete(&path).await;
    assert_eq!(status, 204);
    let (status, _) = reader.get("/v1/members/by-phone/0912000001").await;
    assert_eq!(status, 401);
    let (status, _) = admin.delete(&path).await;
    assert_eq!(status, 404);

    // Bad requests name the field.
    let (status, body) = admin
        .post("/v1/api-keys", json!({"name": "x", "scope": "everything"}))
        .await;
    assert_eq!((status, body["field"].as_str()), (422, Some("scope")));
    let (status, body) = admin
        .post(
            "/v1/api-keys",
            json!({"name": "x", "scope": "read", "store": "NOPE"}),
        )
        .await;
    assert_eq!((status, body["field"].as_str()), (422, Some("store")));
    let actions = audit_actions(admin).await;
    assert_eq!(
        actions
            .iter()
            .filter(|(action, actor)| action == "api_key.create" && actor.starts_with("key:"))
            .count(),
        3
    );
    assert!(actions.iter().any(|(action, _)| action == "api_key.revoke"));
}

async fn staff_roles_sessions_and_csrf(postgres: bool) {
    let cafe = cafe(postgres, ServerOptions::default()).await;
    let admin = &cafe.admin;
    let cashier = signed_in_staff(admin, "thu.ngan@cafe.vn", "cashier")
        .await
        .0;
    let marketer = signed_in_staff(admin, "marketing@cafe.vn", "marketer")
        .await
        .0;
    let owner = signed_in_staff(admin, "chu@cafe.vn", "owner").await.0;

    let (status, me) = cashier.get("/v1/session").await;
    assert_eq!((status, me["role"].as_str()), (200, Some("cashier")));
    // A cashier records a sale but may not touch the programme, adjust points or see keys.
    let (status, _) = cashier
        .post("/v1/events", purchase("c1", "0913000001", 120_000))
        .await;
    assert_eq!(status, 200);
    let (status, _) = cashier
        .put("/v1/programme/draft", json!({"definition": programme()}))
        .await;
    assert_eq!(status, 403);
    let (_, member) = cashier.get("/v1/members/by-phone/0913000001").await;
    let id = member["id"].as_str().unwrap();
    let (status, _) = cashier
        .post(
            &format!("/v1/members/{id}/adjustments"),
            json!({"id": "adj-c", "points": 5, "reason": "because"}),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = cashier.get("/v1/api-keys").await;
    assert_eq!(status, 403);
    // A marketer edits the catalogue but records no sales.
    let (status, _) = marketer
        .post("/v1/rewards", json!({"name": "Bánh", "cost": 10}))
        .await;
    assert_eq!(status, 201);
    let (status, _) = marketer
        .post("/v1/events", purchase("m1", "0913000002", 120_000))
        .await;
    assert_eq!(status, 403);

    // Changes with a session need its CSRF token.
    let Auth::Session { cookie, .. } = cashier.auth.clone() else {
        unreachable!()
    };
    let forged = cashier.with(Auth::Session {
        cookie: cookie.clone(),
        csrf: None,
    });
    let (status, body) = forged
        .post("/v1/events", purchase("c2", "0913000001", 10_000))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("csrf_token_invalid"))
    );
    let wrong = cashier.with(Auth::Session {
        cookie: cookie.clone(),
        csrf: Some("nope".into()),
    });
    let (status, _) = wrong
        .post("/v1/events", purchase("c2", "0913000001", 10_000))
        .await;
    assert_eq!(status, 403);
    let (status, _) = forged.get("/v1/members/by-phone/0913000001").await;
    assert_eq!(status, 200, "reads need no CSRF token");

    // Wrong passwords, short passwords and duplicate e-mails are refused.
    let (status, _) = admin
        .post(
            "/v1/session",
            json!({"email": "chu@cafe.vn", "password": "wrong password!"}),
        )
        .await;
    assert_eq!(status, 401);
    let (status, body) = admin
        .post(
            "/v1/users",
            json!({"email": "a@b.vn", "name": "A", "role": "cashier", "password": "short"}),
        )
        .await;
    assert_eq!((status, body["field"].as_str()), (422, Some("password")));
    let (status, _) = admin
        .post("/v1/users", json!({"email": "CHU@cafe.vn", "name": "A", "role": "viewer", "password": "long enough password"}))
        .await;
    assert_eq!(status, 409);

    // An owner's session administers; disabling the cashier ends their session.
    let (status, users) = owner.get("/v1/users").await;
    assert_eq!(status, 200);
    let cashier_id = users
        .as_array()
        .unwrap()
        .iter()
        .find(|user| user["role"] == "cashier")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = owner
        .patch(
            &format!("/v1/users/{cashier_id}"),
            json!({"disabled": true}),
        )
        .await;
    assert_eq!((status, body["disabled"].as_bool()), (200, Some(true)));
    let (status, _) = cashier.get("/v1/session").await;
    assert_eq!(status, 401);
    // Signing out ends the owner's session.
    let (status, _) = owner.delete("/v1/session").await;
    assert_eq!(status, 204);
    let (status, _) = owner.get("/v1/users").await;
    assert_eq!(status, 401);
    let actions = audit_actions(admin).await;
    assert!(actions.contains(&(
        "user.update".to_owned(),
        actions
            .iter()
            .find(|(a, _)| a == "user.update")
            .unwrap()
            .1
            .clone()
    )));
    assert!(actions
        .iter()
        .any(|(action, actor)| action == "user.update" && actor.starts_with("user:")));
}

async fn members_search_update_and_adjust(postgres: bool) {
    let cafe = cafe(postgres, ServerOptions::default()).await;
    let admin = &cafe.admin;
    for index in 0..7 {
        let (status, body) = admin
            .post(
                "/v1/members",
                json!({"phone": format!("09140000{index:02}"),
                       "profile": {"name": format!("Nguyễn Văn {index}"), "email": format!("khach{index}@mail.vn")}}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["member_created"], true);
    }
    // Enrolling a known phone again answers with the existing member.
    let (status, again) = admin
        .post("/v1/members", json!({"phone": "+84914000000"}))
        .await;
    assert_eq!(
        (status, again["member_created"].as_bool()),
        (200, Some(false))
    );
    let (status, body) = admin.post("/v1/members", json!({"phone": "12345"})).await;
    assert_eq!((status, body["field"].as_str()), (422, Some("phone")));
    // The profile is checked field by field before anything is recorded.
    let (status, body) = admin
        .post(
            "/v1/members",
            json!({"phone": "0914999999", "profile": {"birthday": "31/12/1990"}}),
        )
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (422, Some("profile.birthday")),
        "{body}"
    );
    let (status, _) = admin.get("/v1/members/by-phone/0914999999").await;
    assert_eq!(status, 404, "nothing was enrolled");

    // Cursor pagination covers every member once.
    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let (status, page) = admin
            .get(&format!("/v1/members?limit=3&after={after}"))
            .await;
        assert_eq!(status, 200, "{page}");
        for member in page["members"].as_array().unwrap() {
            seen.push(member["id"].as_str().unwrap().to_owned());
        }
        match page["next_after"].as_str() {
            Some(next) => after = next.to_owned(),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (7, 7));

    // Search by phone (any spelling), name part, e-mail part.
    let (_, found) = admin.get("/v1/members?q=%2B84914000003").await;
    assert_eq!(found["members"].as_array().unwrap().len(), 1);
    let (_, found) = admin.get("/v1/members?q=khach5%40").await;
    assert_eq!(found["members"][0]["email"], "khach5@mail.vn");
    let (_, found) = admin.get("/v1/members?q=V%C4%83n").await;
    assert_eq!(found["members"].as_array().unwrap().len(), 7);
    let (_, found) = admin.get("/v1/members?q=100%25").await;
    assert_eq!(
        found["members"].as_array().unwrap().len(),
        0,
        "% is literal"
    );
    let (status, body) = admin.get("/v1/members?limit=201").await;
    assert_eq!((status, body["field"].as_str()), (422, Some("limit")));
    let (status, body) = admin
        .get(&format!("/v1/members?q={}", "x".repeat(101)))
        .await;
    assert_eq!((status, body["field"].as_str()), (422, Some("q")));

    // Update: fields given are set, null clears, others stay; audited with before and after.
    let id = seen[0].clone();
    let (status, member) = admin
        .patch(
            &format!("/v1/members/{id}"),
            json!({"profile": {"name": "Trần Thị Bình", "email": null, "city": "Hà Nội"}}),
        )
        .await;
    assert_eq!(status, 200, "{member}");
    assert_eq!(member["name"], "Trần Thị Bình");
    assert_eq!(member["email"], Value::Null);
    assert_eq!(member["city"], "Hà Nội");
    assert_eq!(member["phone"], "+84914000000");
    let (status, body) = admin
        .patch(&format!("/v1/members/{id}"), json!({"phone": "0914000001"}))
        .await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = admin
        .patch(
            &format!("/v1/members/{id}"),
            json!({"profile": {"birthday": "31/12/1990"}}),
        )
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (422, Some("profile.birthday"))
    );
    let (status, body) = admin
        .patch(&format!("/v1/members/{id}"), json!({"nickname": "x"}))
        .await;
    assert_eq!(status, 422, "{body}");
    let (_, log) = admin.get("/v1/audit").await;
    let update = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| {
            entry["action"] == "member.update" && entry["after"]["name"] == "Trần Thị Bình"
        })
        .expect("update audited");
    assert_eq!(update["before"]["name"], "Nguyễn Văn 0");
    assert!(update["actor"].as_str().unwrap().starts_with("key:"));

    // Adjustments need a reason, are idempotent, and are audited with the balance.
    let path = format!("/v1/members/{id}/adjustments");
    let (status, body) = admin
        .post(&path, json!({"id": "adj-1", "points": 50}))
        .await;
    assert_eq!((status, body["field"].as_str()), (422, Some("reason")));
    // The most negative number is refused, not overflowed (schemathesis found this).
    let (status, body) = admin
        .post(
            &path,
            json!({"id": "adj-min", "points": i64::MIN, "reason": "x"}),
        )
        .await;
    assert_eq!((status, body["field"].as_str()), (422, Some("points")));
    let (status, first) = admin
        .post(
            &path,
            json!({"id": "adj-1", "points": 50, "reason": "Khách phàn nàn"}),
        )
        .await;
    assert_eq!((status, first["balance"].as_i64()), (200, Some(50)));
    let (status, again) = admin
        .post(
            &path,
            json!({"id": "adj-1", "points": 50, "reason": "Khách phàn nàn"}),
        )
        .await;
    assert_eq!((status, &again), (200, &first));
    let (status, body) = admin
        .post(
            &path,
            json!({"id": "adj-2", "points": -51, "reason": "too much"}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let (_, log) = admin.get("/v1/audit").await;
    let adjustments: Vec<&Value> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["action"] == "member.adjust_points")
        .collect();
    assert_eq!(adjustments.len(), 1, "a replay is not audited twice");
    assert_eq!(adjustments[0]["before"]["balance"], 0);
    assert_eq!(adjustments[0]["after"]["balance"], 50);
    assert_eq!(adjustments[0]["after"]["reason"], "Khách phàn nàn");
    assert!(cafe.store.check_ledger().await.unwrap().is_sound());

    // Limits at their edges: the largest amount and quantity are judged; one more is refused.
    // (The tenant first raises its own largest purchase, 1,000,000,000 by default, to the API's.)
    let max = patron_server::AMOUNT_MAX;
    let (status, body) = admin
        .put(
            "/v1/settings/purchase-limits",
            json!({"maximum": max, "confirm": max}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut sale = purchase("edge-1", "0914000099", max);
    sale["items"] =
        json!([{"category": "cake", "quantity": patron_server::QUANTITY_MAX, "amount": max}]);
    let (status, body) = admin.post("/v1/events", sale.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["points_earned"],
        max / 10_000 + patron_server::QUANTITY_MAX * 10
    );
    for (field, value, at) in [
        ("amount", json!(max + 1), "amount"),
        ("amount", json!(i64::MAX), "amount"),
        (
            "points_paid",
            json!(patron_server::POINTS_MAX + 1),
            "points_paid",
        ),
    ] {
        let mut event = purchase("edge-2", "0914000099", 10_000);
        event[field] = value;
        let (status, body) = admin.post("/v1/events", event).await;
        assert_eq!((status, body["field"].as_str()), (422, Some(at)), "{body}");
    }
    let mut event = purchase("edge-3", "0914000099", 10_000);
    event["items"] = json!([{"category": "cake", "quantity": patron_server::QUANTITY_MAX + 1}]);
    let (status, body) = admin.post("/v1/events", event).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (422, Some("items[0].quantity"))
    );
    assert!(cafe.store.check_ledger().await.unwrap().is_sound());
}

async fn merge_export_and_erase(postgres: bool) {
    let cafe = cafe(postgres, ServerOptions::default()).await;
    let admin = &cafe.admin;
    for (id, phone, amount) in [
        ("p1", "0915000001", 3_000_000),
        ("p2", "0915000002", 2_500_000),
        ("p3", "0915000002", 400_000),
    ] {
        let (status, body) = admin.post("/v1/events", purchase(id, phone, amount)).await;
        assert_eq!(status, 200, "{body}");
    }
    let (_, first) = admin.get("/v1/members/by-phone/0915000001").await;
    let (_, second) = admin.get("/v1/members/by-phone/0915000002").await;
    let (a, b) = (
        first["id"].as_str().unwrap(),
        second["id"].as_str().unwrap(),
    );
    let (status, body) = admin
        .post(&format!("/v1/members/{a}/merge"), json!({"member_id": a}))
        .await;
    assert_eq!(status, 422, "{body}");
    let (status, report) = admin
        .post(&format!("/v1/members/{a}/merge"), json!({"member_id": b}))
        .await;
    assert_eq!(status, 200, "{report}");
    let expected = first["balance"].as_i64().unwrap() + second["balance"].as_i64().unwrap();
    assert_eq!(report["balance"].as_i64(), Some(expected));
    assert_eq!(report["ledger_transactions_moved"], 2);
    let (_, merged) = admin.get(&format!("/v1/members/{a}")).await;
    assert_eq!(merged["balance"].as_i64(), Some(expected));
    assert_eq!(merged["lifetime_spend"], 5_900_000);
    assert_eq!(merged["currency"], "VND");
    assert_eq!(merged["order_count"], 3);
    let (status, _) = admin.get(&format!("/v1/members/{b}")).await;
    assert_eq!(status, 404);
    let (_, history) = admin.get(&format!("/v1/members/{a}/history")).await;
    assert_eq!(history["entries"].as_array().unwrap().len(), 3);
    assert!(cafe.store.check_ledger().await.unwrap().is_sound());
    // A refund of the merged member's purchase still finds it.
    let (status, body) = admin
        .post(
            "/v1/events",
            json!({"id": "r3", "type": "refund", "original_id": "p3", "amount": 400_000}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["member_id"].as_str(), Some(a));

    // Decree 13: export holds the profile and history; erasure wipes personal data only.
    let (status, _) = admin
        .patch(
            &format!("/v1/members/{a}"),
            json!({"profile": {"name": "Lê Văn Cường"}}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, export) = admin.get(&format!("/v1/members/{a}/export")).await;
    assert_eq!(status, 200);
    assert_eq!(export["member"]["name"], "Lê Văn Cường");
    assert_eq!(export["events"].as_array().unwrap().len(), 4);
    assert!(export["history"].as_array().unwrap().len() >= 4);
    let (status, _) = admin
        .post(&format!("/v1/members/{a}/erase"), json!({}))
        .await;
    assert_eq!(status, 204);
    let (_, erased) = admin.get(&format!("/v1/members/{a}")).await;
    assert_eq!(erased["name"], Value::Null);
    assert_eq!(erased["phone"], Value::Null);
    assert_eq!(erased["balance"], merged["balance"].as_i64().unwrap() - 40);
    let (_, log) = admin.get("/v1/audit").await;
    let text = log.to_string();
    assert!(
        !text.contains("Lê Văn Cường"),
        "the audit log forgets erased values"
    );
    assert!(text.contains("member.erase"));
    assert!(cafe.store.check_ledger().await.unwrap().is_sound());
    let (_, found) = admin.get("/v1/members?q=0915000001").await;
    assert_eq!(found["members"].as_array().unwrap().len(), 0);
}

async fn programme_draft_dry_run_and_publish(postgres: bool) {
    let cafe = cafe(postgres, ServerOptions::default()).await;
    let admin = &cafe.admin;
    let (status, _) = admin.get("/v1/programme/draft").await;
    assert_eq!(status, 404);
    let mut draft = programme();
    draft["amount_per_point"] = json!(5000);
    draft["rules"][0]["when"] = json!("'cake' in event.categories &&");
    let (status, body) = admin
        .put("/v1/programme/draft", json!({"definition": draft}))
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (422, Some("definition.rules[0].when"))
    );
    draft["rules"][0]["when"] = json!("'cake' in event.categories");
    let (status, body) = admin
        .put("/v1/programme/draft", json!({"definition": draft}))
        .await;
    assert_eq!(status, 200, "{body}");

    let sale = json!({"member": {"phone": "0916000001"}, "store": "HN01", "amount": 120_000,
                      "items": [{"category": "cake", "quantity": 2, "amount": 60_000},
                                {"category": "coffee", "amount": 60_000}]});
    let (status, run) = admin
        .post("/v1/programme/dry-run", json!({"purchase": sale}))
        .await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["programme"], "draft");
    assert_eq!(run["points_earned"], 24 + 20);
    assert_eq!(run["known_member"], false);
    assert!(run["lines"]
        .as_array()
        .unwrap()
        .iter()
        .any(|line| line["rule"] == "cake"));
    let (_, current) = admin
        .post(
            "/v1/programme/dry-run",
            json!({"programme": "current", "purchase": sale}),
        )
        .await;
    assert_eq!(current["points_earned"], 12 + 20);
    let (status, body) = admin
        .post(
            "/v1/programme/dry-run",
            json!({"purchase": {"member": {"phone": "0916000001"}, "amount": -5}}),
        )
        .await;
    assert_eq!((status, body["field"].as_str()), (422, Some("amount")));
    // Nothing was recorded.
    let (status, _) = admin.get("/v1/members/by-phone/0916000001").await;
    assert_eq!(status, 404);

    let (status, published) = admin.post("/v1/programme/draft/publish", json!({})).await;
    assert_eq!((status, published["version"].as_i64()), (201, Some(2)));
    let (_, versions) = admin.get("/v1/programme/versions").await;
    let versions = versions.as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[1]["current"], true);
    assert_eq!(versions[1]["definition"]["amount_per_point"], 5000);
    let (status, _) = admin.get("/v1/programme/draft").await;
    assert_eq!(status, 404, "publishing discards the draft");
    let (status, body) = admin
        .post("/v1/events", {
            let mut event = sale.clone();
            event["id"] = json!("s1");
            event["type"] = json!("purchase");
            event
        })
        .await;
    assert_eq!(
        (status, body["points_earned"].as_i64()),
        (200, Some(44)),
        "{body}"
    );
    assert!(audit_actions(admin)
        .await
        .iter()
        .any(|(action, _)| action == "programme.publish"));
}

async fn tenants_need_the_platform_token(postgres: bool) {
    let options = ServerOptions {
        platform_token: Some("platform-secret-token".into()),
        ..ServerOptions::default()
    };
    let cafe = cafe(postgres, options).await;
    let platform = cafe.admin.with(Auth::Key("platform-secret-token".into()));
    let (status, _) = cafe.admin.get("/v1/tenants").await;
    assert_eq!(status, 401, "a tenant's admin key is not the platform");
    let (status, body) = platform
        .post(
            "/v1/tenants",
            json!({"name": "Trà sữa", "time_zone": "Mars/Olympus"}),
        )
        .await;
    assert_eq!((status, body["field"].as_str()), (422, Some("time_zone")));
    let (status, created) = platform
        .post("/v1/tenants", json!({"name": "Trà sữa"}))
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["tenant"]["currency"], "VND");
    let newcomer = cafe
        .admin
        .with(Auth::Key(created["api_key"].as_str().unwrap().to_owned()));
    let (status, keys) = newcomer.get("/v1/api-keys").await;
    assert_eq!((status, keys.as_array().unwrap().len()), (200, 1));
    let (_, tenants) = platform.get("/v1/tenants").await;
    assert_eq!(tenants.as_array().unwrap().len(), 2);
}

/// Every endpoint, called with another tenant's key and this tenant's ids, answers 404 or 403
/// and never this tenant's data.
async fn stores_and_tiers_are_listed(postgres: bool) {
    let cafe = cafe(postgres, ServerOptions::default()).await;
    let admin = &cafe.admin;
    let (status, stores) = admin.get("/v1/stores").await;
    assert_eq!(status, 200, "{stores}");
    let codes: Vec<&str> = stores
        .as_array()
        .unwrap()
        .iter()
        .map(|store| store["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["HCM01", "HN01"]);
    for (id, phone, amount) in [
        ("t1", "0917000101", 100_000),
        ("t2", "0917000102", 6_000_000),
    ] {
        let (status, body) = admin.post("/v1/events", purchase(id, phone, amount)).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, tiers) = admin.get("/v1/tiers").await;
    assert_eq!(status, 200, "{tiers}");
    let counts: Vec<(&str, i64, i64)> = tiers
        .as_array()
        .unwrap()
        .iter()
        .map(|tier| {
            (
                tier["code"].as_str().unwrap(),
                tier["threshold"].as_i64().unwrap(),
                tier["members"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(counts, [("member", 0, 1), ("gold", 5_000_000, 1)]);
    let (_, other_key) = tenant_with_key(&cafe.store, "Đối thủ", KeyScope::Admin).await;
    let other = admin.with(Auth::Key(other_key));
    assert_eq!(other.get("/v1/stores").await.1, json!([]));
    assert_eq!(other.get("/v1/tiers").await.1, json!([]));
}

async fn another_tenant_sees_nothing(postgres: bool) {
    let cafe = cafe(postgres, ServerOptions::default()).await;
    let admin = &cafe.admin;
    let (status, body) = admin
        .post("/v1/events", purchase("x1", "0917000001", 900_000))
        .await;
    assert_eq!(status, 200, "{body}");
    let member = body["member_id"].as_str().unwrap().to_owned();
    let (_, user) = admin
        .post("/v1/users", json!({"email": "a@cafe.vn", "name": "A", "role": "viewer", "password": "long enough password"}))
        .await;
    let (_, key) = admin
        .post("/v1/api-keys", json!({"name": "k", "scope": "read"}))
        .await;
    let (_, reward) = admin
        .post("/v1/rewards", json!({"name": "Bánh", "cost": 10}))
        .await;
    let (_, redeemed) = admin
        .post(
            "/v1/redemptions",
            json!({"id": "rd1", "member": {"id": member}, "reward_id": reward["id"]}),
        )
        .await;
    let code = redeemed["voucher"]["code"].as_str().unwrap().to_owned();

    let (_, other_key) = tenant_with_key(&cafe.store, "Đối thủ", KeyScope::Admin).await;
    let other = admin.with(Auth::Key(other_key));
    let user_id = user["id"].as_str().unwrap();
    let key_id = key["key"]["id"].as_str().unwrap();
    let m = &member;
    let attempts: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", format!("/v1/members/{m}"), None),
        ("GET", format!("/v1/members/{m}/history"), None),
        ("GET", format!("/v1/members/{m}/vouchers"), None),
        ("GET", format!("/v1/members/{m}/export"), None),
        ("GET", "/v1/members/by-phone/0917000001".into(), None),
        (
            "PATCH",
            format!("/v1/members/{m}"),
            Some(json!({"profile": {"name": "x"}})),
        ),
        (
            "POST",
            format!("/v1/members/{m}/adjustments"),
            Some(json!({"id": "a", "points": 1, "reason": "x"})),
        ),
        ("POST", format!("/v1/members/{m}/erase"), Some(json!({}))),
        (
            "POST",
            format!("/v1/members/{m}/merge"),
            Some(json!({"member_id": m})),
        ),
        (
            "PATCH",
            format!("/v1/users/{user_id}"),
            Some(json!({"disabled": true})),
        ),
        ("DELETE", format!("/v1/api-keys/{key_id}"), None),
        (
            "POST",
            format!("/v1/vouchers/{code}/use"),
            Some(json!({"id": "u1", "store": "HN01"})),
        ),
        (
            "POST",
            format!("/v1/vouchers/{code}/cancel"),
            Some(json!({"id": "c1"})),
        ),
        (
            "POST",
            "/v1/events".into(),
            Some(json!({"id": "rf", "type": "refund", "original_id": "x1", "amount": 1000})),
        ),
        (
            "POST",
            "/v1/redemptions".into(),
            Some(json!({"id": "rd2", "member": {"id": m}, "reward_id": reward["id"]})),
        ),
    ];
    for (method, path, body) in attempts {
        let (status, answer) = other.send(method, &path, body).await;
        assert!(
            status == 404 || status == 403 || status == 422,
            "{method} {path} gave {status}: {answer}"
        );
        let text = answer.to_string();
        assert!(
            !text.contains("0917000001") && !text.contains(&code[..6]),
            "{method} {path} leaked: {text}"
        );
    }
    // Lists hold only the caller's own.
    for path in [
        "/v1/members",
        "/v1/users",
        "/v1/api-keys",
        "/v1/rewards",
        "/v1/audit",
    ] {
        let (status, answer) = other.get(path).await;
        assert_eq!(status, 200, "{path}");
        let text = answer.to_string();
        assert!(
            !text.contains(m.as_str()) && !text.contains("a@cafe.vn") && !text.contains("Bánh"),
            "{path} leaked: {text}"
        );
    }
    // And nothing changed for the first tenant.
    let (_, view) = admin.get(&format!("/v1/members/{m}")).await;
    assert_eq!(view["balance"], 90 - 10);
    let (_, keys) = admin.get("/v1/api-keys").await;
    assert!(keys
        .as_array()
        .unwrap()
        .iter()
        .all(|key| key["revoked_at"].is_null()));
}

on_both_backends! {
    stores_and_tiers_are_listed;
    keys_scopes_revocation_and_store_keys;
    staff_roles_sessions_and_csrf;
    members_search_update_and_adjust;
    merge_export_and_erase;
    programme_draft_dry_run_and_publish;
    tenants_need_the_platform_token;
    another_tenant_sees_nothing;
}
