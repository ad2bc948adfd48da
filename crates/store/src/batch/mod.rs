//! One journal batch: load everything the batch's events touch with a few set queries, judge
//! the events in order in memory with the core, then write every change with a few multi-row
//! statements, all in one database transaction.

mod judge;
mod load;
mod write;

pub(crate) use judge::*;
pub(crate) use load::*;
pub(crate) use write::*;

use crate::db::{Bind, Row, Tx};
use crate::error::EventError;
use crate::figures::{figure, Figures, MemberFigures};
use crate::model::{
    EventResult, IncomingEvent, IncomingKind, MemberRef, TierChangeView, VoucherView,
};
use crate::sql::{by_keys, Rows};
use crate::{rfc3339, Backend, Store, StoreError, TenantSettings};
use patron_core::engine::{Judge, Outcome};
use patron_core::event::{Purchase, PurchaseRecord};
use patron_core::ledger::Asset;
use patron_core::ledger::Transaction;
use patron_core::lots::{Allocation, Lot, Lots};
use patron_core::member::{MemberState, PeriodTotals, Profile};
use patron_core::reward::{Reward, Voucher, VoucherStatus};
use patron_core::tiers::TierChange;
use patron_core::time::{from_micros, to_micros, Timestamp};
use patron_core::{
    EventId, LotId, MemberId, Money, Phone, Points, RewardId, TenantId, TransactionId,
};
use rand::Rng;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

pub(crate) type Answer = Result<EventResult, EventError>;

/// Characters of voucher codes: no 0/O or 1/I to misread at a till.
const VOUCHER_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
/// Characters in a voucher code: 32^12 = 2^60 codes.
pub const VOUCHER_CODE_LENGTH: usize = 12;

fn voucher_code() -> String {
    let mut rng = rand::rng();
    (0..VOUCHER_CODE_LENGTH)
        .map(|_| VOUCHER_ALPHABET[rng.random_range(0..VOUCHER_ALPHABET.len())] as char)
        .collect()
}

/// A member loaded (or created) in this batch.
struct Loaded {
    tenant_id: TenantId,
    state: MemberState,
    touched: bool,
    /// Its stored state broke an invariant (now or earlier): its events are refused.
    quarantined: bool,
    /// Its personal data was erased (it counts in no tier's members).
    erased: bool,
    /// What it added to the kept figures as loaded; `None` when this batch enrolled it.
    figures: Option<MemberFigures>,
}

/// A purchase record loaded or made in this batch.
struct PurchaseEntry {
    record: PurchaseRecord,
    /// The store the purchase named.
    store: Option<String>,
    /// The buyer's tier when they bought (none for purchases stored before it was kept).
    tier: Option<String>,
    /// Refunded of it as loaded (0 when new).
    refunded_before: i64,
    is_new: bool,
    changed: bool,
}

struct VoucherEntry {
    tenant_id: TenantId,
    voucher: Voucher,
    /// Its status as loaded; `None` when this batch issued it.
    status_before: Option<VoucherStatus>,
    changed: bool,
}

struct RewardEntry {
    tenant_id: TenantId,
    reward: Reward,
    stock_changed: bool,
}

/// Rows to write.
#[derive(Default)]
struct Writes {
    events: Vec<EventRow>,
    transactions: Vec<(TenantId, String, Timestamp, Transaction)>,
    allocations: Vec<(TransactionId, Allocation)>,
    tier_changes: Vec<(TenantId, MemberId, String, Timestamp, TierChange)>,
    /// Audit log rows of manual changes, written with them.
    audits: Vec<Vec<Bind>>,
}

struct EventRow {
    tenant_id: TenantId,
    event_id: EventId,
    kind: &'static str,
    member_id: Option<MemberId>,
    occurred_at: Timestamp,
    body_hash: String,
    /// The answer, stored as its record ([`crate::records`]).
    result: EventResult,
    /// The store a purchase or voucher use names, for figures per store.
    store_code: Option<String>,
    /// Who sent it.
    actor: Option<String>,
    /// A purchase's lines, stored with it.
    lines: Vec<patron_core::event::Item>,
}

/// Everything the batch reads and changes.
#[derive(Default)]
struct World {
    tenants: HashMap<TenantId, Arc<TenantSettings>>,
    members: HashMap<MemberId, Loaded>,
    phones: HashMap<(TenantId, Phone), MemberId>,
    purchases: HashMap<(TenantId, EventId), PurchaseEntry>,
    vouchers: HashMap<String, VoucherEntry>,
    rewards: HashMap<RewardId, RewardEntry>,
    /// Vouchers (not cancelled) each member holds of each reward.
    held: HashMap<(MemberId, RewardId), i64>,
    /// Events already stored: (tenant, id) → (body hash, result).
    existing: HashMap<(TenantId, EventId), (String, String)>,
    /// Members found inconsistent while loading, to mark quarantined in this transaction.
    quarantine: Vec<(TenantId, MemberId, String)>,
    writes: Writes,
}

