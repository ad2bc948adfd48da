//! Refunds of bills paid partly with points, voids, store-scoped till keys, the tenant's
//! purchase limits and who sent each event, over HTTP on both backends.

mod common;

use common::*;
use patron_server::ServerOptions;
use serde_json::{json, Value};

fn paid_with_points(id: &str, phone: &str, amount: i64, points_paid: i64) -> Value {
    json!({"id": id, "type": "purchase", "occurred_at": "2026-01-11T09:00:00+07:00",
           "member": {"phone": phone}, "store": "HN01", "amount": amount, "points_paid": points_paid})
}

fn refund(id: &str, original: &str, amount: i64) -> Value {
    json!({"id": id, "type": "refund", "original_id": original, "amount": amount})
}

fn void(id: &str, original: &str) -> Value {
    json!({"id": id, "type": "void", "original_id": original})
}

async fn history(client: &Client, member_id: &str) -> Vec<Value> {
    let (status, body) = client
        .get(&format!("/v1/members/{member_id}/history"))
        .await;
    assert_eq!(status, 200, "{body}");
    body["entries"]
        .as_array()
        .or(body.as_array())
        .cloned()
        .unwrap_or_default()
}

/// The issue's till: the whole bill paid partly with points is refunded, and the points come
/// back (it used to answer `refund_exceeds_purchase`).
async fn refunding_the_whole_bill_gives_back_the_points_paid(postgres: bool) {
    let cafe = cafe(postgres, ServerOptions::default()).await;
    let (status, earned) = cafe
        .admin
        .post("/v1/events", purchase("P-0", "0912000030", 2_000_000))
        .await;
    assert_eq!((status, earned["balance"].as_i64()), (200, Some(200)));
    let (status, paid) = cafe
        .admin
        .post(
            "/v1/events",
            paid_with_points("P-1", "0912000030", 150_000, 100),
        )
        .await;
    assert_eq!(status, 200, "{paid}");
    assert_eq!(
        (
            paid["points_spent"].as_i64(),
            paid["points_earned"].as_i64()
        ),
        (Some(100), Some(5))
    );
    let (status, whole) = cafe
        .admin
        .post("/v1/events", refund("P-1-R", "P-1", 150_000))
        .await;
    assert_eq!(status, 200, "{whole}");
    assert_eq!(whole["points_returned"], 100);
    assert_eq!(whole["points_taken_back"], 5);
    assert_eq!(whole["balance"], 200);
    let (status, over) = cafe
        .admin
        .post("/v1/events", refund("P-1-R2", "P-1", 1))
        .await;
    assert_eq!(
        (status, over["code"].as_str()),
        (422, Some("refund_exceeds_purchase"))
    );
}

/// A cashier refunds but cannot void; a manager voids, once.
async fn a_void_needs_a_manager(postgres: bool) {
    let cafe = cafe(postgres, ServerOptions::default()).await;
    let (status, bought) = cafe
        .admin
        .post("/v1/events", purchase("V-1", "0912000031", 1_000_000))
        .await;
    assert_eq!(status, 200);
    let (cashier, _) = signed_in_staff(&cafe.admin, "thu.ngan@example.vn", "cashier").await;
    let (manager, _) = signed_in_staff(&cafe.admin, "quan.ly@example.vn", "manager").await;
    let (status, refused) = cashier.post("/v1/events", void("V-1-void", "V-1")).await;
    assert_eq!((status, refused["code"].as_str()), (403, Some("forbidden")));
    let (status, refunded) = cashier
        .post("/v1/events", refund("V-1-r", "V-1", 100_000))
        .await;
    assert_eq!(
        (status, refunded["points_taken_back"].as_i64()),
        (200, Some(10))
    );
    let (status, voided) = manager.post("/v1/events", void("V-1-void", "V-1")).await;
    assert_eq!(status, 200, "{voided}");
    assert_eq!(voided["type"], "void");
    assert_eq!(voided["points_taken_back"], 90);
    assert_eq!(voided["balance"], 0);
    let (status, again) = manager.post("/v1/events", void("V-1-void", "V-1")).await;
    assert_eq!((status, &again), (200, &voided), "idempotent by event id");
    let (status, twice) = manager.post("/v1/events", void("V-1-void2", "V-1")).await;
    assert_eq!(
        (status, twice["code"].as_str()),
        (422, Some("purchase_voided"))
    );
    assert_eq!(twice["field"], "original_id");
    let member_id = bought["member_id"].as_str().unwrap();
    let entries = history(&cafe.admin, member_id).await;
    assert!(entries
        .iter()
        .any(|entry| entry["event_id"] == "V-1-void" && entry["reason"]["void"] == true));
}

