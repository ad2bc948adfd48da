//! Segments and consent over HTTP: saved, counted, listed, versioned, downloaded, archived;
//! the member's answer names the segments they are in with the till's offer.

mod common;

use common::{cafe, signed_in_staff, Auth};
use patron_server::ServerOptions;
use serde_json::{json, Value};

fn bought(id: &str, phone: &str, amount: i64, category: &str) -> Value {
    json!({"id": id, "type": "purchase", "occurred_at": chrono::Utc::now().to_rfc3339(),
           "member": {"phone": phone}, "store": "HN01", "amount": amount,
           "items": [{"sku": "x", "category": category, "quantity": 1, "amount": amount}]})
}

async fn segments_are_saved_counted_and_downloaded(postgres: bool) {
    let cafe = cafe(postgres, ServerOptions::default()).await;
    let admin = &cafe.admin;
    for (id, phone, amount, category) in [
        ("s-1", "0906000001", 2_500_000, "beans"),
        ("s-2", "0906000002", 300_000, "cake"),
        ("s-3", "0906000003", 2_100_000, "beans"),
    ] {
        let (status, body) = admin
            .post("/v1/events", bought(id, phone, amount, category))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, fields) = admin.get("/v1/segments/fields").await;
    assert_eq!(status, 200);
    assert!(fields
        .as_array()
        .unwrap()
        .iter()
        .any(|field| field["name"] == "spend_90d" && field["kind"] == "number"));

    let (status, preview) = admin
        .post(
            "/v1/segments/preview",
            json!({"condition": "member.spend_90d >= 2000000"}),
        )
        .await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(
        (preview["members"].as_u64(), preview["of"].as_u64()),
        (Some(2), Some(3))
    );

    let big = json!({"name": "Big spenders", "condition": "member.spend_90d >= 2000000 && member.favourite_category == \"beans\"",
                     "policy": {"discount_percent": 10, "note": "Free refill"}});
    let (status, saved) = admin.post("/v1/segments", big.clone()).await;
    assert_eq!(status, 201, "{saved}");
    assert_eq!(
        (saved["members"].as_u64(), saved["version"].as_i64()),
        (Some(2), Some(1))
    );
    let id = saved["id"].as_str().unwrap().to_owned();

    // The member's answer carries the segment and the till's offer.
    let (_, member) = admin.get("/v1/members/by-phone/0906000001").await;
    assert_eq!(member["segments"][0]["name"], "Big spenders", "{member}");
    assert_eq!(member["segments"][0]["discount_percent"], 10);
    let (_, other) = admin.get("/v1/members/by-phone/0906000002").await;
    assert_eq!(other["segments"], json!([]));

    // Refusals name the field.
    let (status, error) = admin
        .post(
            "/v1/segments",
            json!({"name": "X", "condition": "member.spend_90d >= 2.5"}),
        )
        .await;
    assert_eq!(
        (status, error["field"].as_str()),
        (422, Some("condition")),
        "{error}"
    );
    let (status, error) = admin.post("/v1/segments", big.clone()).await;
    assert_eq!((status, error["field"].as_str()), (422, Some("name")));
    let (status, error) = admin
        .post(
            "/v1/segments",
            json!({"name": "Y", "condition": "true", "policy": {"discount_percent": 101}}),
        )
        .await;
    assert_eq!(
        (status, error["field"].as_str()),
        (422, Some("policy.discount_percent")),
        "{error}"
    );
    let (status, error) = admin
        .post(
            "/v1/segments",
            json!({"name": "Z", "condition": "true", "colour": 1}),
        )
        .await;
    assert_eq!(status, 422, "{error}");

    // A new version; a stale one is refused.
    let (status, updated) = admin
        .put(&format!("/v1/segments/{id}"), json!({"name": "Big spenders", "condition": "member.spend_90d >= 2200000", "version": 1}))
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(
        (updated["members"].as_u64(), updated["version"].as_i64()),
        (Some(1), Some(2))
    );
    let (status, _) = admin
        .put(
            &format!("/v1/segments/{id}"),
            json!({"name": "Big spenders", "condition": "true", "version": 1}),
        )
        .await;
    assert_eq!(status, 409);
    let (_, versions) = admin.get(&format!("/v1/segments/{id}/versions")).await;
    assert_eq!(versions.as_array().unwrap().len(), 2);

    // Members as pages and as CSV.
    let (status, page) = admin
        .get(&format!("/v1/segments/{id}/members?limit=500"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["items"][0]["phone"], "+84906000001");
    let (status, error) = admin
        .get(&format!("/v1/segments/{id}/members?limit=501"))
        .await;
    assert_eq!((status, error["field"].as_str()), (422, Some("limit")));
    let (status, csv) = admin.get(&format!("/v1/segments/{id}/members.csv")).await;
    assert_eq!(status, 200);
    let csv = csv.as_str().unwrap().to_owned();
    assert_eq!(csv.lines().count(), 2, "{csv}");
    assert!(csv.lines().nth(1).unwrap().contains("+84906000001"));

    // A viewer reads; cannot save, nor download.
    let (viewer, _) = signed_in_staff(admin, "viewer@cafe.vn", "viewer").await;
    let (status, list) = viewer.get("/v1/segments").await;
    assert_eq!((status, list.as_array().unwrap().len()), (200, 1));
    let (status, _) = viewer
        .post("/v1/segments", json!({"name": "V", "condition": "true"}))
        .await;
    assert_eq!(status, 403);
    let (status, _) = viewer.get(&format!("/v1/segments/{id}/members.csv")).await;
    assert_eq!(status, 403);

    // Archived: gone.
    let (status, _) = admin.delete(&format!("/v1/segments/{id}")).await;
    assert_eq!(status, 204);
    let (status, _) = admin.get(&format!("/v1/segments/{id}")).await;
    assert_eq!(status, 404);
    let _ = Auth::None;
}

async fn consent_is_recorded_and_counted(postgres: bool) {
    let cafe = cafe(postgres, ServerOptions::default()).await;
    let admin = &cafe.admin;
    let (_, answer) = admin
        .post("/v1/events", bought("c-1", "0906000009", 100_000, "cake"))
        .await;
    let member = answer["member_id"].as_str().unwrap().to_owned();
    let (status, consent) = admin
        .put(
            &format!("/v1/members/{member}/consents/sms"),
            json!({"granted": true, "source": "till"}),
        )
        .await;
    assert_eq!(status, 200, "{consent}");
    assert_eq!(consent["source"], "till");
    let (status, error) = admin
        .put(
            &format!("/v1/members/{member}/consents/fax"),
            json!({"granted": true}),
        )
        .await;
    assert_eq!((status, error["field"].as_str()), (422, Some("channel")));
    let (status, error) = admin
        .put(
            &format!("/v1/members/{member}/consents/sms"),
            json!({"granted": true, "source": "Bad Source"}),
        )
        .await;
    assert_eq!((status, error["field"].as_str()), (422, Some("source")));
    let (_, preview) = admin
        .post(
            "/v1/segments/preview",
            json!({"condition": "member.consent_sms && !member.consent_zns"}),
        )
        .await;
    assert_eq!(preview["members"], 1, "{preview}");
    let (_, consents) = admin.get(&format!("/v1/members/{member}/consents")).await;
    assert_eq!(consents[0]["channel"], "sms");
    assert_eq!(consents[0]["granted"], true);
    let (status, _) = admin
        .put(
            &format!("/v1/members/{member}/consents/sms"),
            json!({"granted": false, "source": "stop_reply"}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, preview) = admin
        .post(
            "/v1/segments/preview",
            json!({"condition": "member.consent_sms"}),
        )
        .await;
    assert_eq!(preview["members"], 0);
}

on_both_backends! {
    segments_are_saved_counted_and_downloaded;
    consent_is_recorded_and_counted;
}