/// How a batch's events stand to each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Batch {
    /// Each event is judged on its own: one refused, the others are stored.
    Apart,
    /// The events are one act of one member (a sale and the voucher used on it): stored all or
    /// none. When one is refused, nothing is written: it keeps its refusal and every other
    /// event is answered [`EventError::RefusedWithItsGroup`]; an event judged for another
    /// member than the first (a voucher someone else holds) is refused as
    /// [`EventError::VoucherNotFound`].
    Together,
}

/// Judges and stores `events` in one transaction. Apart, an event that fails validation fails
/// alone; a database error fails the batch (the journal then retries its events one by one).
pub(crate) async fn process(
    store: &Store,
    connection: Option<&mut rusqlite::Connection>,
    events: &[IncomingEvent],
    batch: Batch,
) -> Result<Vec<Answer>, StoreError> {
    let now = chrono::Utc::now();
    let mut world = World::default();
    for event in events {
        if let std::collections::hash_map::Entry::Vacant(slot) =
            world.tenants.entry(event.tenant_id)
        {
            match store.tenant(event.tenant_id).await {
                Ok(settings) => {
                    slot.insert(settings);
                }
                Err(StoreError::NotFound { .. }) => {}
                Err(error) => return Err(error),
            }
        }
    }
    let timer = std::time::Instant::now();
    let mut db = Tx::for_writer(&store.db, connection).await?;
    load(&mut db, &mut world, events).await?;
    let loaded_at = timer.elapsed();
    let mut answers = Vec::with_capacity(events.len());
    let mut seen: HashMap<(TenantId, EventId), (String, Answer)> = HashMap::new();
    for event in events {
        let key = (event.tenant_id, event.id.clone());
        if let Some((hash, answer)) = seen.get(&key) {
            answers.push(if *hash == event.body_hash {
                answer.clone()
            } else {
                Err(EventError::ExistsWithDifferentBody)
            });
            continue;
        }
        let answer = match world.existing.get(&key) {
            Some((hash, _)) if *hash != event.body_hash => Err(EventError::ExistsWithDifferentBody),
            Some((_, result)) => crate::records::decode_answer(result)
                .map_err(|error| EventError::Database(error.to_string())),
            None if is_quarantined(&world, event) => Err(EventError::MemberQuarantined),
            None => judge(&mut world, event),
        };
        if let Ok(result) = &answer {
            if !world.existing.contains_key(&key) {
                world.writes.events.push(EventRow {
                    tenant_id: event.tenant_id,
                    event_id: event.id.clone(),
                    kind: event.kind.name(),
                    member_id: result
                        .member_id
                        .as_deref()
                        .and_then(|id| MemberId::parse(id).ok()),
                    occurred_at: event.occurred_at,
                    body_hash: event.body_hash.clone(),
                    result: result.clone(),
                    store_code: match &event.kind {
                        IncomingKind::Purchase { purchase, .. } => purchase.store.clone(),
                        IncomingKind::VoucherUse { store, .. } => store.clone(),
                        _ => None,
                    },
                    actor: event.actor.clone(),
                    lines: match &event.kind {
                        IncomingKind::Purchase { purchase, .. } => purchase.items.clone(),
                        _ => Vec::new(),
                    },
                });
            }
        }
        seen.insert(key, (event.body_hash.clone(), answer.clone()));
        answers.push(answer);
    }
    if batch == Batch::Together && refuse_together(&mut answers) {
        // Nothing of the group is kept: the transaction is dropped unwritten.
        return Ok(answers);
    }
    let judged_at = timer.elapsed();
    write(&mut db, &mut world, now).await?;
    let written_at = timer.elapsed();
    db.commit().await?;
    tracing::debug!(
        events = events.len(),
        load_us = loaded_at.as_micros() as u64,
        judge_us = (judged_at - loaded_at).as_micros() as u64,
        write_us = (written_at - judged_at).as_micros() as u64,
        commit_us = (timer.elapsed() - written_at).as_micros() as u64,
        "batch committed"
    );
    Ok(answers)
}

