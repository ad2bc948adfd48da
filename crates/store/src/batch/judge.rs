//! Judging a batch's events in order, in memory, with the core: each event against the
//! world the batch loaded, its outcome recorded as rows to write and the answer to give.

use super::*;

/// What one event is judged with.
pub(super) struct Context<'a> {
    judge: Judge<'a>,
    settings: &'a TenantSettings,
    tenant_id: TenantId,
    event_id: &'a EventId,
    at: Timestamp,
    /// The sender's own store, when it is a till's key.
    store_scope: Option<&'a str>,
}

/// Whom an event concerned and what it did.
pub(super) struct Judged {
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
pub(super) fn judge(world: &mut World, event: &IncomingEvent) -> Answer {
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
pub(super) fn known_member<'w>(
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

pub(super) fn check_store(context: &Context<'_>, store: Option<&str>) -> Result<(), EventError> {
    match store {
        Some(store) if !context.settings.stores.iter().any(|known| known == store) => {
            Err(EventError::UnknownStore)
        }
        _ => Ok(()),
    }
}

/// A purchase; an unknown phone enrols its member on the spot.
pub(super) fn judge_purchase(
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
pub(super) fn judge_refund(
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
pub(super) fn check_voucher_scope(
    context: &Context<'_>,
    reward: &Reward,
) -> Result<(), EventError> {
    match context.store_scope {
        Some(own) if !reward.is_usable_at(Some(own)) => {
            Err(EventError::OtherStore { field: "code" })
        }
        _ => Ok(()),
    }
}

/// Enrols by phone, or answers with the member who already has it.
pub(super) fn judge_enrol(
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

pub(super) fn judge_redemption(
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

pub(super) fn judge_voucher_use(
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

pub(super) fn judge_voucher_cancel(
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

pub(super) fn enrol(
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

pub(super) fn record_outcome(
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
