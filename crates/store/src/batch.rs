//! One journal batch: load everything the batch's events touch with a few set queries, judge
//! the events in order in memory with the core, then write every change with a few multi-row
//! statements, all in one database transaction.

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

type Answer = Result<EventResult, EventError>;

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
    result: String,
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

/// Judges and stores `events` in one transaction. An event that fails validation fails alone;
/// a database error fails the batch (the journal then retries its events one by one).
pub(crate) async fn process(
    store: &Store,
    connection: Option<&mut rusqlite::Connection>,
    events: &[IncomingEvent],
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
            Some((_, result)) => serde_json::from_str(result)
                .map_err(|error| EventError::Database(format!("stored result: {error}"))),
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
                    result: serde_json::to_string(result).expect("a result serialises"),
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

/// What one event is judged with.
struct Context<'a> {
    judge: Judge<'a>,
    settings: &'a TenantSettings,
    tenant_id: TenantId,
    event_id: &'a EventId,
    at: Timestamp,
    /// The sender's own store, when it is a till's key.
    store_scope: Option<&'a str>,
}

/// Whom an event concerned and what it did.
struct Judged {
    member_id: MemberId,
    outcome: Outcome,
    created: bool,
}

impl Judged {
    fn of(member_id: MemberId, outcome: Outcome) -> Judged {
        Judged {
            member_id,
            outcome,
            created: false,
        }
    }
}

/// Judges one event against the world, recording its writes.
fn judge(world: &mut World, event: &IncomingEvent) -> Answer {
    let settings = Arc::clone(
        world
            .tenants
            .get(&event.tenant_id)
            .ok_or(EventError::TenantNotFound)?,
    );
    let programme = Arc::clone(
        settings
            .programme_at(event.occurred_at)
            .ok_or(EventError::NoProgramme)?,
    );
    let context = Context {
        judge: Judge::new(&programme, settings.zone),
        settings: &settings,
        tenant_id: event.tenant_id,
        event_id: &event.id,
        at: event.occurred_at,
        store_scope: event.store_scope.as_deref(),
    };
    let judged = match &event.kind {
        IncomingKind::Purchase {
            member,
            purchase,
            profile,
        } => judge_purchase(world, &context, member, purchase, profile.as_ref())?,
        IncomingKind::Refund { original, amount } => {
            judge_refund(world, &context, original, Some(*amount))?
        }
        IncomingKind::Void { original } => judge_refund(world, &context, original, None)?,
        IncomingKind::Engagement { member, kind } => {
            let (member_id, state) = known_member(world, &context, member)?;
            Judged::of(
                member_id,
                context
                    .judge
                    .engagement(state, context.event_id, kind, context.at),
            )
        }
        IncomingKind::Enrol { phone, profile } => judge_enrol(world, &context, phone, profile),
        IncomingKind::Redemption { member, reward_id } => {
            judge_redemption(world, &context, member, *reward_id)?
        }
        IncomingKind::VoucherUse { code, store } => {
            judge_voucher_use(world, &context, code, store.as_deref())?
        }
        IncomingKind::VoucherCancel { code } => judge_voucher_cancel(world, &context, code)?,
        IncomingKind::TierHold { member, until } => {
            let (member_id, state) = known_member(world, &context, member)?;
            state.tier_held_until = *until;
            Judged::of(member_id, Outcome::default())
        }
        IncomingKind::Adjustment {
            member,
            asset,
            points,
            reason,
            actor,
        } => {
            let (member_id, state) = known_member(world, &context, member)?;
            let before = state.balance_of(asset);
            let outcome = context
                .judge
                .adjust_asset(state, asset, *points, reason, context.event_id, context.at)
                .map_err(EventError::Rejected)?;
            let after = state.balance_of(asset);
            world
                .writes
                .audits
                .push(crate::audit::change_values(&crate::audit::Change {
                    tenant_id: event.tenant_id,
                    actor: &crate::audit::Actor(actor.clone().unwrap_or_else(|| "unknown".into())),
                    action: "member.adjust_points",
                    subject: format!("member:{member_id}"),
                    before: Some(serde_json::json!({"balance": before, "asset": asset.name()})),
                    after: Some(serde_json::json!({
                        "balance": after,
                        "asset": asset.name(),
                        "points": points,
                        "reason": reason,
                        "event_id": event.id.as_str(),
                    })),
                }));
            Judged::of(member_id, outcome)
        }
    };
    Ok(record_outcome(
        world,
        event,
        &settings,
        programme.version,
        judged,
    ))
}

/// A member the event names, who must exist in its tenant.
fn known_member<'w>(
    world: &'w mut World,
    context: &Context<'_>,
    member: &MemberRef,
) -> Result<(MemberId, &'w mut MemberState), EventError> {
    let member_id =
        member_of(world, context.tenant_id, member).ok_or(EventError::MemberNotFound)?;
    let loaded = world
        .members
        .get_mut(&member_id)
        .ok_or(EventError::MemberNotFound)?;
    Ok((member_id, &mut loaded.state))
}

fn check_store(context: &Context<'_>, store: Option<&str>) -> Result<(), EventError> {
    match store {
        Some(store) if !context.settings.stores.iter().any(|known| known == store) => {
            Err(EventError::UnknownStore)
        }
        _ => Ok(()),
    }
}

/// A purchase; an unknown phone enrols its member on the spot.
fn judge_purchase(
    world: &mut World,
    context: &Context<'_>,
    member: &MemberRef,
    purchase: &Purchase,
    profile: Option<&Profile>,
) -> Result<Judged, EventError> {
    check_store(context, purchase.store.as_deref())?;
    let maximum = context.settings.purchase_amount_max;
    if purchase.amount.0 > maximum {
        return Err(EventError::AmountAboveMaximum { maximum });
    }
    let (member_id, created) = match (member_of(world, context.tenant_id, member), member) {
        (Some(id), _) => (id, false),
        (None, MemberRef::Phone(phone)) => {
            let profile = profile.cloned().unwrap_or_default();
            (enrol(world, context, phone, profile), true)
        }
        (None, MemberRef::Id(_)) => return Err(EventError::MemberNotFound),
    };
    let loaded = world.members.get_mut(&member_id).expect("member loaded");
    let tier_before = loaded.state.tier.clone();
    let judged = context
        .judge
        .purchase(&mut loaded.state, context.event_id, purchase, context.at);
    let (outcome, record) = match judged {
        Ok(judged) => judged,
        Err(rejection) => {
            // A rejected event changes nothing: the member it would have enrolled is not made.
            if created {
                world.members.remove(&member_id);
                if let MemberRef::Phone(phone) = member {
                    world.phones.remove(&(context.tenant_id, phone.clone()));
                }
            }
            return Err(EventError::Rejected(rejection));
        }
    };
    world.purchases.insert(
        (context.tenant_id, context.event_id.clone()),
        PurchaseEntry {
            record,
            store: purchase.store.clone(),
            tier: Some(tier_before),
            refunded_before: 0,
            is_new: true,
            changed: false,
        },
    );
    Ok(Judged {
        member_id,
        outcome,
        created,
    })
}

/// A refund of `amount` of the original purchase, or (`None`) a void of all that is left.
/// A till's key may only refund or void its own store's sales.
fn judge_refund(
    world: &mut World,
    context: &Context<'_>,
    original: &EventId,
    amount: Option<Money>,
) -> Result<Judged, EventError> {
    let entry = world
        .purchases
        .get_mut(&(context.tenant_id, original.clone()))
        .ok_or(EventError::OriginalNotFound)?;
    if let Some(own) = context.store_scope {
        if entry.store.as_deref() != Some(own) {
            return Err(EventError::OtherStore {
                field: "original_id",
            });
        }
    }
    let member_id = entry.record.member_id;
    let loaded = world
        .members
        .get_mut(&member_id)
        .ok_or(EventError::MemberNotFound)?;
    let outcome = match amount {
        Some(amount) => context.judge.refund(
            &mut loaded.state,
            &mut entry.record,
            context.event_id,
            amount,
            context.at,
        ),
        None => context.judge.void(
            &mut loaded.state,
            &mut entry.record,
            context.event_id,
            context.at,
        ),
    }
    .map_err(EventError::Rejected)?;
    entry.changed = true;
    Ok(Judged::of(member_id, outcome))
}