/// A till's key of HCM01 cannot refund or void HN01's sale nor cancel a voucher only HN01
/// takes; HN01's key can.
async fn a_store_key_keeps_to_its_own_store(postgres: bool) {
    let cafe = cafe(postgres, ServerOptions::default()).await;
    let (hanoi, _) = api_key(&cafe.admin, "write", Some("HN01")).await;
    let (saigon, _) = api_key(&cafe.admin, "write", Some("HCM01")).await;
    let (status, bought) = hanoi
        .post("/v1/events", purchase("S-1", "0912000032", 1_000_000))
        .await;
    assert_eq!(status, 200, "{bought}");
    let (status, reward) = cafe
        .admin
        .post(
            "/v1/rewards",
            json!({"name": "Bánh Hà Nội", "cost": 10, "stores": ["HN01"], "voucher_valid_days": 30}),
        )
        .await;
    assert_eq!(status, 201, "{reward}");
    let (status, redeemed) = cafe
        .admin
        .post(
            "/v1/redemptions",
            json!({"id": "S-rd", "member": {"phone": "0912000032"}, "reward_id": reward["id"]}),
        )
        .await;
    assert_eq!(status, 200, "{redeemed}");
    let code = redeemed["voucher"]["code"].as_str().unwrap();
    for (body, field) in [
        (refund("S-x1", "S-1", 1_000), "original_id"),
        (void("S-x2", "S-1"), "original_id"),
    ] {
        let (status, answer) = saigon.post("/v1/events", body).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (403, Some("other_store")),
            "{answer}"
        );
        assert_eq!(answer["field"], field);
    }
    let (status, answer) = saigon
        .post(
            &format!("/v1/vouchers/{code}/cancel"),
            json!({"id": "S-x3"}),
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (403, Some("other_store"))
    );
    let (status, answer) = hanoi
        .post("/v1/events", refund("S-ok", "S-1", 100_000))
        .await;
    assert_eq!(
        (status, answer["points_taken_back"].as_i64()),
        (200, Some(10))
    );
    let (status, _) = hanoi
        .post(
            &format!("/v1/vouchers/{code}/cancel"),
            json!({"id": "S-ok2"}),
        )
        .await;
    assert_eq!(status, 200);
}

/// The tenant's largest purchase: at it, accepted; one past, 422 naming `amount`.
async fn a_purchase_above_the_tenants_maximum_is_refused(postgres: bool) {
    let cafe = cafe(postgres, ServerOptions::default()).await;
    let (status, limits) = cafe.admin.get("/v1/settings/purchase-limits").await;
    assert_eq!(status, 200);
    assert_eq!(
        limits,
        json!({"maximum": 1_000_000_000, "confirm": 20_000_000})
    );
    let (status, _) = cafe
        .admin
        .post("/v1/events", purchase("L-1", "0912000033", 1_000_000_000))
        .await;
    assert_eq!(status, 200);
    let (status, refused) = cafe
        .admin
        .post(
            "/v1/events",
            purchase("L-2", "0912000033", 99_999_999_999_999),
        )
        .await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (422, Some("amount_above_maximum"))
    );
    assert_eq!(refused["field"], "amount");
    let (status, set) = cafe
        .admin
        .put(
            "/v1/settings/purchase-limits",
            json!({"maximum": 5_000_000, "confirm": 1_000_000}),
        )
        .await;
    assert_eq!(status, 200, "{set}");
    let (status, _) = cafe
        .admin
        .post("/v1/events", purchase("L-3", "0912000033", 5_000_000))
        .await;
    assert_eq!(status, 200);
    let (status, refused) = cafe
        .admin
        .post("/v1/events", purchase("L-4", "0912000033", 5_000_001))
        .await;
    assert_eq!((status, refused["field"].as_str()), (422, Some("amount")));
    let (status, wrong) = cafe
        .admin
        .put(
            "/v1/settings/purchase-limits",
            json!({"maximum": 5_000_000, "confirm": 5_000_001}),
        )
        .await;
    assert_eq!((status, wrong["field"].as_str()), (422, Some("confirm")));
    let (writer, _) = api_key(&cafe.admin, "write", None).await;
    let (status, _) = writer
        .put(
            "/v1/settings/purchase-limits",
            json!({"maximum": 1, "confirm": 1}),
        )
        .await;
    assert_eq!(status, 403);
}

/// A key's purchase names the key; a staff member's names the user.
async fn every_event_names_who_sent_it(postgres: bool) {
    let cafe = cafe(postgres, ServerOptions::default()).await;
    let (till, key_id) = api_key(&cafe.admin, "write", Some("HN01")).await;
    let (cashier, user_id) = signed_in_staff(&cafe.admin, "thu.ngan@example.vn", "cashier").await;
    let (status, by_key) = till
        .post("/v1/events", purchase("W-1", "0912000034", 100_000))
        .await;
    assert_eq!(status, 200);
    let (status, _) = cashier
        .post("/v1/events", purchase("W-2", "0912000034", 200_000))
        .await;
    assert_eq!(status, 200);
    let entries = history(&cafe.admin, by_key["member_id"].as_str().unwrap()).await;
    let actor_of = |event: &str| {
        entries
            .iter()
            .find(|entry| entry["event_id"] == event)
            .map(|entry| entry["reason"]["actor"].clone())
    };
    assert_eq!(actor_of("W-1"), Some(json!(format!("key:{key_id}"))));
    assert_eq!(actor_of("W-2"), Some(json!(format!("user:{user_id}"))));
}

on_both_backends! {
    refunding_the_whole_bill_gives_back_the_points_paid;
    a_void_needs_a_manager;
    a_store_key_keeps_to_its_own_store;
    a_purchase_above_the_tenants_maximum_is_refused;
    every_event_names_who_sent_it;
}
