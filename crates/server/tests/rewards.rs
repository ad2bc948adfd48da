//! Rewards over HTTP: a cost of at least one point, `PATCH /v1/rewards/{id}` to edit and
//! retire, and the audit log of each change. Each test runs on SQLite and on PostgreSQL.

mod common;

use common::{cafe, purchase, Auth, Client};
use patron_server::ServerOptions;
use patron_store::admin::{KeyScope, REWARD_COST_MIN};
use serde_json::{json, Value};

async fn create(admin: &Client, body: Value) -> Value {
    let (status, reward) = admin.post("/v1/rewards", body).await;
    assert_eq!(status, 201, "{reward}");
    reward
}

async fn redeem(admin: &Client, id: &str, reward_id: &str) -> (u16, Value) {
    admin
        .post(
            "/v1/redemptions",
            json!({"id": id, "member": {"phone": "0912000001"}, "reward_id": reward_id}),
        )
        .await
}

/// The issue: a 0-point reward with unlimited stock was accepted.
async fn cost_starts_at_one_point(postgres: bool) {
    let cafe = cafe(postgres, ServerOptions::default()).await;
    assert_eq!(REWARD_COST_MIN, 1);
    let (status, refused) = cafe
        .admin
        .post("/v1/rewards", json!({"name": "Free", "cost": 0}))
        .await;
    assert_eq!(
        (status, &refused["code"]),
        (422, &json!("invalid_field")),
        "{refused}"
    );
    assert_eq!(refused["field"], "cost");
    let reward = create(&cafe.admin, json!({"name": "One", "cost": 1})).await;
    let path = format!("/v1/rewards/{}", reward["id"].as_str().unwrap());
    let (status, refused) = cafe.admin.patch(&path, json!({"cost": 0})).await;
    assert_eq!(
        (status, &refused["field"]),
        (422, &json!("cost")),
        "{refused}"
    );
    let (status, _) = cafe.admin.patch(&path, json!({"cost": -5})).await;
    assert_eq!(status, 422);
}

async fn edit_and_retire(postgres: bool) {
    let cafe = cafe(postgres, ServerOptions::default()).await;
    let (status, _) = cafe
        .admin
        .post("/v1/events", purchase("P-1", "0912000001", 2_000_000))
        .await;
    assert_eq!(status, 200);
    let reward = create(
        &cafe.admin,
        json!({"name": "Cà phê sữa", "cost": 40, "stock": 5, "valid_until": "2030-01-01T00:00:00+07:00"}),
    )
    .await;
    let id = reward["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/rewards/{id}");

    // Name, cost, stock, validity and stores change; what is left out stays.
    let (status, edited) = cafe
        .admin
        .patch(
            &path,
            json!({"name": "Cà phê muối", "cost": 50, "stock": null, "valid_until": null,
                   "stores": ["HN01"]}),
        )
        .await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(edited["name"], "Cà phê muối");
    assert_eq!(edited["cost"], 50);
    assert_eq!(edited["stock"], Value::Null);
    assert_eq!(edited["valid_until"], Value::Null);
    assert_eq!(edited["stores"], json!(["HN01"]));
    assert_eq!(edited["voucher_valid_days"], 30);
    assert_eq!(edited["active"], true);

    let (status, redeemed) = redeem(&cafe.admin, "R-1", &id).await;
    assert_eq!(status, 200, "{redeemed}");
    assert_eq!(redeemed["balance"], 150, "200 points less the new cost 50");
    let code = redeemed["voucher"]["code"].as_str().unwrap().to_owned();

    // Retired: no new redemption, not offered, but the voucher already issued is used.
    let (status, retired) = cafe.admin.patch(&path, json!({"retired": true})).await;
    assert_eq!(
        (status, &retired["active"]),
        (200, &json!(false)),
        "{retired}"
    );
    let (status, refused) = redeem(&cafe.admin, "R-2", &id).await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (422, Some("reward_not_offered")),
        "{refused}"
    );
    let (_, offered) = cafe.admin.get("/v1/rewards?offered=true").await;
    assert_eq!(offered, json!([]));
    let (status, used) = cafe
        .admin
        .post(
            &format!("/v1/vouchers/{code}/use"),
            json!({"id": "U-1", "store": "HN01"}),
        )
        .await;
    assert_eq!(
        (status, &used["voucher"]["status"]),
        (200, &json!("used")),
        "{used}"
    );

    // Offered again.
    let (status, back) = cafe.admin.patch(&path, json!({"retired": false})).await;
    assert_eq!((status, &back["active"]), (200, &json!(true)));
    let (status, _) = redeem(&cafe.admin, "R-3", &id).await;
    assert_eq!(status, 200);

    // Bad input names its field; unknown rewards and fields are refused.
    let (status, bad) = cafe
        .admin
        .patch(&path, json!({"valid_from": "tomorrow"}))
        .await;
    assert_eq!(
        (status, &bad["field"]),
        (422, &json!("valid_from")),
        "{bad}"
    );
    let (status, bad) = cafe.admin.patch(&path, json!({"colour": "red"})).await;
    assert_eq!(status, 422, "{bad}");
    let (status, bad) = cafe
        .admin
        .patch(&path, json!({"voucher_valid_days": 3651}))
        .await;
    assert_eq!((status, &bad["field"]), (422, &json!("voucher_valid_days")));
    let (status, _) = cafe
        .admin
        .patch("/v1/rewards/not-a-reward", json!({"cost": 5}))
        .await;
    assert_eq!(status, 404);
    let (status, _) = cafe
        .admin
        .patch(
            "/v1/rewards/0190f5b8-0000-7000-8000-000000000000",
            json!({"cost": 5}),
        )
        .await;
    assert_eq!(status, 404);

    // Another tenant's key does not find it; a read key may not change the catalogue.
    let (_, other_key) = common::tenant_with_key(&cafe.store, "Trà sữa", KeyScope::Admin).await;
    let other = cafe.admin.with(Auth::Key(other_key));
    let (status, _) = other.patch(&path, json!({"cost": 5})).await;
    assert_eq!(status, 404);
    let read_key = cafe
        .store
        .create_api_key(cafe.tenant, "report", KeyScope::Read)
        .await
        .unwrap();
    let reader = cafe.admin.with(Auth::Key(read_key));
    let (status, _) = reader.patch(&path, json!({"cost": 5})).await;
    assert_eq!(status, 403);
}

