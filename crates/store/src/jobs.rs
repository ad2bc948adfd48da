//! Scheduled work on member state: expiring lots (breakage), expiring vouchers, reviewing tiers.
//! Each runs in chunks inside the journal's writer (see `Journal::run_job`), so it never races
//! the events that change the same members.
//!
//! Maturity needs no job: a lot is spendable when `matures_at` has passed, computed at read
//! time, so pending points can never be released late or early.

use crate::batch::{
    is_quarantined_row, load_member_details_of, lock_in_order, member_from, parse_tenant_id,
    tier_row, voucher_from, write_ledger_rows, MEMBER_SELECT, TIER_INSERT, VOUCHER_SELECT,
    VOUCHER_UPSERT,
};
use crate::db::{Bind, Tx};
use crate::figures::{Figures, MemberFigures};
use crate::model::rfc3339;
use crate::sql::Rows;
use crate::webhooks::{OUTBOX_COLUMNS, OUTBOX_INSERT};
use crate::{Backend, Store, StoreError};
use patron_core::engine::{expire_lots, expire_voucher};
use patron_core::ledger::Transaction;
use patron_core::member::MemberState;
use patron_core::tiers;
use patron_core::time::{to_micros, Timestamp};
use patron_core::{MemberId, TenantId};
use std::collections::HashMap;

/// A maintenance job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobKind {
    /// Empty lots past their expiry and book the points as breakage.
    ExpireLots,
    /// Expire issued vouchers past their date.
    ExpireVouchers,
    /// Review every member's tier: upgrade, start grace, or drop one level.
    ReviewTiers,
    /// Tell subscribers (webhook topic `points.expiring`) about points that expire within
    /// [`EXPIRY_NOTICE_DAYS`], once per member and expiry instant.
    NotifyExpiring,
    /// Move the members' profile windows (spend and visits in the last 30/90/365 days) to
    /// today; compute every profile of a tenant that has none yet.
    KeepProfiles,
}

/// How far ahead `points.expiring` looks, in days.
pub const EXPIRY_NOTICE_DAYS: i64 = 7;

/// Members (or vouchers) handled per chunk.
pub const JOB_CHUNK_SIZE: usize = 500;

/// What a job did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobReport {
    /// Members or vouchers looked at.
    pub processed: u64,
    /// Points expired (lots and vouchers).
    pub points: i64,
    pub upgrades: u64,
    pub downgrades: u64,
    /// Where the next chunk starts; `None` when the job is done.
    pub next_cursor: Option<String>,
}

impl JobReport {
    pub fn add(&mut self, other: &JobReport) {
        self.processed += other.processed;
        self.points += other.points;
        self.upgrades += other.upgrades;
        self.downgrades += other.downgrades;
    }
}

pub(crate) async fn run_chunk(
    store: &Store,
    connection: Option<&mut rusqlite::Connection>,
    kind: JobKind,
    now: Timestamp,
    cursor: Option<String>,
) -> Result<JobReport, StoreError> {
    let mut db = Tx::for_writer(&store.db, connection).await?;
    let report = match kind {
        JobKind::ExpireLots => expire_lots_chunk(&mut db, now).await?,
        JobKind::ExpireVouchers => expire_vouchers_chunk(&mut db, now).await?,
        JobKind::ReviewTiers => {
            review_tiers_chunk(store, &mut db, now, cursor.unwrap_or_default()).await?
        }
        JobKind::NotifyExpiring => notify_expiring_chunk(store, &mut db, now).await?,
        JobKind::KeepProfiles => crate::profiles::roll_chunk(&mut db, now, cursor).await?,
    };
    db.commit().await?;
    Ok(report)
}

/// The column `id` of every row of a one-parameter query.
async fn ids_of(db: &mut Tx<'_>, sql: &str, value: Bind) -> Result<Vec<String>, StoreError> {
    db.fetch(sql, vec![value])
        .await?
        .iter()
        .map(|row| row.text("id"))
        .collect()
}

/// Loads members by id with their open lots and monthly totals.
async fn load_members(
    db: &mut Tx<'_>,
    ids: &[String],
) -> Result<HashMap<MemberId, (TenantId, MemberState, MemberFigures)>, StoreError> {
    let backend = db.backend();
    let mut members: HashMap<MemberId, (TenantId, MemberState, bool)> = HashMap::new();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    // Another writer (an event batch, another node's job) may hold some of these members: wait
    // for it, then read what it committed.
    if backend == Backend::Postgres {
        lock_in_order(db, "members", "id", ids.to_vec()).await?;
    }
    let sql = format!(
        "{MEMBER_SELECT} WHERE {}",
        crate::sql::one_of(backend, "id", 1)
    );
    for row in db.fetch(&sql, vec![Bind::Texts(ids.to_vec())]).await? {
        // A quarantined member waits for an operator; jobs leave it as it is.
        if is_quarantined_row(&row)? {
            continue;
        }
        let (tenant_id, state) = member_from(&row)?;
        let erased = row.opt_int("erased_at")?.is_some();
        members.insert(state.id, (tenant_id, state, erased));
    }
    let details = load_member_details_of(db, ids.to_vec()).await?;
    for (member_id, (_, state, _)) in members.iter_mut() {
        details.apply(member_id, state);
    }
    // The next event of an inconsistent member quarantines it (see `batch`); a job must not
    // judge it meanwhile.
    members.retain(|id, (_, state, _)| {
        let consistent = state.is_consistent();
        if !consistent {
            tracing::error!(member_id = %id, "a job skips a member whose balance differs from its lots");
        }
        consistent
    });
    // Each with what it adds to the kept figures as loaded.
    Ok(members
        .into_iter()
        .map(|(id, (tenant_id, state, erased))| {
            let figures = MemberFigures::of(&state, erased);
            (id, (tenant_id, state, figures))
        })
        .collect())
}

