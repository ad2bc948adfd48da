//! Loading what a batch's events touch with a few set queries (members by id and phone,
//! their lots and totals, purchases refunded, vouchers, rewards), after taking the row locks
//! on PostgreSQL; and the row readers other modules share.

use super::*;

pub(super) async fn load(
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
pub(super) async fn lock_rows(
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

pub(super) async fn load_existing(
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
pub(super) async fn load_purchases(
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
pub(super) async fn load_vouchers(
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

pub(super) async fn load_rewards(
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

pub(super) fn corrupt(what: &str) -> impl Fn(serde_json::Error) -> StoreError + '_ {
    move |error| StoreError::Corrupt(format!("{what}: {error}"))
}

pub(super) fn parse_day(text: Option<String>) -> Option<chrono::NaiveDate> {
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

pub(super) fn add_members(world: &mut World, rows: Vec<Row>) -> Result<(), StoreError> {
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
pub(super) async fn load_member_details(
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

pub(super) async fn load_held(
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