/// Whether a group judged together is refused as a whole: one of its events was refused, or
/// was judged for another member than the first's (refused then as
/// [`EventError::VoucherNotFound`]). The refused event keeps its refusal; every other is
/// answered [`EventError::RefusedWithItsGroup`].
fn refuse_together(answers: &mut [Answer]) -> bool {
    let first_member = answers
        .iter()
        .find_map(|answer| answer.as_ref().ok()?.member_id.clone());
    let refused = answers.iter().position(Result::is_err).or_else(|| {
        answers.iter().position(|answer| {
            answer
                .as_ref()
                .is_ok_and(|result| result.member_id != first_member)
        })
    });
    let Some(refused) = refused else {
        return false;
    };
    for (position, answer) in answers.iter_mut().enumerate() {
        if position != refused {
            *answer = Err(EventError::RefusedWithItsGroup);
        } else if answer.is_ok() {
            *answer = Err(EventError::VoucherNotFound);
        }
    }
    true
}

fn member_of(world: &World, tenant_id: TenantId, reference: &MemberRef) -> Option<MemberId> {
    match reference {
        MemberRef::Id(id) => world
            .members
            .get(id)
            .filter(|loaded| loaded.tenant_id == tenant_id)
            .map(|_| *id),
        MemberRef::Phone(phone) => world.phones.get(&(tenant_id, phone.clone())).copied(),
    }
}

/// Whether the member an event concerns is quarantined (its events are refused, unjudged:
/// the engine asserts consistent state and must never see a broken one).
fn is_quarantined(world: &World, event: &IncomingEvent) -> bool {
    let tenant_id = event.tenant_id;
    let member_id = match &event.kind {
        IncomingKind::Purchase { member, .. }
        | IncomingKind::Engagement { member, .. }
        | IncomingKind::Redemption { member, .. }
        | IncomingKind::Adjustment { member, .. }
        | IncomingKind::TierHold { member, .. } => member_of(world, tenant_id, member),
        IncomingKind::Enrol { phone, .. } => world.phones.get(&(tenant_id, phone.clone())).copied(),
        IncomingKind::Refund { original, .. } | IncomingKind::Void { original } => world
            .purchases
            .get(&(tenant_id, original.clone()))
            .map(|entry| entry.record.member_id),
        IncomingKind::VoucherUse { code, .. } | IncomingKind::VoucherCancel { code } => world
            .vouchers
            .get(code)
            .map(|entry| entry.voucher.member_id),
    };
    member_id
        .and_then(|id| world.members.get(&id))
        .is_some_and(|loaded| loaded.quarantined)
}

#[cfg(test)]
mod plan_tests {
    //! The batch's lookups on PostgreSQL stay on their indexes on tables that were never
    //! analysed: the plans of every query a batch sends are read with `EXPLAIN`.

    use crate::admin::NewTenant;
    use crate::db::{Bind, Database};
    use crate::model::{IncomingEvent, IncomingKind, MemberRef};
    use crate::{binds, Journal, JournalConfig};
    use patron_core::event::Purchase;
    use patron_core::reward::Reward;
    use patron_core::{EventId, Money, Phone, Points, RewardId};

    /// Copies of each row the small history has, so the tables hold enough for a scan to lose.
    const COPIES: i64 = 20_000;