/// Writes a job's ledger transactions (which name no event and no store) and the kept figures
/// they and the job's other changes move.
async fn write_job_ledger(
    db: &mut Tx<'_>,
    transactions: &[(TenantId, Option<String>, Timestamp, Transaction)],
    mut figures: Figures,
    recorded_at: i64,
) -> Result<(), StoreError> {
    write_ledger_rows(db, transactions, &[], recorded_at).await?;
    figures.transactions(
        transactions
            .iter()
            .map(|(tenant_id, _, at, transaction)| (*tenant_id, None, *at, transaction)),
        &|_| None,
    );
    figures.write(db).await
}

async fn expire_lots_chunk(db: &mut Tx<'_>, now: Timestamp) -> Result<JobReport, StoreError> {
    let sql = format!("SELECT DISTINCT member_id AS id FROM lots WHERE expires_at <= $1 AND remaining > 0 LIMIT {JOB_CHUNK_SIZE}");
    let ids = ids_of(db, &sql, to_micros(now).into()).await?;
    let mut members = load_members(db, &ids).await?;
    let mut report = JobReport {
        processed: ids.len() as u64,
        ..JobReport::default()
    };
    let recorded_at = to_micros(chrono::Utc::now());
    let mut transactions: Vec<(TenantId, Option<String>, Timestamp, Transaction)> = Vec::new();
    let mut figures = Figures::default();
    for (tenant_id, state, before) in members.values_mut() {
        let erased = before.is_erased();
        if let Some(transaction) = expire_lots(state, now) {
            report.points -= transaction.member_delta().0;
            transactions.push((*tenant_id, None, now, transaction));
        }
        for lot in state.lots.changed() {
            db.execute(
                "UPDATE lots SET remaining = $1 WHERE id = $2",
                vec![lot.remaining.0.into(), lot.id.to_string().into()],
            )
            .await?;
        }
        db.execute(
            "UPDATE members SET points_balance = $1, updated_at = $2 WHERE id = $3",
            vec![
                state.balance.0.into(),
                recorded_at.into(),
                state.id.to_string().into(),
            ],
        )
        .await?;
        figures.member(*tenant_id, Some(before), &MemberFigures::of(state, erased));
    }
    write_job_ledger(db, &transactions, figures, recorded_at).await?;
    if ids.len() == JOB_CHUNK_SIZE {
        report.next_cursor = Some(String::new());
    }
    Ok(report)
}

/// One chunk of `points.expiring`: the (member, expiry) pairs inside the window not yet told,
/// each recorded in `expiry_notices` and, for tenants that subscribe, written to the outbox in
/// the same transaction. `processed` counts the pairs, `points` their points.
async fn notify_expiring_chunk(
    store: &Store,
    db: &mut Tx<'_>,
    now: Timestamp,
) -> Result<JobReport, StoreError> {
    let horizon = now + chrono::Duration::days(EXPIRY_NOTICE_DAYS);
    let sql = format!(
        "SELECT l.tenant_id, l.member_id, l.expires_at, SUM(l.remaining) AS points, m.phone FROM lots l \
         JOIN members m ON m.id = l.member_id \
         WHERE l.remaining > 0 AND l.expires_at > $1 AND l.expires_at <= $2 \
         AND NOT EXISTS (SELECT 1 FROM expiry_notices n WHERE n.member_id = l.member_id AND n.expires_at = l.expires_at) \
         GROUP BY l.tenant_id, l.member_id, l.expires_at, m.phone \
         ORDER BY l.expires_at, l.member_id LIMIT {JOB_CHUNK_SIZE}"
    );
    let rows = db
        .fetch(&sql, vec![to_micros(now).into(), to_micros(horizon).into()])
        .await?;
    let recorded_at = to_micros(chrono::Utc::now());
    let mut report = JobReport {
        processed: rows.len() as u64,
        ..JobReport::default()
    };
    let backend = db.backend();
    let mut notices = Rows::new(5);
    let mut outbox = Rows::new(OUTBOX_COLUMNS);
    for row in &rows {
        let (tenant, member, expires_at, points) = (
            row.text("tenant_id")?,
            row.text("member_id")?,
            row.int("expires_at")?,
            row.int("points")?,
        );
        report.points += points;
        notices.push(vec![
            tenant.as_str().into(),
            member.as_str().into(),
            expires_at.into(),
            points.into(),
            recorded_at.into(),
        ]);
        let tenant_id = parse_tenant_id(&tenant)?;
        let settings = store.tenant(tenant_id).await?;
        if !settings.webhook_topics.contains("points.expiring") {
            continue;
        }
        let expires = patron_core::time::from_micros(expires_at);
        let (id, payload) = crate::records::webhook_payload(
            "points.expiring",
            tenant.clone(),
            rfc3339(now, settings.zone),
            crate::records::ExpiringPoints {
                member_id: member.clone(),
                phone: row.opt_text("phone")?,
                points,
                expires_at: rfc3339(expires, settings.zone),
            },
        );
        outbox.push(vec![
            id.into(),
            tenant.as_str().into(),
            "points.expiring".into(),
            payload.into(),
            recorded_at.into(),
            0i64.into(),
        ]);
    }
    db.execute_all(notices.statements(
        backend,
        "INSERT INTO expiry_notices (tenant_id, member_id, expires_at, points, notified_at)",
        "",
    ))
    .await?;
    db.execute_all(outbox.statements(backend, OUTBOX_INSERT, ""))
        .await?;
    if rows.len() == JOB_CHUNK_SIZE {
        report.next_cursor = Some(String::new());
    }
    Ok(report)
}