/// Adding, editing, retiring and offering again are in the audit log, with the key that did it.
async fn changes_are_audited(postgres: bool) {
    let cafe = cafe(postgres, ServerOptions::default()).await;
    let reward = create(&cafe.admin, json!({"name": "Bánh mì", "cost": 30})).await;
    let path = format!("/v1/rewards/{}", reward["id"].as_str().unwrap());
    cafe.admin.patch(&path, json!({"cost": 35})).await;
    cafe.admin.patch(&path, json!({"retired": true})).await;
    cafe.admin.patch(&path, json!({"retired": false})).await;
    let (status, log) = cafe.admin.get("/v1/audit?limit=10").await;
    assert_eq!(status, 200, "{log}");
    let entries: Vec<&Value> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["subject"] == format!("reward:{}", reward["id"].as_str().unwrap()))
        .collect();
    let actions: Vec<&str> = entries
        .iter()
        .map(|entry| entry["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "reward.unretire",
            "reward.retire",
            "reward.update",
            "reward.create"
        ]
    );
    let update = entries[2];
    assert_eq!(
        (&update["before"]["cost"], &update["after"]["cost"]),
        (&json!(30), &json!(35))
    );
    assert!(
        update["actor"].as_str().unwrap().starts_with("key:"),
        "{update}"
    );
    assert_eq!(entries[3]["after"]["name"], "Bánh mì");
}

/// Renaming a reward while it is being redeemed never puts back stock a redemption took: the
/// edit reads the reward under the same lock as a redemption.
async fn edits_racing_redemptions_keep_the_stock(postgres: bool) {
    const REDEMPTIONS: i64 = 20;
    let cafe = cafe(postgres, ServerOptions::default()).await;
    let (status, _) = cafe
        .admin
        .post("/v1/events", purchase("P-1", "0912000001", 50_000_000))
        .await;
    assert_eq!(status, 200);
    let reward = create(
        &cafe.admin,
        json!({"name": "Bánh", "cost": 1, "stock": 100}),
    )
    .await;
    let id = reward["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/rewards/{id}");
    let redeeming = async {
        for index in 0..REDEMPTIONS {
            let (status, body) = redeem(&cafe.admin, &format!("RD-{index}"), &id).await;
            assert_eq!(status, 200, "{body}");
        }
    };
    let editing = async {
        for index in 0..REDEMPTIONS {
            let (status, body) = cafe
                .admin
                .patch(&path, json!({"name": format!("Bánh {index}")}))
                .await;
            assert_eq!(status, 200, "{body}");
        }
    };
    tokio::join!(redeeming, editing);
    let (status, rewards) = cafe.admin.get("/v1/rewards").await;
    assert_eq!(status, 200);
    let stock = rewards
        .as_array()
        .unwrap()
        .iter()
        .find(|reward| reward["id"] == id.as_str())
        .map(|reward| reward["stock"].clone());
    assert_eq!(stock, Some(json!(100 - REDEMPTIONS)));
}

on_both_backends! {
    edits_racing_redemptions_keep_the_stock;
    cost_starts_at_one_point;
    edit_and_retire;
    changes_are_audited;
}