    /// Inserts `COPIES` copies of every row of `table`, with the given columns made unique.
    async fn multiply(db: &Database, table: &str, unique: &[&str]) {
        let columns: Vec<String> = db
            .fetch(
                "SELECT column_name AS name FROM information_schema.columns \
                 WHERE table_name = $1 ORDER BY ordinal_position",
                binds![table],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| row.text("name").unwrap())
            .collect();
        let values: Vec<String> = columns
            .iter()
            .map(|column| {
                if unique.contains(&column.as_str()) {
                    format!("{column} || '-' || g")
                } else {
                    column.clone()
                }
            })
            .collect();
        db.batch(&format!(
            "INSERT INTO {table} ({}) SELECT {} FROM {table} CROSS JOIN generate_series(1, {COPIES}) AS g",
            columns.join(", "),
            values.join(", ")
        ))
        .await
        .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hot_lookups_use_their_indexes() {
        let url = patron_testkit::fresh_database_url(true, "plans").await;
        let store = crate::Store::open(&crate::DatabaseConfig::new(url))
            .await
            .unwrap();
        let tenant = store
            .create_tenant(&NewTenant::vietnamese("Plans"))
            .await
            .unwrap();
        store.create_store(tenant, "HN01", "Hà Nội").await.unwrap();
        let programme = serde_json::from_value(serde_json::json!({
            "amount_per_point": 1000, "point_value": 1000, "return_window_days": 0,
            "expiry": {"kind": "days", "days": 365},
            "tiers": [{"code": "member", "name": "Member", "threshold": 0}],
            "qualification": {"metric": "spend", "window": "rolling_12_months", "grace_days": 30}
        }))
        .unwrap();
        let start = chrono::Utc::now() - chrono::Duration::days(10);
        store
            .publish_programme(tenant, programme, start - chrono::Duration::days(1))
            .await
            .unwrap();
        let reward_id = store
            .create_reward(
                tenant,
                &Reward {
                    id: RewardId::new(),
                    name: "Cake".into(),
                    description: String::new(),
                    cost: Points(10),
                    stock: None,
                    per_member_limit: None,
                    valid_from: None,
                    valid_until: None,
                    stores: vec![],
                    voucher_valid_days: 30,
                    active: true,
                },
            )
            .await
            .unwrap();
        let (journal, _) = Journal::start(store.clone(), JournalConfig::default());
        let event = |id: &str, kind: IncomingKind| IncomingEvent {
            tenant_id: tenant,
            id: EventId::parse(id).unwrap(),
            occurred_at: start,
            body_hash: id.into(),
            kind,
            actor: None,
            store_scope: None,
        };
        let member =
            |index: usize| MemberRef::Phone(Phone::parse(&format!("09123{:05}", index)).unwrap());
        let purchase = |index: usize, points_paid: i64| IncomingKind::Purchase {
            member: member(index),
            purchase: Purchase {
                store: Some("HN01".into()),
                amount: Money(200_000),
                points_paid: Points(points_paid),
                items: vec![],
            },
            profile: None,
        };
        // A small history: members with purchases, a payment with points, vouchers.
        let mut history = Vec::new();
        for index in 0..4 {
            history.push(event(&format!("P-{index}"), purchase(index, 0)));
            history.push(event(&format!("Q-{index}"), purchase(index, 50)));
            history.push(event(
                &format!("R-{index}"),
                IncomingKind::Redemption {
                    member: member(index),
                    reward_id,
                },
            ));
        }
        let mut codes = Vec::new();
        for answer in journal.submit_all(history).await {
            if let Some(voucher) = answer.unwrap().voucher {
                codes.push(voucher.code);
            }
        }
        let db = store.db();
        multiply(db, "members", &["id", "phone", "search_phone"]).await;
        multiply(db, "events", &["event_id", "member_id", "lot_id"]).await;
        multiply(db, "lots", &["id", "member_id"]).await;
        multiply(db, "member_periods", &["member_id"]).await;
        multiply(db, "ledger_transactions", &["id", "member_id", "event_id"]).await;
        multiply(db, "ledger_entries", &["transaction_id", "member_id"]).await;
        multiply(db, "lot_allocations", &["transaction_id", "lot_id"]).await;
        multiply(db, "vouchers", &["code", "member_id"]).await;

        // One batch of every kind of lookup, recorded.
        let mut batch = Vec::new();
        for index in 0..4 {
            batch.push(event(&format!("P2-{index}"), purchase(index, 0)));
            batch.push(event(
                &format!("F-{index}"),
                IncomingKind::Refund {
                    original: EventId::parse(&format!("Q-{index}")).unwrap(),
                    amount: Money(100_000),
                },
            ));
            batch.push(event(
                &format!("R2-{index}"),
                IncomingKind::Redemption {
                    member: member(index),
                    reward_id,
                },
            ));
        }
        batch.push(event("P-0", purchase(0, 0)));
        batch.push(event(
            "U-0",
            IncomingKind::VoucherUse {
                code: codes[0].clone(),
                store: Some("HN01".into()),
            },
        ));
        batch.push(event(
            "C-1",
            IncomingKind::VoucherCancel {
                code: codes[1].clone(),
            },
        ));
        *crate::db::RECORDED.lock().unwrap() = Some(Vec::new());
        for answer in journal.submit_all(batch).await {
            answer.unwrap();
        }
        let recorded = crate::db::RECORDED.lock().unwrap().take().unwrap();
        let big = [
            "members",
            "events",
            "lots",
            "member_periods",
            "ledger_transactions",
            "ledger_entries",
            "lot_allocations",
            "vouchers",
        ];
        let mut explained = 0;
        for (sql, values) in recorded {
            if !sql.trim_start().starts_with("SELECT") {
                continue;
            }
            let values: Vec<Bind> = values;
            let plan: Vec<String> = db
                .fetch(&format!("EXPLAIN {sql}"), values)
                .await
                .unwrap()
                .iter()
                .map(|row| row.text("QUERY PLAN").unwrap())
                .collect();
            let plan = plan.join("\n");
            for table in big {
                assert!(
                    !plan.contains(&format!("Seq Scan on {table} ")),
                    "a scan of {table} for\n{sql}\n{plan}"
                );
            }
            assert!(
                !plan
                    .lines()
                    .any(|line| line.contains("Filter:") && line.contains("ANY")),
                "a list used as a filter, not an index condition, for\n{sql}\n{plan}"
            );
            explained += 1;
        }
        assert!(explained >= 8, "only {explained} lookups were recorded");
    }
}