async fn expire_vouchers_chunk(db: &mut Tx<'_>, now: Timestamp) -> Result<JobReport, StoreError> {
    let backend = db.backend();
    let rows = db
        .fetch(
            &format!(
                "{VOUCHER_SELECT} WHERE status = 'issued' AND expires_at <= $1 \
                 ORDER BY code LIMIT {JOB_CHUNK_SIZE}{}",
                // A voucher a batch is using or cancelling is waited for and, if no longer
                // issued when it is free, left out (READ COMMITTED re-checks the condition).
                match backend {
                    Backend::Postgres => " FOR UPDATE",
                    Backend::Sqlite => "",
                }
            ),
            vec![to_micros(now).into()],
        )
        .await?;
    let mut report = JobReport {
        processed: rows.len() as u64,
        ..JobReport::default()
    };
    let recorded_at = to_micros(chrono::Utc::now());
    let mut transactions = Vec::new();
    let mut vouchers = Rows::new(13);
    let mut figures = Figures::default();
    for row in &rows {
        let (tenant_id, mut voucher) = voucher_from(row)?;
        let before = voucher.status;
        if let Some(transaction) = expire_voucher(&mut voucher, now) {
            report.points += voucher.cost.0;
            transactions.push((tenant_id, None, now, transaction));
        }
        figures.voucher(tenant_id, Some(before), &voucher);
        vouchers.push(crate::batch::voucher_row(tenant_id, &voucher, recorded_at));
    }
    db.execute_all(vouchers.statements(backend, VOUCHER_UPSERT.0, VOUCHER_UPSERT.1))
        .await?;
    write_job_ledger(db, &transactions, figures, recorded_at).await?;
    if rows.len() == JOB_CHUNK_SIZE {
        report.next_cursor = Some(String::new());
    }
    Ok(report)
}

async fn review_tiers_chunk(
    store: &Store,
    db: &mut Tx<'_>,
    now: Timestamp,
    after: String,
) -> Result<JobReport, StoreError> {
    let backend = db.backend();
    let sql = format!("SELECT id FROM members WHERE id > $1 ORDER BY id LIMIT {JOB_CHUNK_SIZE}");
    let ids = ids_of(db, &sql, after.into()).await?;
    let mut members = load_members(db, &ids).await?;
    let mut report = JobReport {
        processed: ids.len() as u64,
        ..JobReport::default()
    };
    let recorded_at = to_micros(chrono::Utc::now());
    let mut history = Rows::new(9);
    let mut figures = Figures::default();
    for (tenant_id, state, before_figures) in members.values_mut() {
        let settings = store.tenant(*tenant_id).await?;
        let Some(programme) = settings.programme_at(now) else {
            continue;
        };
        let before = (state.tier.clone(), state.tier_below_since);
        let change = tiers::review(programme, state, now, settings.zone);
        if let Some(change) = &change {
            match change.reason {
                tiers::TierChangeReason::Upgrade => report.upgrades += 1,
                _ => report.downgrades += 1,
            }
            history.push(tier_row(*tenant_id, state.id, None, now, change));
        }
        if before != (state.tier.clone(), state.tier_below_since) {
            db.execute(
                "UPDATE members SET tier = $1, tier_since = $2, tier_below_since = $3, updated_at = $4 WHERE id = $5",
                vec![
                    state.tier.clone().into(),
                    to_micros(state.tier_since).into(),
                    state.tier_below_since.map(to_micros).into(),
                    recorded_at.into(),
                    state.id.to_string().into(),
                ],
            )
            .await?;
            let erased = before_figures.is_erased();
            figures.member(
                *tenant_id,
                Some(before_figures),
                &MemberFigures::of(state, erased),
            );
        }
    }
    db.execute_all(history.statements(backend, TIER_INSERT, ""))
        .await?;
    figures.write(db).await?;
    if ids.len() == JOB_CHUNK_SIZE {
        report.next_cursor = ids.last().cloned();
    }
    Ok(report)
}
