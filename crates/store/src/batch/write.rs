//! Writing a judged batch: members, lots, balances, events and their lines, the ledger,
//! vouchers, and the kept figures, with a few multi-row statements.

use super::*;

pub(super) async fn write(
    db: &mut Tx<'_>,
    world: &mut World,
    now: Timestamp,
) -> Result<(), StoreError> {
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
pub(super) fn figures_of(world: &World) -> Figures {
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
            figures.profile(*tenant_id, record.member_id);
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
    for event in world
        .writes
        .events
        .iter()
        .filter(|event| event.kind == "purchase")
    {
        let Some(member_id) = event.member_id else {
            continue;
        };
        for item in event.lines.iter().filter(|item| !item.category.is_empty()) {
            figures.category(event.tenant_id, member_id, &item.category, item.amount.0);
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

pub(super) fn lot_row(tenant_id: TenantId, member_id: &str, asset: &Asset, lot: &Lot) -> Vec<Bind> {
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

pub(super) async fn write_events(
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
            crate::records::encode_answer(&event.result).into(),
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

pub(super) async fn write_ledger(
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

pub(super) async fn write_vouchers(
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