/// A till's key may only use or cancel vouchers its store takes.
fn check_voucher_scope(context: &Context<'_>, reward: &Reward) -> Result<(), EventError> {
    match context.store_scope {
        Some(own) if !reward.is_usable_at(Some(own)) => {
            Err(EventError::OtherStore { field: "code" })
        }
        _ => Ok(()),
    }
}

/// Enrols by phone, or answers with the member who already has it.
fn judge_enrol(
    world: &mut World,
    context: &Context<'_>,
    phone: &Phone,
    profile: &Profile,
) -> Judged {
    if let Some(member_id) = world
        .phones
        .get(&(context.tenant_id, phone.clone()))
        .copied()
    {
        return Judged::of(member_id, Outcome::default());
    }
    let member_id = enrol(world, context, phone, profile.clone());
    let loaded = world.members.get_mut(&member_id).expect("member loaded");
    Judged {
        member_id,
        outcome: context.judge.engagement(
            &mut loaded.state,
            context.event_id,
            "sign_up",
            context.at,
        ),
        created: true,
    }
}

fn judge_redemption(
    world: &mut World,
    context: &Context<'_>,
    member: &MemberRef,
    reward_id: RewardId,
) -> Result<Judged, EventError> {
    let member_id =
        member_of(world, context.tenant_id, member).ok_or(EventError::MemberNotFound)?;
    let reward_entry = world
        .rewards
        .get_mut(&reward_id)
        .filter(|entry| entry.tenant_id == context.tenant_id)
        .ok_or(EventError::RewardNotFound)?;
    let held = world.held.entry((member_id, reward_id)).or_insert(0);
    let loaded = world.members.get_mut(&member_id).expect("member loaded");
    let outcome = context
        .judge
        .redeem(
            &mut loaded.state,
            &mut reward_entry.reward,
            *held,
            voucher_code(),
            context.event_id,
            context.at,
        )
        .map_err(EventError::Rejected)?;
    *held += 1;
    reward_entry.stock_changed |= reward_entry.reward.stock.is_some();
    let voucher = outcome
        .voucher
        .clone()
        .expect("a redemption issues a voucher");
    world.vouchers.insert(
        voucher.code.clone(),
        VoucherEntry {
            tenant_id: context.tenant_id,
            voucher,
            status_before: None,
            changed: true,
        },
    );
    Ok(Judged::of(member_id, outcome))
}

fn judge_voucher_use(
    world: &mut World,
    context: &Context<'_>,
    code: &str,
    store: Option<&str>,
) -> Result<Judged, EventError> {
    check_store(context, store)?;
    let entry = world
        .vouchers
        .get_mut(code)
        .filter(|entry| entry.tenant_id == context.tenant_id)
        .ok_or(EventError::VoucherNotFound)?;
    let reward = &world
        .rewards
        .get(&entry.voucher.reward_id)
        .ok_or(EventError::RewardNotFound)?
        .reward;
    check_voucher_scope(context, reward)?;
    let mut outcome = context
        .judge
        .use_voucher(
            &mut entry.voucher,
            reward,
            store,
            context.event_id,
            context.at,
        )
        .map_err(EventError::Rejected)?;
    entry.changed = true;
    outcome.voucher = Some(entry.voucher.clone());
    Ok(Judged::of(entry.voucher.member_id, outcome))
}

fn judge_voucher_cancel(
    world: &mut World,
    context: &Context<'_>,
    code: &str,
) -> Result<Judged, EventError> {
    let entry = world
        .vouchers
        .get_mut(code)
        .filter(|entry| entry.tenant_id == context.tenant_id)
        .ok_or(EventError::VoucherNotFound)?;
    let member_id = entry.voucher.member_id;
    let reward_entry = world
        .rewards
        .get_mut(&entry.voucher.reward_id)
        .ok_or(EventError::RewardNotFound)?;
    check_voucher_scope(context, &reward_entry.reward)?;
    let loaded = world
        .members
        .get_mut(&member_id)
        .ok_or(EventError::MemberNotFound)?;
    let mut outcome = context
        .judge
        .cancel_voucher(
            &mut loaded.state,
            &mut entry.voucher,
            &mut reward_entry.reward,
            context.event_id,
            context.at,
        )
        .map_err(EventError::Rejected)?;
    entry.changed = true;
    reward_entry.stock_changed |= reward_entry.reward.stock.is_some();
    if let Some(held) = world.held.get_mut(&(member_id, entry.voucher.reward_id)) {
        *held -= 1;
    }
    outcome.voucher = Some(entry.voucher.clone());
    Ok(Judged::of(member_id, outcome))
}

fn enrol(
    world: &mut World,
    context: &Context<'_>,
    phone: &Phone,
    mut profile: Profile,
) -> MemberId {
    let id = MemberId::new();
    let tenant_id = context.tenant_id;
    let base_tier = context.judge.programme.base_tier_code();
    let at = context.at;
    profile.phone = Some(phone.clone());
    world.members.insert(
        id,
        Loaded {
            tenant_id,
            state: MemberState::new(id, profile, base_tier, at),
            touched: true,
            quarantined: false,
            erased: false,
            figures: None,
        },
    );
    world.phones.insert((tenant_id, phone.clone()), id);
    id
}

fn record_outcome(
    world: &mut World,
    event: &IncomingEvent,
    settings: &TenantSettings,
    programme_version: i64,
    judged: Judged,
) -> EventResult {
    let Judged {
        member_id,
        outcome,
        created,
    } = judged;
    let loaded = world.members.get_mut(&member_id);
    let at = event.occurred_at;
    let (balance, available, pending, tier, holdings) = match loaded {
        Some(loaded) => {
            loaded.touched = true;
            let state = &loaded.state;
            (
                state.balance.0,
                state.lots.available(at).0,
                state.lots.pending(at).0,
                Some(state.tier.clone()),
                state
                    .holdings
                    .iter()
                    .map(|(asset, holding)| (asset.name().into_owned(), holding.balance))
                    .collect(),
            )
        }
        None => (0, 0, 0, None, Default::default()),
    };
    for mut transaction in outcome.transactions {
        // Who sent the event, in each transaction's reason, so a member's history names them.
        if let (Some(actor), Some(reason)) = (&event.actor, transaction.reason.as_object_mut()) {
            reason.insert("actor".into(), actor.as_str().into());
        }
        world.writes.transactions.push((
            event.tenant_id,
            event.id.as_str().to_owned(),
            at,
            transaction,
        ));
    }
    for recorded in &outcome.allocations {
        world
            .writes
            .allocations
            .push((recorded.transaction_id, recorded.allocation));
    }
    let tier_change = outcome.tier_change.map(|change| {
        let view = TierChangeView {
            from: change.from.clone(),
            to: change.to.clone(),
            reason: change.reason.as_str().to_owned(),
        };
        world.writes.tier_changes.push((
            event.tenant_id,
            member_id,
            event.id.as_str().to_owned(),
            at,
            change,
        ));
        view
    });
    let voucher = outcome.voucher.map(|voucher| {
        let reward_name = world
            .rewards
            .get(&voucher.reward_id)
            .map(|entry| entry.reward.name.clone())
            .unwrap_or_default();
        voucher_view(&voucher, reward_name, settings.zone)
    });
    EventResult {
        event_id: event.id.as_str().to_owned(),
        kind: event.kind.name().to_owned(),
        member_id: Some(member_id.to_string()),
        programme_version: Some(programme_version),
        points_earned: outcome.points_earned.0,
        points_spent: outcome.points_spent.0,
        points_taken_back: outcome.points_taken_back.0,
        points_returned: outcome.points_returned.0,
        balance,
        available,
        pending,
        tier,
        tier_change,
        lines: outcome.lines,
        voucher,
        member_created: created,
        holdings,
    }
}

