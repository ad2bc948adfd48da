//! Tier impact counted in the background: a preview that cannot wait for the count says it is
//! counting, the count finishes on its own, a finished count is shown again for the same draft,
//! and another draft is counted anew.

use patron_app::impact::{ImpactCount, ImpactCounts};
use patron_core::event::Purchase;
use patron_core::programme::ProgrammeDefinition;
use patron_core::{EventId, Money, Phone, Points, TenantId};
use patron_store::admin::NewTenant;
use patron_store::programmes::TierImpact;
use patron_store::{IncomingEvent, IncomingKind, Journal, JournalConfig, MemberRef, Store};
use std::time::Duration;

fn programme(gold_from: i64) -> ProgrammeDefinition {
    serde_json::from_value(serde_json::json!({
        "amount_per_point": 10000, "point_value": 1000, "return_window_days": 0,
        "expiry": {"kind": "days", "days": 365},
        "tiers": [
            {"code": "member", "name": "Member", "threshold": 0},
            {"code": "gold", "name": "Gold", "threshold": gold_from}
        ],
        "qualification": {"metric": "spend", "window": "lifetime", "grace_days": 0}
    }))
    .unwrap()
}

async fn buy(journal: &Journal, tenant: TenantId, phone: &str, amount: i64) {
    let kind = IncomingKind::Purchase {
        member: MemberRef::Phone(Phone::parse(phone).unwrap()),
        purchase: Purchase {
            store: None,
            amount: Money(amount),
            points_paid: Points(0),
            items: Vec::new(),
        },
        profile: None,
    };
    let event = IncomingEvent {
        tenant_id: tenant,
        id: EventId::parse(&format!("sale-{phone}")).unwrap(),
        occurred_at: chrono::Utc::now(),
        body_hash: format!("{kind:?}"),
        kind,
        actor: None,
        store_scope: None,
    };
    journal.submit(event).await.unwrap();
}

/// Asks until the count is done; each answer before is "counting".
async fn counted(
    counts: &ImpactCounts,
    store: &Store,
    tenant: TenantId,
    definition: &ProgrammeDefinition,
) -> TierImpact {
    for _ in 0..500 {
        match counts.get(store, tenant, definition).await.unwrap() {
            ImpactCount::Counted(impact) => return impact,
            ImpactCount::Counting { settled } => assert!(settled >= 0),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the count never finished");
}

#[tokio::test]
async fn a_count_runs_in_the_background_and_is_kept_for_its_draft() {
    let store = patron_testkit::fresh_store(false).await;
    let tenant = store
        .create_tenant(&NewTenant::vietnamese("Spa Sen"))
        .await
        .unwrap();
    store
        .publish_programme(
            tenant,
            programme(1_000_000),
            chrono::Utc::now() - chrono::Duration::days(1),
        )
        .await
        .unwrap();
    let (journal, _) = Journal::start(store.clone(), JournalConfig::default());
    for (phone, amount) in [("0913000001", 300_000), ("0913000002", 50_000)] {
        buy(&journal, tenant, phone, amount).await;
    }
    // Nobody waits: the first answer is "counting", and the count finishes by itself.
    let counts = ImpactCounts::waiting(Duration::ZERO);
    let lower_gold = programme(200_000);
    let first = counts.get(&store, tenant, &lower_gold).await.unwrap();
    assert!(matches!(first, ImpactCount::Counting { .. }), "{first:?}");
    let impact = counted(&counts, &store, tenant, &lower_gold).await;
    assert_eq!(
        (impact.members, impact.changed, impact.up, impact.down),
        (2, 1, 1, 0)
    );
    assert_eq!(
        impact,
        store
            .tier_impact(tenant, &lower_gold, chrono::Utc::now())
            .await
            .unwrap()
    );
    // A third member arrives: the same draft's count is shown again (it is fresh), another
    // draft is counted anew and sees them.
    buy(&journal, tenant, "0913000003", 400_000).await;
    assert_eq!(
        counts.get(&store, tenant, &lower_gold).await.unwrap(),
        ImpactCount::Counted(impact)
    );
    let lowest_gold = programme(40_000);
    let again = counted(&counts, &store, tenant, &lowest_gold).await;
    assert_eq!(
        (again.members, again.changed, again.up, again.down),
        (3, 3, 3, 0)
    );
    // With the default wait, a small tenant's count is there at once.
    let waiting = ImpactCounts::default();
    assert_eq!(
        waiting.get(&store, tenant, &lower_gold).await.unwrap(),
        ImpactCount::Counted(TierImpact {
            members: 3,
            changed: 2,
            up: 2,
            down: 0
        })
    );
}
