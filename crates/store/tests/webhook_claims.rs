//! Claiming webhook deliveries is fair across tenants: tenants are taken in turns, each up to
//! its cap of sends in flight, whatever the age of one tenant's backlog.

mod common;

use patron_store::admin::NewTenant;
use patron_store::audit::Actor;
use patron_store::webhooks::Claim;
use patron_store::Store;
use std::collections::HashMap;
use std::time::Duration;

/// A tenant subscribed to `points.earned` with `count` deliveries due since `due_since`
/// (microseconds), oldest first.
async fn tenant_with_due(store: &Store, name: &str, count: usize, due_since: i64) -> String {
    let tenant = store
        .create_tenant(&NewTenant::vietnamese(name))
        .await
        .unwrap();
    let (subscription, _) = store
        .create_webhook(
            tenant,
            &Actor::cli(),
            "https://hooks.example.com/patron",
            &["points.earned".to_owned()],
        )
        .await
        .unwrap();
    for n in 0..count {
        let outbox_id = uuid::Uuid::now_v7().to_string();
        store
            .db()
            .execute(
                "INSERT INTO outbox (id, tenant_id, topic, payload, created_at, fanned_out) VALUES ($1, $2, 'points.earned', '{}', $3, 1)",
                patron_store::binds![outbox_id.clone(), tenant.to_string(), due_since],
            )
            .await
            .unwrap();
        store
            .db()
            .execute(
                "INSERT INTO webhook_deliveries (id, tenant_id, subscription_id, outbox_id, topic, status, attempts, \
                 next_attempt_at, created_at) VALUES ($1, $2, $3, $4, 'points.earned', 'pending', 0, $5, $6)",
                patron_store::binds![
                    format!("{name}-{n}"),
                    tenant.to_string(),
                    subscription.id.clone(),
                    outbox_id,
                    due_since + n as i64,
                    due_since
                ],
            )
            .await
            .unwrap();
    }
    tenant.to_string()
}

async fn claims_take_tenants_in_turns_up_to_their_cap(store: Store) {
    // A's backlog is the oldest; B and C came later.
    let a = tenant_with_due(&store, "A", 6, 1_000).await;
    tenant_with_due(&store, "B", 1, 5_000).await;
    tenant_with_due(&store, "C", 3, 3_000).await;
    let now = chrono::Utc::now();
    let lease = Duration::from_secs(60);
    // A already has one send in flight; each tenant may have two.
    let in_flight = HashMap::from([(a.clone(), 1)]);
    let claimed = store
        .claim_due_deliveries(&Claim {
            now,
            lease,
            limit: 4,
            per_tenant_max: 2,
            in_flight: &in_flight,
        })
        .await
        .unwrap();
    let mut ids: Vec<String> = claimed.into_iter().map(|delivery| delivery.id).collect();
    ids.sort();
    // Every tenant's first (A-0, C-0, B-0), then the second turn: A is at its cap, so C-1.
    assert_eq!(ids, ["A-0", "B-0", "C-0", "C-1"]);

    // Claimed ones are leased; the rest come in turns again, each tenant to its cap.
    let nothing_in_flight = HashMap::new();
    let claimed = store
        .claim_due_deliveries(&Claim {
            now,
            lease,
            limit: 10,
            per_tenant_max: 2,
            in_flight: &nothing_in_flight,
        })
        .await
        .unwrap();
    let mut ids: Vec<String> = claimed.into_iter().map(|delivery| delivery.id).collect();
    ids.sort();
    assert_eq!(ids, ["A-1", "A-2", "C-2"]);

    // Nothing is claimed twice, and a full dispatcher claims nothing.
    let claimed = store
        .claim_due_deliveries(&Claim {
            now,
            lease,
            limit: 0,
            per_tenant_max: 2,
            in_flight: &nothing_in_flight,
        })
        .await
        .unwrap();
    assert!(claimed.is_empty());
    let claimed = store
        .claim_due_deliveries(&Claim {
            now,
            lease,
            limit: 10,
            per_tenant_max: 10,
            in_flight: &nothing_in_flight,
        })
        .await
        .unwrap();
    let mut ids: Vec<String> = claimed.into_iter().map(|delivery| delivery.id).collect();
    ids.sort();
    assert_eq!(ids, ["A-3", "A-4", "A-5"]);
}

on_both_backends! {
    claims_take_tenants_in_turns_up_to_their_cap;
}