pub(crate) fn voucher_view(
    voucher: &Voucher,
    reward_name: String,
    zone: chrono_tz::Tz,
) -> VoucherView {
    VoucherView {
        code: voucher.code.clone(),
        reward_id: voucher.reward_id.to_string(),
        reward_name,
        cost: voucher.cost.0,
        status: voucher.status.as_str().to_owned(),
        issued_at: rfc3339(voucher.issued_at, zone),
        expires_at: rfc3339(voucher.expires_at, zone),
        used_at: voucher.used_at.map(|at| rfc3339(at, zone)),
        used_store: voucher.used_store.clone(),
    }
}

// ---------------------------------------------------------------------------------------------
// Loading

async fn load(
    db: &mut Tx<'_>,
    world: &mut World,
    events: &[IncomingEvent],
) -> Result<(), StoreError> {
    let backend = db.backend();
    let locked: Option<HashSet<MemberId>> = match backend {
        Backend::Postgres => Some(lock_rows(db, events).await?),
        // SQLite: `BEGIN IMMEDIATE` holds the file's write lock for the whole transaction.
        Backend::Sqlite => None,
    };
    let mut keys_by_tenant: HashMap<TenantId, Vec<String>> = HashMap::new();
    let mut originals_by_tenant: HashMap<TenantId, Vec<String>> = HashMap::new();
    let mut codes: Vec<String> = Vec::new();
    let mut reward_ids: Vec<String> = Vec::new();
    for event in events {
        keys_by_tenant
            .entry(event.tenant_id)
            .or_default()
            .push(event.id.as_str().to_owned());
        match &event.kind {
            IncomingKind::Refund { original, .. } | IncomingKind::Void { original } => {
                originals_by_tenant
                    .entry(event.tenant_id)
                    .or_default()
                    .push(original.as_str().to_owned())
            }
            IncomingKind::VoucherUse { code, .. } | IncomingKind::VoucherCancel { code } => {
                codes.push(code.clone())
            }
            IncomingKind::Redemption { reward_id, .. } => reward_ids.push(reward_id.to_string()),
            _ => {}
        }
    }
    for (tenant_id, keys) in &keys_by_tenant {
        load_existing(db, world, *tenant_id, keys).await?;
    }
    let mut restore_lots = Vec::new();
    for (tenant_id, originals) in &originals_by_tenant {
        restore_lots.extend(load_purchases(db, world, *tenant_id, originals).await?);
    }
    restore_lots.extend(load_vouchers(db, world, &codes).await?);
    reward_ids.extend(
        world
            .vouchers
            .values()
            .map(|entry| entry.voucher.reward_id.to_string()),
    );
    load_rewards(db, world, &reward_ids).await?;

    let mut member_ids: HashSet<String> = HashSet::new();
    let mut phones_by_tenant: HashMap<TenantId, Vec<String>> = HashMap::new();
    for event in events {
        let reference = match &event.kind {
            IncomingKind::Purchase { member, .. }
            | IncomingKind::Engagement { member, .. }
            | IncomingKind::Redemption { member, .. }
            | IncomingKind::Adjustment { member, .. }
            | IncomingKind::TierHold { member, .. } => Some(member.clone()),
            IncomingKind::Enrol { phone, .. } => Some(MemberRef::Phone(phone.clone())),
            _ => None,
        };
        match reference {
            Some(MemberRef::Id(id)) => {
                member_ids.insert(id.to_string());
            }
            Some(MemberRef::Phone(phone)) => phones_by_tenant
                .entry(event.tenant_id)
                .or_default()
                .push(phone.as_str().to_owned()),
            None => {}
        }
    }
    member_ids.extend(
        world
            .purchases
            .values()
            .map(|entry| entry.record.member_id.to_string()),
    );
    member_ids.extend(
        world
            .vouchers
            .values()
            .map(|entry| entry.voucher.member_id.to_string()),
    );
    let member_ids: Vec<String> = member_ids.into_iter().collect();
    if !member_ids.is_empty() {
        let sql = by_keys(backend, &format!("{MEMBER_SELECT} WHERE"), "id", 1, true);
        let rows = db.fetch(&sql, vec![Bind::Texts(member_ids)]).await?;
        add_members(world, rows)?;
    }
    for (tenant_id, phones) in phones_by_tenant {
        let sql = by_keys(
            backend,
            &format!("{MEMBER_SELECT} WHERE tenant_id = $1 AND"),
            "phone",
            2,
            true,
        );
        let rows = db
            .fetch(
                &sql,
                vec![tenant_id.to_string().into(), Bind::Texts(phones)],
            )
            .await?;
        add_members(world, rows)?;
    }
    load_member_details(db, world, &restore_lots).await?;
    if let Some(locked) = locked {
        // A member another writer created, or a voucher a merge moved, after the locks were
        // taken: what was read of it may already be stale. Run the batch again.
        if let Some(id) = world.members.keys().find(|id| !locked.contains(*id)) {
            return Err(StoreError::Retry(format!(
                "member {id} appeared after the batch took its locks"
            )));
        }
    }
    for loaded in world.members.values_mut() {
        loaded.figures = Some(MemberFigures::of(&loaded.state, loaded.erased));
        if !loaded.quarantined && !loaded.state.is_consistent() {
            let message = format!(
                "stored balance {} differs from the sum of its lots {}",
                loaded.state.balance.0,
                loaded.state.lots.total().0
            );
            tracing::error!(member_id = %loaded.state.id, %message, "member quarantined");
            loaded.quarantined = true;
            world
                .quarantine
                .push((loaded.tenant_id, loaded.state.id, message));
        }
    }
    load_held(db, world, events).await
}

/// PostgreSQL: takes the row locks of every member, voucher and reward the batch may change
/// (`SELECT … FOR UPDATE`), so that another writer — a second server, an importer, a job —
/// waits for this transaction instead of changing them under it. Under READ COMMITTED each
/// later statement of the batch then reads what the previous holder committed. Locks are taken
/// members first, then vouchers, then rewards, each in key order, the same order every writer
/// uses, so writers queue behind each other instead of deadlocking. Answers the members locked.
async fn lock_rows(
    db: &mut Tx<'_>,
    events: &[IncomingEvent],
) -> Result<HashSet<MemberId>, StoreError> {
    let mut member_ids: HashSet<String> = HashSet::new();
    let mut phones: HashMap<TenantId, Vec<String>> = HashMap::new();
    let mut originals: HashMap<TenantId, Vec<String>> = HashMap::new();
    let mut codes: Vec<String> = Vec::new();
    let mut reward_ids: HashSet<String> = HashSet::new();
    for event in events {
        let tenant_id = event.tenant_id;
        match &event.kind {
            IncomingKind::Purchase { member, .. }
            | IncomingKind::Engagement { member, .. }
            | IncomingKind::Adjustment { member, .. }
            | IncomingKind::TierHold { member, .. } => match member {
                MemberRef::Id(id) => {
                    member_ids.insert(id.to_string());
                }
                MemberRef::Phone(phone) => phones
                    .entry(tenant_id)
                    .or_default()
                    .push(phone.as_str().into()),
            },
            IncomingKind::Redemption { member, reward_id } => {
                reward_ids.insert(reward_id.to_string());
                match member {
                    MemberRef::Id(id) => {
                        member_ids.insert(id.to_string());
                    }
                    MemberRef::Phone(phone) => phones
                        .entry(tenant_id)
                        .or_default()
                        .push(phone.as_str().into()),
                }
            }
            IncomingKind::Enrol { phone, .. } => phones
                .entry(tenant_id)
                .or_default()
                .push(phone.as_str().into()),
            IncomingKind::Refund { original, .. } | IncomingKind::Void { original } => originals
                .entry(tenant_id)
                .or_default()
                .push(original.as_str().into()),
            IncomingKind::VoucherUse { code, .. } | IncomingKind::VoucherCancel { code } => {
                codes.push(code.clone())
            }
        }
    }
    for (tenant_id, phones) in phones {
        let sql = by_keys(
            Backend::Postgres,
            "SELECT id AS member_id FROM members WHERE tenant_id = $1 AND",
            "phone",
            2,
            true,
        );
        for row in db
            .fetch(
                &sql,
                vec![tenant_id.to_string().into(), Bind::Texts(phones)],
            )
            .await?
        {
            member_ids.insert(row.text("member_id")?);
        }
    }
    for (tenant_id, originals) in originals {
        let sql = by_keys(
            Backend::Postgres,
            "SELECT member_id FROM events WHERE tenant_id = $1 AND kind = 'purchase' AND",
            "event_id",
            2,
            true,
        );
        for row in db
            .fetch(
                &sql,
                vec![tenant_id.to_string().into(), Bind::Texts(originals)],
            )
            .await?
        {
            member_ids.insert(row.text("member_id")?);
        }
    }
    if !codes.is_empty() {
        let sql = "SELECT member_id, reward_id FROM vouchers WHERE code = ANY($1)";
        for row in db.fetch(sql, vec![Bind::Texts(codes.clone())]).await? {
            member_ids.insert(row.text("member_id")?);
            reward_ids.insert(row.text("reward_id")?);
        }
    }
    let member_ids: Vec<String> = member_ids.into_iter().collect();
    let locked = lock_in_order(db, "members", "id", member_ids).await?;
    lock_in_order(db, "vouchers", "code", codes).await?;
    lock_in_order(db, "rewards", "id", reward_ids.into_iter().collect()).await?;
    locked.iter().map(|id| parse_member_id(id)).collect()
}

/// `SELECT key FROM table WHERE key = ANY(…) ORDER BY key FOR UPDATE`, so the locks are taken
/// in one global order; answers the keys found. `key` is the table's one-column primary key, so
/// the array probes its index whatever the statistics say.
pub(crate) async fn lock_in_order(
    db: &mut Tx<'_>,
    table: &str,
    key: &str,
    mut keys: Vec<String>,
) -> Result<Vec<String>, StoreError> {
    keys.sort_unstable();
    keys.dedup();
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let sql =
        format!("SELECT {key} AS key FROM {table} WHERE {key} = ANY($1) ORDER BY {key} FOR UPDATE");
    db.fetch(&sql, vec![Bind::Texts(keys)])
        .await?
        .iter()
        .map(|row| row.text("key"))
        .collect()
}

async fn load_existing(
    db: &mut Tx<'_>,
    world: &mut World,
    tenant_id: TenantId,
    keys: &[String],
) -> Result<(), StoreError> {
    let sql = by_keys(
        db.backend(),
        "SELECT event_id, body_hash, result FROM events WHERE tenant_id = $1 AND",
        "event_id",
        2,
        true,
    );
    let values = vec![tenant_id.to_string().into(), Bind::Texts(keys.to_vec())];
    for row in db.fetch(&sql, values).await? {
        let id = row.text("event_id")?;
        let id = EventId::parse(&id).map_err(|_| StoreError::Corrupt(format!("event id {id}")))?;
        world.existing.insert(
            (tenant_id, id),
            (row.text("body_hash")?, row.text("result")?),
        );
    }
    Ok(())
}

/// Loads the purchases refunds and voids name, with the lots their points were paid from;
/// returns those lots' ids (they may be emptied, and must be loaded to be refilled).
async fn load_purchases(
    db: &mut Tx<'_>,
    world: &mut World,
    tenant_id: TenantId,
    originals: &[String],
) -> Result<Vec<String>, StoreError> {
    let backend = db.backend();
    let mut lots = Vec::new();
    let sql = by_keys(
        backend,
        "SELECT event_id, kind, member_id, amount, eligible_amount, points_earned, lot_id, refunded_amount, \
         points_taken_back, month, occurred_at, store_code, points_returned, voided_at, tier FROM events \
         WHERE tenant_id = $1 AND",
        "event_id",
        2,
        true,
    );
    let values = vec![
        tenant_id.to_string().into(),
        Bind::Texts(originals.to_vec()),
    ];
    for row in db.fetch(&sql, values.clone()).await? {
        if row.text("kind")? != "purchase" {
            continue;
        }
        let id = row.text("event_id")?;
        let event_id =
            EventId::parse(&id).map_err(|_| StoreError::Corrupt(format!("event id {id}")))?;
        let record = PurchaseRecord {
            event_id: event_id.clone(),
            member_id: parse_member_id(&row.text("member_id")?)?,
            amount: Money(row.int("amount")?),
            eligible_amount: Money(row.int("eligible_amount")?),
            points_earned: Points(row.int("points_earned")?),
            lot_id: row
                .opt_text("lot_id")?
                .map(|id| parse_lot_id(&id))
                .transpose()?,
            refunded_amount: Money(row.int("refunded_amount")?),
            points_taken_back: Points(row.int("points_taken_back")?),
            payment: Vec::new(),
            // Purchases stored before points paid were returned have none recorded.
            points_returned: Points(row.opt_int("points_returned")?.unwrap_or(0)),
            voided: row.opt_int("voided_at")?.is_some(),
            month: i32::try_from(row.int("month")?)
                .map_err(|_| StoreError::Corrupt(format!("event {id}: month")))?,
            occurred_at: from_micros(row.int("occurred_at")?),
        };
        world.purchases.insert(
            (tenant_id, event_id),
            PurchaseEntry {
                refunded_before: record.refunded_amount.0,
                record,
                store: row.opt_text("store_code")?,
                tier: row.opt_text("tier")?,
                is_new: false,
                changed: false,
            },
        );
    }
    // The payment's allocations in the order they were spent (expiring first, then the
    // oldest), the order `Lots::spend` took them in.
    let sql = by_keys(
        backend,
        "SELECT t.event_id, a.lot_id, a.points, l.expires_at, l.created_at FROM ledger_transactions t \
         JOIN lot_allocations a ON a.transaction_id = t.id JOIN lots l ON l.id = a.lot_id \
         WHERE t.tenant_id = $1 AND t.kind = 'payment' AND",
        "t.event_id",
        2,
        false,
    );
    let mut allocations: Vec<(String, Option<i64>, i64, String, i64)> = Vec::new();
    for row in db.fetch(&sql, values).await? {
        allocations.push((
            row.text("event_id")?,
            row.opt_int("expires_at")?,
            row.int("created_at")?,
            row.text("lot_id")?,
            row.int("points")?,
        ));
    }
    allocations.sort_by(|a, b| {
        (&a.0, a.1.is_none(), a.1, a.2, &a.3).cmp(&(&b.0, b.1.is_none(), b.1, b.2, &b.3))
    });
    for (id, _, _, lot, points) in allocations {
        let event_id =
            EventId::parse(&id).map_err(|_| StoreError::Corrupt(format!("event id {id}")))?;
        let allocation = Allocation {
            lot_id: parse_lot_id(&lot)?,
            points: Points(points),
        };
        if let Some(entry) = world.purchases.get_mut(&(tenant_id, event_id)) {
            entry.record.payment.push(allocation);
            lots.push(lot);
        }
    }
    Ok(lots)
}

/// Loads vouchers by code; returns the lots their cancellation may need to restore.
async fn load_vouchers(
    db: &mut Tx<'_>,
    world: &mut World,
    codes: &[String],
) -> Result<Vec<String>, StoreError> {
    let mut lots = Vec::new();
    if codes.is_empty() {
        return Ok(lots);
    }
    let sql = format!(
        "{VOUCHER_SELECT} WHERE {}",
        crate::sql::one_of(db.backend(), "code", 1)
    );
    for row in db.fetch(&sql, vec![Bind::Texts(codes.to_vec())]).await? {
        let (tenant_id, voucher) = voucher_from(&row)?;
        lots.extend(
            voucher
                .allocations
                .iter()
                .map(|allocation| allocation.lot_id.to_string()),
        );
        world.vouchers.insert(
            voucher.code.clone(),
            VoucherEntry {
                tenant_id,
                status_before: Some(voucher.status),
                voucher,
                changed: false,
            },
        );
    }
    Ok(lots)
}

pub(crate) const VOUCHER_SELECT: &str =
    "SELECT code, tenant_id, member_id, reward_id, cost, status, redemption_transaction, allocations, issued_at, \
     expires_at, used_at, used_store FROM vouchers";

pub(crate) fn voucher_from(row: &Row) -> Result<(TenantId, Voucher), StoreError> {
    let status = row.text("status")?;
    let allocations: Vec<(String, i64)> = serde_json::from_str(&row.text("allocations")?)
        .map_err(|error| StoreError::Corrupt(format!("voucher allocations: {error}")))?;
    let allocations = allocations
        .into_iter()
        .map(|(lot, points)| {
            Ok(Allocation {
                lot_id: parse_lot_id(&lot)?,
                points: Points(points),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let voucher = Voucher {
        code: row.text("code")?,
        member_id: parse_member_id(&row.text("member_id")?)?,
        reward_id: RewardId::parse(&row.text("reward_id")?)
            .map_err(|error| StoreError::Corrupt(error.to_string()))?,
        cost: Points(row.int("cost")?),
        status: VoucherStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("voucher status {status}")))?,
        redemption_transaction: TransactionId::parse(&row.text("redemption_transaction")?)
            .map_err(|error| StoreError::Corrupt(error.to_string()))?,
        allocations,
        issued_at: from_micros(row.int("issued_at")?),
        expires_at: from_micros(row.int("expires_at")?),
        used_at: row.opt_int("used_at")?.map(from_micros),
        used_store: row.opt_text("used_store")?,
    };
    Ok((parse_tenant_id(&row.text("tenant_id")?)?, voucher))
}

pub(crate) fn parse_tenant_id(text: &str) -> Result<TenantId, StoreError> {
    TenantId::parse(text).map_err(|_| StoreError::Corrupt(format!("tenant id {text}")))
}

async fn load_rewards(
    db: &mut Tx<'_>,
    world: &mut World,
    ids: &[String],
) -> Result<(), StoreError> {
    let ids: Vec<String> = ids
        .iter()
        .cloned()
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "{REWARD_SELECT} WHERE {}",
        crate::sql::one_of(db.backend(), "id", 1)
    );
    for row in db.fetch(&sql, vec![Bind::Texts(ids)]).await? {
        let (tenant_id, reward) = reward_from(&row)?;
        world.rewards.insert(
            reward.id,
            RewardEntry {
                tenant_id,
                reward,
                stock_changed: false,
            },
        );
    }
    Ok(())
}

pub(crate) const REWARD_SELECT: &str =
    "SELECT id, tenant_id, name, description, cost, stock, per_member_limit, valid_from, \
     valid_until, stores, voucher_valid_days, active FROM rewards";

pub(crate) fn reward_from(row: &Row) -> Result<(TenantId, Reward), StoreError> {
    let stores: Vec<String> = serde_json::from_str(&row.text("stores")?)
        .map_err(|error| StoreError::Corrupt(format!("reward stores: {error}")))?;
    let reward = Reward {
        id: RewardId::parse(&row.text("id")?)
            .map_err(|error| StoreError::Corrupt(error.to_string()))?,
        name: row.text("name")?,
        description: row.text("description")?,
        cost: Points(row.int("cost")?),
        stock: row.opt_int("stock")?,
        per_member_limit: row.opt_int("per_member_limit")?,
        valid_from: row.opt_int("valid_from")?.map(from_micros),
        valid_until: row.opt_int("valid_until")?.map(from_micros),
        stores,
        voucher_valid_days: u32::try_from(row.int("voucher_valid_days")?)
            .map_err(|_| StoreError::Corrupt("reward voucher_valid_days".into()))?,
        active: row.flag("active")?,
    };
    Ok((parse_tenant_id(&row.text("tenant_id")?)?, reward))
}

pub(crate) const MEMBER_SELECT: &str = "SELECT id, tenant_id, phone, email, name, birthday, gender, city, tags, attributes, \
     tier, tier_since, tier_below_since, tier_held_until, points_balance, lifetime_spend, lifetime_points, order_count, \
     day_key, day_points, rule_hits, created_at, quarantined_at, erased_at FROM members";

fn corrupt(what: &str) -> impl Fn(serde_json::Error) -> StoreError + '_ {
    move |error| StoreError::Corrupt(format!("{what}: {error}"))
}

fn parse_day(text: Option<String>) -> Option<chrono::NaiveDate> {
    text.and_then(|day| chrono::NaiveDate::parse_from_str(&day, "%Y-%m-%d").ok())
}

/// A member of [`MEMBER_SELECT`], and whether it is quarantined.
pub(crate) fn member_from(row: &Row) -> Result<(TenantId, MemberState), StoreError> {
    let id = parse_member_id(&row.text("id")?)?;
    let tenant_id = parse_tenant_id(&row.text("tenant_id")?)?;
    let profile = crate::members::profile_from_row(row)?;
    let mut state = MemberState::new(
        id,
        profile,
        &row.text("tier")?,
        from_micros(row.int("created_at")?),
    );
    state.tier_since = from_micros(row.int("tier_since")?);
    state.tier_below_since = row.opt_int("tier_below_since")?.map(from_micros);
    state.tier_held_until = row.opt_int("tier_held_until")?.map(from_micros);
    state.balance = Points(row.int("points_balance")?);
    state.lifetime_spend = Money(row.int("lifetime_spend")?);
    state.lifetime_points = Points(row.int("lifetime_points")?);
    state.order_count = row.int("order_count")?;
    state.day = parse_day(row.opt_text("day_key")?);
    state.day_points = Points(row.int("day_points")?);
    state.rule_hits =
        serde_json::from_str(&row.text("rule_hits")?).map_err(corrupt("member rule hits"))?;
    Ok((tenant_id, state))
}

/// Whether a row of [`MEMBER_SELECT`] is a quarantined member.
pub(crate) fn is_quarantined_row(row: &Row) -> Result<bool, StoreError> {
    Ok(row.opt_int("quarantined_at")?.is_some())
}

fn add_members(world: &mut World, rows: Vec<Row>) -> Result<(), StoreError> {
    for row in rows {
        let (tenant_id, state) = member_from(&row)?;
        if let Some(phone) = &state.profile.phone {
            world.phones.insert((tenant_id, phone.clone()), state.id);
        }
        let quarantined = is_quarantined_row(&row)?;
        let erased = row.opt_int("erased_at")?.is_some();
        world.members.entry(state.id).or_insert(Loaded {
            tenant_id,
            state,
            touched: false,
            quarantined,
            erased,
            figures: None,
        });
    }
    Ok(())
}

pub(crate) const LOT_SELECT: &str =
    "SELECT id, member_id, asset, earned, remaining, matures_at, expires_at, created_at FROM lots";

pub(crate) fn lot_from(row: &Row) -> Result<(MemberId, Asset, Lot), StoreError> {
    Ok((
        parse_member_id(&row.text("member_id")?)?,
        parse_asset(&row.text("asset")?)?,
        Lot {
            id: parse_lot_id(&row.text("id")?)?,
            earned: Points(row.int("earned")?),
            remaining: Points(row.int("remaining")?),
            matures_at: from_micros(row.int("matures_at")?),
            expires_at: row.opt_int("expires_at")?.map(from_micros),
            created_at: from_micros(row.int("created_at")?),
        },
    ))
}

/// Loads open lots and monthly totals of every loaded member, and the (possibly emptied) lots
/// that cancelled vouchers and refunded payments return points to.
async fn load_member_details(
    db: &mut Tx<'_>,
    world: &mut World,
    restore_lots: &[String],
) -> Result<(), StoreError> {
    let backend = db.backend();
    let ids: Vec<String> = world.members.keys().map(|id| id.to_string()).collect();
    let details = load_member_details_of(db, ids).await?;
    for (member_id, loaded) in world.members.iter_mut() {
        details.apply(member_id, &mut loaded.state);
    }
    if !restore_lots.is_empty() {
        let sql = format!(
            "{LOT_SELECT} WHERE {}",
            crate::sql::one_of(backend, "id", 1)
        );
        for row in db
            .fetch(&sql, vec![Bind::Texts(restore_lots.to_vec())])
            .await?
        {
            let (member_id, _, lot) = lot_from(&row)?;
            if let Some(loaded) = world.members.get_mut(&member_id) {
                loaded.state.lots.insert_loaded(lot);
            }
        }
    }
    Ok(())
}

/// What is loaded of members besides their row: open lots of every asset, balances of assets
/// other than points, monthly totals.
#[derive(Default)]
pub(crate) struct MemberDetails {
    lots: HashMap<MemberId, Vec<(Asset, Lot)>>,
    balances: HashMap<MemberId, Vec<(Asset, i64)>>,
    periods: HashMap<MemberId, Vec<(i32, PeriodTotals)>>,
}

impl MemberDetails {
    /// Puts what was loaded of `member_id` into its state.
    pub(crate) fn apply(&self, member_id: &MemberId, state: &mut MemberState) {
        let mut points = Vec::new();
        let mut holdings: BTreeMap<Asset, Vec<Lot>> = BTreeMap::new();
        for (asset, lot) in self.lots.get(member_id).into_iter().flatten() {
            match asset {
                Asset::Points => points.push(lot.clone()),
                other => holdings.entry(other.clone()).or_default().push(lot.clone()),
            }
        }
        state.lots = Lots::new(points);
        state.holdings.clear();
        for (asset, balance) in self.balances.get(member_id).into_iter().flatten() {
            state.holdings.entry(asset.clone()).or_default().balance = *balance;
        }
        for (asset, lots) in holdings {
            state.holdings.entry(asset).or_default().lots = Lots::new(lots);
        }
        for (month, totals) in self.periods.get(member_id).into_iter().flatten() {
            state.periods.insert(*month, *totals);
        }
    }
}

/// The open lots, other balances and monthly totals of the members `ids`.
pub(crate) async fn load_member_details_of(
    db: &mut Tx<'_>,
    ids: Vec<String>,
) -> Result<MemberDetails, StoreError> {
    let backend = db.backend();
    let mut details = MemberDetails::default();
    if ids.is_empty() {
        return Ok(details);
    }
    let sql = by_keys(
        backend,
        &format!("{LOT_SELECT} WHERE remaining <> 0 AND"),
        "member_id",
        1,
        false,
    );
    for row in db.fetch(&sql, vec![Bind::Texts(ids.clone())]).await? {
        let (member_id, asset, lot) = lot_from(&row)?;
        details
            .lots
            .entry(member_id)
            .or_default()
            .push((asset, lot));
    }
    let sql = by_keys(
        backend,
        "SELECT member_id, asset, balance FROM member_balances WHERE",
        "member_id",
        1,
        false,
    );
    for row in db.fetch(&sql, vec![Bind::Texts(ids.clone())]).await? {
        let member_id = parse_member_id(&row.text("member_id")?)?;
        details
            .balances
            .entry(member_id)
            .or_default()
            .push((parse_asset(&row.text("asset")?)?, row.int("balance")?));
    }
    let sql = by_keys(
        backend,
        "SELECT member_id, month, spend, points FROM member_periods WHERE",
        "member_id",
        1,
        false,
    );
    for row in db.fetch(&sql, vec![Bind::Texts(ids)]).await? {
        let member_id = parse_member_id(&row.text("member_id")?)?;
        let month = i32::try_from(row.int("month")?)
            .map_err(|_| StoreError::Corrupt(format!("member {member_id}: month")))?;
        details.periods.entry(member_id).or_default().push((
            month,
            PeriodTotals {
                spend: Money(row.int("spend")?),
                points: Points(row.int("points")?),
            },
        ));
    }
    Ok(details)
}

pub(crate) fn parse_asset(text: &str) -> Result<Asset, StoreError> {
    Asset::parse(text).ok_or_else(|| StoreError::Corrupt(format!("asset {text}")))
}

async fn load_held(
    db: &mut Tx<'_>,
    world: &mut World,
    events: &[IncomingEvent],
) -> Result<(), StoreError> {
    let mut pairs: HashSet<(MemberId, RewardId)> = HashSet::new();
    for event in events {
        if let IncomingKind::Redemption { member, reward_id } = &event.kind {
            if let Some(member_id) = member_of(world, event.tenant_id, member) {
                pairs.insert((member_id, *reward_id));
            }
        }
    }
    for (member_id, reward_id) in pairs {
        let row = db
            .fetch_one(
                "SELECT COUNT(*) AS held FROM vouchers WHERE member_id = $1 AND reward_id = $2 AND status <> 'cancelled'",
                vec![member_id.to_string().into(), reward_id.to_string().into()],
            )
            .await?;
        world.held.insert((member_id, reward_id), row.int("held")?);
    }
    Ok(())
}

pub(crate) fn parse_member_id(text: &str) -> Result<MemberId, StoreError> {
    MemberId::parse(text).map_err(|_| StoreError::Corrupt(format!("member id {text}")))
}

pub(crate) fn parse_lot_id(text: &str) -> Result<LotId, StoreError> {
    LotId::parse(text).map_err(|_| StoreError::Corrupt(format!("lot id {text}")))
}

// ---------------------------------------------------------------------------------------------
// Writing

async fn write(db: &mut Tx<'_>, world: &mut World, now: Timestamp) -> Result<(), StoreError> {
    let backend = db.backend();
    let recorded_at = to_micros(now);
    let mut members = Rows::new(25);
    let mut lots = Rows::new(9);
    let mut periods = Rows::new(4);
    let mut balances = Rows::new(5);
    for (tenant_id, member_id, message) in world.quarantine.drain(..) {
        quarantine_in(db, tenant_id, member_id, &message, recorded_at).await?;
    }
    for loaded in world.members.values_mut().filter(|loaded| loaded.touched) {
        if !loaded.state.is_consistent() {
            return Err(StoreError::Invariant {
                member_id: loaded.state.id.to_string(),
                message: format!(
                    "after judging, balance {} differs from the sum of its lots {}",
                    loaded.state.balance.0,
                    loaded.state.lots.total().0
                ),
            });
        }
        members.push(member_row(loaded.tenant_id, &loaded.state, recorded_at));
        let member_id = loaded.state.id.to_string();
        let holdings = loaded
            .state
            .holdings
            .iter()
            .filter(|(_, holding)| holding.changed);
        for (asset, holding) in holdings {
            balances.push(vec![
                member_id.clone().into(),
                loaded.tenant_id.to_string().into(),
                asset.name().into_owned().into(),
                holding.balance.into(),
                recorded_at.into(),
            ]);
            for lot in holding.lots.changed() {
                lots.push(lot_row(loaded.tenant_id, &member_id, asset, lot));
            }
        }
        for lot in loaded.state.lots.changed() {
            lots.push(vec![
                lot.id.to_string().into(),
                loaded.tenant_id.to_string().into(),
                member_id.clone().into(),
                "points".into(),
                lot.earned.0.into(),
                lot.remaining.0.into(),
                to_micros(lot.matures_at).into(),
                lot.expires_at.map(to_micros).into(),
                to_micros(lot.created_at).into(),
            ]);
        }
        for month in &loaded.state.periods_changed {
            let totals = loaded.state.periods[month];
            periods.push(vec![
                member_id.clone().into(),
                (*month as i64).into(),
                totals.spend.0.into(),
                totals.points.0.into(),
            ]);
        }
    }
    db.execute_all(members.statements(backend, MEMBER_INSERT,
            "ON CONFLICT (id) DO UPDATE SET tier = excluded.tier, tier_since = excluded.tier_since, \
             tier_below_since = excluded.tier_below_since, tier_held_until = excluded.tier_held_until, \
             points_balance = excluded.points_balance, lifetime_spend = excluded.lifetime_spend, \
             lifetime_points = excluded.lifetime_points, order_count = excluded.order_count, day_key = excluded.day_key, \
             day_points = excluded.day_points, rule_hits = excluded.rule_hits, updated_at = excluded.updated_at",
        ),
    )
    .await?;
    db.execute_all(lots.statements(backend, "INSERT INTO lots (id, tenant_id, member_id, asset, earned, remaining, matures_at, expires_at, created_at)",
            "ON CONFLICT (id) DO UPDATE SET remaining = excluded.remaining",
        ),
    )
    .await?;
    db.execute_all(balances.statements(
        backend,
        "INSERT INTO member_balances (member_id, tenant_id, asset, balance, updated_at)",
        "ON CONFLICT (member_id, asset) DO UPDATE SET balance = excluded.balance, updated_at = excluded.updated_at",
    ))
    .await?;
    db.execute_all(periods.statements(backend, "INSERT INTO member_periods (member_id, month, spend, points)",
            "ON CONFLICT (member_id, month) DO UPDATE SET spend = excluded.spend, points = excluded.points",
        ),
    )
    .await?;
    for values in world.writes.audits.drain(..) {
        db.execute(crate::audit::INSERT, values).await?;
    }
    let figures = figures_of(world);
    write_events(db, world, recorded_at).await?;
    write_ledger(db, &world.writes, recorded_at).await?;
    write_vouchers(db, world, recorded_at).await?;
    figures.write(db).await
}

/// What the batch changes of the kept figures (see [`crate::figures`]).
fn figures_of(world: &World) -> Figures {
    let mut figures = Figures::default();
    for loaded in world.members.values().filter(|loaded| loaded.touched) {
        let after = MemberFigures::of(&loaded.state, loaded.erased);
        match &loaded.figures {
            None => figures.joined(loaded.tenant_id, loaded.state.created_at, &after),
            Some(before) => figures.member(loaded.tenant_id, Some(before), &after),
        }
    }
    for ((tenant_id, event_id), entry) in &world.purchases {
        let record = &entry.record;
        let tier = entry.tier.as_deref().unwrap_or_default();
        let store = entry.store.as_deref();
        if entry.is_new {
            figures.purchase(
                *tenant_id,
                record.member_id,
                event_id.as_str(),
                record.occurred_at,
                store,
                tier,
                record.amount.0,
                record.refunded_amount.0,
            );
        } else if entry.changed {
            figures.add(
                *tenant_id,
                figure::REFUNDED,
                tier,
                store,
                Some(record.occurred_at),
                record
                    .refunded_amount
                    .0
                    .saturating_sub(entry.refunded_before),
            );
        }
    }
    let stores: HashMap<&str, &str> = world
        .writes
        .events
        .iter()
        .filter_map(|event| Some((event.event_id.as_str(), event.store_code.as_deref()?)))
        .collect();
    figures.transactions(
        world
            .writes
            .transactions
            .iter()
            .map(|(tenant_id, event_id, at, transaction)| {
                (*tenant_id, Some(event_id.as_str()), *at, transaction)
            }),
        &|event_id| stores.get(event_id).map(|store| (*store).to_owned()),
    );
    for entry in world.vouchers.values().filter(|entry| entry.changed) {
        figures.voucher(entry.tenant_id, entry.status_before, &entry.voucher);
    }
    figures
}

fn lot_row(tenant_id: TenantId, member_id: &str, asset: &Asset, lot: &Lot) -> Vec<Bind> {
    vec![
        lot.id.to_string().into(),
        tenant_id.to_string().into(),
        member_id.into(),
        asset.name().into_owned().into(),
        lot.earned.0.into(),
        lot.remaining.0.into(),
        to_micros(lot.matures_at).into(),
        lot.expires_at.map(to_micros).into(),
        to_micros(lot.created_at).into(),
    ]
}

/// Marks a member quarantined (its events are refused from now on) and writes the audit
/// record that reports it, in the caller's transaction.
pub(crate) async fn quarantine_in(
    db: &mut Tx<'_>,
    tenant_id: TenantId,
    member_id: MemberId,
    reason: &str,
    recorded_at: i64,
) -> Result<(), StoreError> {
    db.execute(
        "UPDATE members SET quarantined_at = $1, quarantine_reason = $2 WHERE id = $3 AND quarantined_at IS NULL",
        vec![recorded_at.into(), reason.into(), member_id.to_string().into()],
    )
    .await?;
    db.execute(
        crate::audit::INSERT,
        crate::audit::change_values(&crate::audit::Change {
            tenant_id,
            actor: &crate::audit::Actor("system".into()),
            action: "member.quarantined",
            subject: format!("member:{member_id}"),
            before: None,
            after: Some(serde_json::json!({ "reason": reason })),
        }),
    )
    .await?;
    Ok(())
}

/// Quarantines a member in a transaction of its own (when the event that showed the broken
/// invariant has failed, and with it its batch's transaction).
pub(crate) async fn quarantine(
    store: &Store,
    connection: Option<&mut rusqlite::Connection>,
    member_id: &str,
    reason: &str,
) -> Result<(), StoreError> {
    let member_id = parse_member_id(member_id)?;
    let mut db = Tx::for_writer(&store.db, connection).await?;
    let row = db
        .fetch_optional(
            "SELECT tenant_id FROM members WHERE id = $1",
            vec![member_id.to_string().into()],
        )
        .await?
        .ok_or(StoreError::NotFound { what: "member" })?;
    let tenant_id = parse_tenant_id(&row.text("tenant_id")?)?;
    let recorded_at = to_micros(chrono::Utc::now());
    quarantine_in(&mut db, tenant_id, member_id, reason, recorded_at).await?;
    db.commit().await
}

pub(crate) const MEMBER_INSERT: &str =
    "INSERT INTO members (id, tenant_id, phone, email, name, birthday, gender, city, tags, attributes, tier, \
     tier_since, tier_below_since, tier_held_until, points_balance, lifetime_spend, lifetime_points, order_count, \
     day_key, day_points, rule_hits, created_at, updated_at, search_name, search_phone)";

pub(crate) fn member_row(tenant_id: TenantId, state: &MemberState, recorded_at: i64) -> Vec<Bind> {
    let profile = &state.profile;
    vec![
        state.id.to_string().into(),
        tenant_id.to_string().into(),
        profile
            .phone
            .as_ref()
            .map(|phone| phone.as_str().to_owned())
            .into(),
        profile.email.clone().into(),
        profile.name.clone().into(),
        profile
            .birthday
            .map(|day| day.format("%Y-%m-%d").to_string())
            .into(),
        profile.gender.clone().into(),
        profile.city.clone().into(),
        serde_json::to_string(&profile.tags)
            .expect("tags serialise")
            .into(),
        serde_json::to_string(&profile.attributes)
            .expect("attributes serialise")
            .into(),
        state.tier.clone().into(),
        to_micros(state.tier_since).into(),
        state.tier_below_since.map(to_micros).into(),
        state.tier_held_until.map(to_micros).into(),
        state.balance.0.into(),
        state.lifetime_spend.0.into(),
        state.lifetime_points.0.into(),
        state.order_count.into(),
        state
            .day
            .map(|day| day.format("%Y-%m-%d").to_string())
            .into(),
        state.day_points.0.into(),
        serde_json::to_string(&state.rule_hits)
            .expect("rule hits serialise")
            .into(),
        to_micros(state.created_at).into(),
        recorded_at.into(),
        crate::members::search_name_key(profile).into(),
        crate::members::search_phone_key(profile).into(),
    ]
}

async fn write_events(
    db: &mut Tx<'_>,
    world: &mut World,
    recorded_at: i64,
) -> Result<(), StoreError> {
    let backend = db.backend();
    let mut rows = Rows::new(20);
    let mut outbox = Rows::new(crate::webhooks::OUTBOX_COLUMNS);
    let mut lines = Rows::new(7);
    for event in world.writes.events.drain(..) {
        for (line, item) in event.lines.iter().enumerate() {
            lines.push(vec![
                event.tenant_id.to_string().into(),
                event.event_id.as_str().into(),
                (line as i64).into(),
                item.sku.clone().into(),
                item.category.clone().into(),
                item.quantity.into(),
                item.amount.0.into(),
            ]);
        }
        if let Some(settings) = world.tenants.get(&event.tenant_id) {
            crate::webhooks::outbox_rows(
                &mut outbox,
                settings,
                event.kind,
                event.occurred_at,
                &event.result,
                recorded_at,
            );
        }
        let entry = world
            .purchases
            .get(&(event.tenant_id, event.event_id.clone()))
            .filter(|entry| entry.is_new);
        let purchase = entry.map(|entry| &entry.record);
        rows.push(vec![
            event.tenant_id.to_string().into(),
            event.event_id.as_str().into(),
            event.kind.into(),
            event.member_id.map(|id| id.to_string()).into(),
            to_micros(event.occurred_at).into(),
            recorded_at.into(),
            event.body_hash.into(),
            event.result.into(),
            event.store_code.into(),
            purchase.map(|record| record.amount.0).into(),
            purchase.map(|record| record.eligible_amount.0).into(),
            purchase.map(|record| record.points_earned.0).into(),
            purchase
                .and_then(|record| record.lot_id)
                .map(|id| id.to_string())
                .into(),
            purchase.map(|record| record.refunded_amount.0).into(),
            purchase.map(|record| record.points_taken_back.0).into(),
            purchase.map(|record| record.month as i64).into(),
            purchase.map(|record| record.points_returned.0).into(),
            purchase
                .filter(|record| record.voided)
                .map(|_| recorded_at)
                .into(),
            event.actor.into(),
            entry.and_then(|entry| entry.tier.clone()).into(),
        ]);
    }
    db.execute_all(rows.statements(backend, "INSERT INTO events (tenant_id, event_id, kind, member_id, occurred_at, recorded_at, body_hash, result, \
             store_code, amount, eligible_amount, points_earned, lot_id, refunded_amount, points_taken_back, month, \
             points_returned, voided_at, actor, tier)",
            "",
        ),
    )
    .await?;
    db.execute_all(outbox.statements(backend, crate::webhooks::OUTBOX_INSERT, ""))
        .await?;
    db.execute_all(lines.statements(
        backend,
        "INSERT INTO event_lines (tenant_id, event_id, line, sku, category, quantity, amount)",
        "",
    ))
    .await?;
    for ((tenant_id, event_id), entry) in &world.purchases {
        if entry.changed && !entry.is_new {
            db.execute(
                "UPDATE events SET refunded_amount = $1, points_taken_back = $2, points_returned = $3, \
                 voided_at = COALESCE(voided_at, $4) WHERE tenant_id = $5 AND event_id = $6",
                vec![
                    entry.record.refunded_amount.0.into(),
                    entry.record.points_taken_back.0.into(),
                    entry.record.points_returned.0.into(),
                    entry
                        .record
                        .voided
                        .then_some(recorded_at)
                        .into(),
                    tenant_id.to_string().into(),
                    event_id.as_str().into(),
                ],
            )
            .await?;
        }
    }
    Ok(())
}

/// Writes ledger transactions, their entries, allocations and tier history.
pub(crate) async fn write_ledger_rows(
    db: &mut Tx<'_>,
    transactions: &[(TenantId, Option<String>, Timestamp, Transaction)],
    allocations: &[(TransactionId, Allocation)],
    recorded_at: i64,
) -> Result<(), StoreError> {
    let backend = db.backend();
    let mut headers = Rows::new(8);
    let mut entries = Rows::new(6);
    for (tenant_id, event_id, at, transaction) in transactions {
        if !transaction.is_balanced() {
            return Err(StoreError::Invariant {
                member_id: transaction.member_id.to_string(),
                message: format!("transaction {} is not balanced", transaction.id),
            });
        }
        headers.push(vec![
            transaction.id.to_string().into(),
            tenant_id.to_string().into(),
            transaction.member_id.to_string().into(),
            event_id.clone().into(),
            transaction.kind.as_str().into(),
            transaction.reason.to_string().into(),
            to_micros(*at).into(),
            recorded_at.into(),
        ]);
        for entry in &transaction.entries {
            entries.push(vec![
                transaction.id.to_string().into(),
                tenant_id.to_string().into(),
                entry.account.name().into(),
                entry.account.member().map(|id| id.to_string()).into(),
                entry.asset.name().into_owned().into(),
                entry.amount.into(),
            ]);
        }
    }
    let mut allocation_rows = Rows::new(3);
    for (transaction_id, allocation) in allocations {
        allocation_rows.push(vec![
            transaction_id.to_string().into(),
            allocation.lot_id.to_string().into(),
            allocation.points.0.into(),
        ]);
    }
    db.execute_all(headers.statements(backend, "INSERT INTO ledger_transactions (id, tenant_id, member_id, event_id, kind, reason, occurred_at, recorded_at)",
            "",
        ),
    )
    .await?;
    db.execute_all(entries.statements(
        backend,
        "INSERT INTO ledger_entries (transaction_id, tenant_id, account, member_id, asset, amount)",
        "",
    ))
    .await?;
    db.execute_all(allocation_rows.statements(
        backend,
        "INSERT INTO lot_allocations (transaction_id, lot_id, points)",
        "",
    ))
    .await
}

async fn write_ledger(
    db: &mut Tx<'_>,
    writes: &Writes,
    recorded_at: i64,
) -> Result<(), StoreError> {
    let backend = db.backend();
    let transactions: Vec<_> = writes
        .transactions
        .iter()
        .map(|(tenant_id, event_id, at, transaction)| {
            (*tenant_id, Some(event_id.clone()), *at, transaction.clone())
        })
        .collect();
    write_ledger_rows(db, &transactions, &writes.allocations, recorded_at).await?;
    let mut tiers = Rows::new(9);
    for (tenant_id, member_id, event_id, at, change) in &writes.tier_changes {
        tiers.push(tier_row(
            *tenant_id,
            *member_id,
            Some(event_id.clone()),
            *at,
            change,
        ));
    }
    db.execute_all(tiers.statements(backend, TIER_INSERT, ""))
        .await
}

pub(crate) const TIER_INSERT: &str =
    "INSERT INTO tier_history (id, tenant_id, member_id, from_tier, to_tier, reason, qualifying_value, event_id, at)";

pub(crate) fn tier_row(
    tenant_id: TenantId,
    member_id: MemberId,
    event_id: Option<String>,
    at: Timestamp,
    change: &TierChange,
) -> Vec<Bind> {
    vec![
        uuid::Uuid::now_v7().to_string().into(),
        tenant_id.to_string().into(),
        member_id.to_string().into(),
        change.from.clone().into(),
        change.to.clone().into(),
        change.reason.as_str().into(),
        change.qualifying_value.into(),
        event_id.into(),
        to_micros(at).into(),
    ]
}

pub(crate) fn voucher_row(tenant_id: TenantId, voucher: &Voucher, recorded_at: i64) -> Vec<Bind> {
    let allocations: Vec<(String, i64)> = voucher
        .allocations
        .iter()
        .map(|allocation| (allocation.lot_id.to_string(), allocation.points.0))
        .collect();
    vec![
        voucher.code.clone().into(),
        tenant_id.to_string().into(),
        voucher.member_id.to_string().into(),
        voucher.reward_id.to_string().into(),
        voucher.cost.0.into(),
        voucher.status.as_str().into(),
        voucher.redemption_transaction.to_string().into(),
        serde_json::to_string(&allocations)
            .expect("allocations serialise")
            .into(),
        to_micros(voucher.issued_at).into(),
        to_micros(voucher.expires_at).into(),
        voucher.used_at.map(to_micros).into(),
        voucher.used_store.clone().into(),
        recorded_at.into(),
    ]
}

pub(crate) const VOUCHER_UPSERT: (&str, &str) = (
    "INSERT INTO vouchers (code, tenant_id, member_id, reward_id, cost, status, redemption_transaction, allocations, \
     issued_at, expires_at, used_at, used_store, updated_at)",
    "ON CONFLICT (code) DO UPDATE SET status = excluded.status, used_at = excluded.used_at, \
     used_store = excluded.used_store, updated_at = excluded.updated_at",
);

async fn write_vouchers(
    db: &mut Tx<'_>,
    world: &World,
    recorded_at: i64,
) -> Result<(), StoreError> {
    let backend = db.backend();
    let mut rows = Rows::new(13);
    for entry in world.vouchers.values().filter(|entry| entry.changed) {
        rows.push(voucher_row(entry.tenant_id, &entry.voucher, recorded_at));
    }
    db.execute_all(rows.statements(backend, VOUCHER_UPSERT.0, VOUCHER_UPSERT.1))
        .await?;
    for entry in world.rewards.values().filter(|entry| entry.stock_changed) {
        db.execute(
            "UPDATE rewards SET stock = $1 WHERE id = $2",
            vec![
                entry.reward.stock.into(),
                entry.reward.id.to_string().into(),
            ],
        )
        .await?;
    }
    Ok(())
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
