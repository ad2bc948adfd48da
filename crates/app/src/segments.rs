//! Segments live: each tenant's members held as a column table in memory
//! (`patron_core::segment::Table`), kept current from the members changed since the last look
//! (`members.updated_at`), and each saved segment's members as a set of rows. Members join and
//! leave as their events arrive: every refresh evaluates the segments again over the table and
//! records who joined and who left (`segment_members`), which is also what makes a definition
//! changed or a day passed (the day-following fields) take effect — the full recompute.
//!
//! A table is loaded on a tenant's first use (a page of profiles at a time) and refreshed
//! before every read and by [`Segments::refresher`] every [`REFRESH_INTERVAL`]. A process
//! holds one per tenant it serves; several nodes each hold their own and record the same joins
//! and leaves (inserts that ignore a duplicate, deletes), so they agree.

use crate::error::AppError;
use crate::grant::{Grant, Permission};
use patron_core::segment::{Bits, Condition, RfmCutoffs, SegmentDefinition, Table};
use patron_core::time::{to_micros, Timestamp};
use patron_core::{MemberId, TenantId};
use patron_store::members::MemberSummary;
use patron_store::segments::{
    Consent, ConsentChannel, SegmentRecord, SegmentVersion, PROFILE_PAGE_MAX,
};
use patron_store::{Store, StoreError};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the refresher looks for changed members.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(2);
/// How long a change may take to commit after its stamp (`members.updated_at`, taken when a
/// batch starts writing): each refresh reads again the changes stamped this long before it
/// started, which may have committed since. Rows read again unchanged are skipped.
pub const COMMIT_LAG_MICROS: i64 = 2_000_000;
/// Members shown as a sample of a segment.
pub const SAMPLE_SIZE: usize = 10;
/// Most members in one page of a segment's list.
pub const SEGMENT_PAGE_MAX: usize = 500;
/// RFM cut-offs older than this are computed again from the table.
pub const RFM_FRESH: Duration = Duration::from_secs(24 * 3600);

/// A saved segment as held live.
struct Live {
    record: SegmentRecord,
    condition: Condition,
    members: Bits,
}

/// One tenant's table and segments.
struct Tenant {
    table: Table,
    zone: chrono_tz::Tz,
    /// Changes stamped from this instant on are read at the next refresh: every change stamped
    /// before it was committed, and read, by the last one.
    since: i64,
    /// Each row's change as last read.
    stamps: Vec<i64>,
    segments: BTreeMap<String, Live>,
    rfm_at: Option<Timestamp>,
    /// The writes of this process seen by the last refresh ([`Segments::writes`]), and when it
    /// ran.
    seen: (u64, u64),
    refreshed: std::time::Instant,
}

/// What a segment holds now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentCount {
    pub record: SegmentRecord,
    pub members: usize,
}

/// What a condition selects: how many, and a few of them.
#[derive(Clone, Debug)]
pub struct Selection {
    pub members: usize,
    pub of: usize,
    pub sample: Vec<MemberSummary>,
}

/// A tenant's table, loaded on first use.
type Slot = Arc<tokio::sync::Mutex<Option<Tenant>>>;

/// The live segments of every tenant this process serves.
#[derive(Clone, Default)]
pub struct Segments {
    tenants: Arc<Mutex<HashMap<TenantId, Slot>>>,
    /// Changes this process made to members outside the journal (consent, profile edits).
    touches: Arc<std::sync::atomic::AtomicU64>,
}

fn internal(error: StoreError) -> AppError {
    AppError::from(error)
}

impl Segments {
    fn slot(&self, tenant_id: TenantId) -> Slot {
        let mut tenants = self.tenants.lock().expect("segments lock");
        Arc::clone(tenants.entry(tenant_id).or_default())
    }

    /// Notes a change to members made outside the journal, so the next read refreshes.
    pub fn touched(&self) {
        self.touches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Runs `read` on the tenant's table, loaded if needed. It is refreshed first when this
    /// process has written since (`batches`, the journal's count, and the touches), or when the
    /// last refresh is older than [`REFRESH_INTERVAL`]; another node's writes show within that.
    async fn with<T>(
        &self,
        store: &Store,
        batches: u64,
        tenant_id: TenantId,
        read: impl FnOnce(&mut Tenant) -> T,
    ) -> Result<T, StoreError> {
        let slot = self.slot(tenant_id);
        let mut guard = slot.lock().await;
        let now = chrono::Utc::now();
        let writes = (
            batches,
            self.touches.load(std::sync::atomic::Ordering::Relaxed),
        );
        match guard.as_mut() {
            Some(tenant) => {
                if tenant.seen != writes || tenant.refreshed.elapsed() >= REFRESH_INTERVAL {
                    refresh(store, tenant_id, tenant, now).await?;
                    tenant.seen = writes;
                }
            }
            None => {
                let mut tenant = load(store, tenant_id, now).await?;
                tenant.seen = writes;
                *guard = Some(tenant);
            }
        }
        Ok(read(guard.as_mut().expect("loaded")))
    }

    /// Refreshes every table this process holds; what the refresher runs.
    pub async fn refresh_all(&self, store: &Store) {
        refresh_each(&self.tenants, store).await;
    }

    /// Refreshes the held tables every [`REFRESH_INTERVAL`] until the last `App` holding them
    /// is dropped: spawn it once.
    pub fn refresher(
        &self,
        store: Store,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let tenants = Arc::downgrade(&self.tenants);
        async move {
            let mut ticks = tokio::time::interval(REFRESH_INTERVAL);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(tenants) = tenants.upgrade() else {
                    return;
                };
                refresh_each(&tenants, &store).await;
            }
        }
    }
}

async fn refresh_each(tenants: &Mutex<HashMap<TenantId, Slot>>, store: &Store) {
    let slots: Vec<(TenantId, Slot)> = tenants
        .lock()
        .expect("segments lock")
        .iter()
        .map(|(tenant, slot)| (*tenant, Arc::clone(slot)))
        .collect();
    for (tenant_id, slot) in slots {
        let mut guard = slot.lock().await;
        if let Some(tenant) = guard.as_mut() {
            if let Err(error) = refresh(store, tenant_id, tenant, chrono::Utc::now()).await {
                tracing::warn!(%tenant_id, %error, "segments not refreshed");
            }
        }
    }
}

/// Loads a tenant's table a page at a time, then its segments.
async fn load(store: &Store, tenant_id: TenantId, now: Timestamp) -> Result<Tenant, StoreError> {
    let zone = store.tenant(tenant_id).await?.zone;
    let today = patron_store::figures::local_day(zone, now);
    let stored_rfm = store.rfm_cutoffs(tenant_id).await?;
    let mut table = Table::new(
        today,
        stored_rfm
            .as_ref()
            .map(|(rfm, _)| rfm.clone())
            .unwrap_or_default(),
    );
    let mut after = None;
    let mut stamps = Vec::new();
    // Rows changed while the pages are read are read again at the first refresh.
    let since = to_micros(now) - COMMIT_LAG_MICROS;
    loop {
        let page = store
            .profiles_page(tenant_id, after, PROFILE_PAGE_MAX, now)
            .await?;
        for row in &page {
            if !row.erased {
                let at = table.upsert(row.member_id, &row.profile);
                stamp(&mut stamps, at, row.updated_at);
            }
        }
        if page.len() < PROFILE_PAGE_MAX {
            break;
        }
        after = page.last().map(|row| row.member_id);
    }
    let mut tenant = Tenant {
        table,
        zone,
        since,
        stamps,
        segments: BTreeMap::new(),
        rfm_at: stored_rfm.map(|(_, at)| at),
        seen: (0, 0),
        refreshed: std::time::Instant::now(),
    };
    keep_rfm(store, tenant_id, &mut tenant, now).await?;
    for record in store.segments(tenant_id).await? {
        let stored = store.segment_member_ids(&record.id).await?;
        add_segment(&mut tenant, record, &stored);
    }
    settle(store, tenant_id, &mut tenant, now).await?;
    Ok(tenant)
}

/// Holds a saved segment with the members last recorded in it.
fn add_segment(tenant: &mut Tenant, record: SegmentRecord, stored: &[MemberId]) {
    let condition = match Condition::compile(&record.condition) {
        Ok(condition) => condition,
        Err(error) => {
            // Saved conditions compiled when saved; one that no longer does selects nobody.
            tracing::error!(segment = %record.id, %error, "a saved segment no longer compiles");
            Condition::Always(false)
        }
    };
    let mut members = Bits::none(tenant.table.len());
    for member in stored {
        if let Some(row) = tenant.table.row(member) {
            members.set(row, true);
        }
    }
    tenant.segments.insert(
        record.id.clone(),
        Live {
            record,
            condition,
            members,
        },
    );
}

/// Computes the RFM cut-offs again from the table when they are missing or stale.
async fn keep_rfm(
    store: &Store,
    tenant_id: TenantId,
    tenant: &mut Tenant,
    now: Timestamp,
) -> Result<(), StoreError> {
    let fresh = tenant
        .rfm_at
        .is_some_and(|at| (now - at).to_std().unwrap_or_default() < RFM_FRESH);
    if fresh {
        return Ok(());
    }
    let table = &tenant.table;
    let today = table.today();
    let mut values = Vec::new();
    for row in table.live().ones() {
        let facts = table.facts(row);
        let orders = facts.int(patron_core::segment::IntField::OrderCount);
        let days = facts.int(patron_core::segment::IntField::DaysSinceLastPurchase);
        let spend = facts.int(patron_core::segment::IntField::TotalSpend);
        if let (Some(orders @ 1..), Some(days), Some(spend)) = (orders, days, spend) {
            values.push((days, orders, spend));
        }
    }
    let cutoffs = RfmCutoffs::of(&values);
    store.save_rfm_cutoffs(tenant_id, &cutoffs, now).await?;
    tenant.rfm_at = Some(now);
    tenant.table.set_day(today, cutoffs);
    Ok(())
}

/// Reads the members changed since the last look into the table, moves it to today, and
/// settles the segments.
async fn refresh(
    store: &Store,
    tenant_id: TenantId,
    tenant: &mut Tenant,
    now: Timestamp,
) -> Result<(), StoreError> {
    tenant.refreshed = std::time::Instant::now();
    let mut after = None;
    let started = to_micros(now);
    let mut since = tenant.since;
    let mut changed = 0usize;
    loop {
        let page = store
            .profiles_changed(tenant_id, since, after, PROFILE_PAGE_MAX, now)
            .await?;
        for row in &page {
            let known = tenant.table.row(&row.member_id);
            if known.is_some_and(|at| tenant.stamps.get(at) == Some(&row.updated_at)) {
                continue;
            }
            changed += 1;
            if row.erased {
                tenant.table.remove(&row.member_id);
            } else {
                let at = tenant.table.upsert(row.member_id, &row.profile);
                stamp(&mut tenant.stamps, at, row.updated_at);
            }
        }
        match page.last() {
            Some(last) if page.len() == PROFILE_PAGE_MAX => {
                since = last.updated_at;
                after = Some(last.member_id);
            }
            _ => break,
        }
    }
    tenant.since = tenant.since.max(started - COMMIT_LAG_MICROS);
    let today = patron_store::figures::local_day(tenant.zone, now);
    let new_day = today != tenant.table.today();
    if new_day {
        let rfm = tenant.table.rfm().clone();
        tenant.table.set_day(today, rfm);
        // A merge removes its source without a trace in `members`: the new day drops them.
        forget_removed(store, tenant_id, tenant).await?;
    }
    keep_rfm(store, tenant_id, tenant, now).await?;
    if changed > 0 || new_day {
        settle(store, tenant_id, tenant, now).await?;
    }
    Ok(())
}

/// Notes the change a row was read at.
fn stamp(stamps: &mut Vec<i64>, row: usize, updated_at: i64) {
    if stamps.len() <= row {
        stamps.resize(row + 1, i64::MIN);
    }
    stamps[row] = updated_at;
}

/// Takes out of the table the members no longer stored (merged away).
async fn forget_removed(
    store: &Store,
    tenant_id: TenantId,
    tenant: &mut Tenant,
) -> Result<(), StoreError> {
    let rows: Vec<usize> = tenant.table.live().ones().collect();
    for chunk in rows.chunks(PROFILE_PAGE_MAX) {
        let ids: Vec<MemberId> = chunk.iter().map(|row| *tenant.table.id(*row)).collect();
        let existing: std::collections::HashSet<MemberId> = store
            .existing_members(tenant_id, ids.clone())
            .await?
            .into_iter()
            .collect();
        for id in ids.iter().filter(|id| !existing.contains(id)) {
            tenant.table.remove(id);
        }
    }
    Ok(())
}

/// Evaluates every segment over the table and records who joined and who left.
async fn settle(
    store: &Store,
    tenant_id: TenantId,
    tenant: &mut Tenant,
    now: Timestamp,
) -> Result<(), StoreError> {
    for live in tenant.segments.values_mut() {
        let now_in = live.condition.select(&tenant.table);
        let joined: Vec<MemberId> = now_in
            .clone()
            .minus(&live.members)
            .ones()
            .map(|row| *tenant.table.id(row))
            .collect();
        let left: Vec<MemberId> = live
            .members
            .clone()
            .minus(&now_in)
            .ones()
            .map(|row| *tenant.table.id(row))
            .collect();
        store
            .record_segment_changes(tenant_id, &live.record.id, &joined, &left, now)
            .await?;
        live.members = now_in;
    }
    Ok(())
}

fn not_found() -> AppError {
    AppError::not_found("segment")
}

impl crate::App {
    /// Batches the journal has written.
    fn batches(&self) -> u64 {
        self.journal
            .metrics()
            .batches
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Records a member's word on promotions over one channel.
    pub async fn set_consent(
        &self,
        grant: &Grant,
        member: MemberId,
        channel: ConsentChannel,
        granted: bool,
        source: &str,
    ) -> Result<Consent, AppError> {
        grant.require(Permission::RecordEvents)?;
        let consent = self
            .store
            .set_consent(
                grant.tenant_id,
                member,
                channel,
                granted,
                source,
                chrono::Utc::now(),
            )
            .await?;
        self.segments.touched();
        Ok(consent)
    }

    /// A member's own word on promotions over one channel, given on their member page (the
    /// member's session is the grant).
    pub async fn set_own_consent(
        &self,
        tenant_id: patron_core::TenantId,
        member: MemberId,
        channel: ConsentChannel,
        granted: bool,
    ) -> Result<Consent, StoreError> {
        let consent = self
            .store
            .set_consent(
                tenant_id,
                member,
                channel,
                granted,
                "member_page",
                chrono::Utc::now(),
            )
            .await?;
        self.segments.touched();
        Ok(consent)
    }

    /// A member's latest word per channel.
    pub async fn consents(
        &self,
        grant: &Grant,
        member: MemberId,
    ) -> Result<Vec<Consent>, AppError> {
        grant.require(Permission::Read)?;
        Ok(self.store.consents(grant.tenant_id, member).await?)
    }

    /// Every field a segment condition may name.
    pub fn segment_fields(&self) -> Vec<patron_core::segment::FieldInfo> {
        patron_core::segment::fields()
    }

    /// How many members a condition selects now, of how many: the count alone.
    pub async fn count_segment(
        &self,
        grant: &Grant,
        condition: &str,
    ) -> Result<(usize, usize), AppError> {
        grant.require(Permission::ManageMarketing)?;
        let condition = Condition::compile(condition)
            .map_err(|error| AppError::invalid("condition", error.0))?;
        self.segments
            .with(&self.store, self.batches(), grant.tenant_id, |tenant| {
                (
                    condition.select(&tenant.table).count(),
                    tenant.table.members(),
                )
            })
            .await
            .map_err(internal)
    }

    /// How many members a condition selects now, and a sample: the builder's live count.
    pub async fn preview_segment(
        &self,
        grant: &Grant,
        condition: &str,
    ) -> Result<Selection, AppError> {
        grant.require(Permission::ManageMarketing)?;
        let condition = Condition::compile(condition)
            .map_err(|error| AppError::invalid("condition", error.0))?;
        let (members, of, sample) = self
            .segments
            .with(&self.store, self.batches(), grant.tenant_id, |tenant| {
                let rows = condition.select(&tenant.table);
                let sample: Vec<MemberId> = rows
                    .ones()
                    .take(SAMPLE_SIZE)
                    .map(|row| *tenant.table.id(row))
                    .collect();
                (rows.count(), tenant.table.members(), sample)
            })
            .await
            .map_err(internal)?;
        let sample = self
            .store
            .member_summaries(grant.tenant_id, &sample)
            .await?;
        Ok(Selection {
            members,
            of,
            sample,
        })
    }

    /// Saves a new segment (`segment_id` `None`) or a new version of one, and holds it live.
    pub async fn save_segment(
        &self,
        grant: &Grant,
        segment_id: Option<&str>,
        expected_version: Option<i64>,
        definition: &SegmentDefinition,
    ) -> Result<SegmentCount, AppError> {
        grant.require(Permission::ManageMarketing)?;
        let record = self
            .store
            .save_segment(
                grant.tenant_id,
                segment_id,
                expected_version,
                definition,
                &grant.actor,
            )
            .await?;
        let id = record.id.clone();
        let store = self.store.clone();
        let tenant_id = grant.tenant_id;
        let slot = self.segments.slot(tenant_id);
        let mut guard = slot.lock().await;
        let now = chrono::Utc::now();
        match guard.as_mut() {
            // A fresh load reads the new segment with the others.
            None => *guard = Some(load(&store, tenant_id, now).await?),
            Some(tenant) => {
                let stored = match tenant.segments.remove(&id) {
                    Some(live) => live
                        .members
                        .ones()
                        .map(|row| *tenant.table.id(row))
                        .collect(),
                    None => Vec::new(),
                };
                add_segment(tenant, record, &stored);
                refresh(&store, tenant_id, tenant, now).await?;
                settle(&store, tenant_id, tenant, now).await?;
            }
        }
        let tenant = guard.as_ref().expect("loaded");
        let live = tenant.segments.get(&id).ok_or_else(not_found)?;
        Ok(SegmentCount {
            record: live.record.clone(),
            members: live.members.count(),
        })
    }

    /// The tenant's segments with how many members each holds now.
    pub async fn segments(&self, grant: &Grant) -> Result<Vec<SegmentCount>, AppError> {
        grant.require(Permission::Read)?;
        self.segments
            .with(&self.store, self.batches(), grant.tenant_id, |tenant| {
                tenant
                    .segments
                    .values()
                    .map(|live| SegmentCount {
                        record: live.record.clone(),
                        members: live.members.count(),
                    })
                    .collect::<Vec<_>>()
            })
            .await
            .map(|mut counts| {
                counts.sort_by(|a, b| a.record.name.cmp(&b.record.name));
                counts
            })
            .map_err(internal)
    }

    /// One segment with its count and a sample of members.
    pub async fn segment(
        &self,
        grant: &Grant,
        segment_id: &str,
    ) -> Result<(SegmentCount, Vec<MemberSummary>), AppError> {
        let (count, page) = self
            .segment_members(grant, segment_id, 0, SAMPLE_SIZE)
            .await?;
        Ok((count, page))
    }

    /// A page of a segment's members (in member id order) and its count.
    pub async fn segment_members(
        &self,
        grant: &Grant,
        segment_id: &str,
        offset: usize,
        limit: usize,
    ) -> Result<(SegmentCount, Vec<MemberSummary>), AppError> {
        grant.require(Permission::Read)?;
        let limit = limit.clamp(1, SEGMENT_PAGE_MAX);
        let found = self
            .segments
            .with(&self.store, self.batches(), grant.tenant_id, |tenant| {
                let live = tenant.segments.get(segment_id)?;
                let ids: Vec<MemberId> = live
                    .members
                    .ones()
                    .skip(offset)
                    .take(limit)
                    .map(|row| *tenant.table.id(row))
                    .collect();
                Some((
                    SegmentCount {
                        record: live.record.clone(),
                        members: live.members.count(),
                    },
                    ids,
                ))
            })
            .await
            .map_err(internal)?;
        let (count, ids) = found.ok_or_else(not_found)?;
        let page = self.store.member_summaries(grant.tenant_id, &ids).await?;
        Ok((count, page))
    }

    /// Every member of a segment, for the CSV download.
    pub async fn segment_member_ids(
        &self,
        grant: &Grant,
        segment_id: &str,
    ) -> Result<(SegmentCount, Vec<MemberId>), AppError> {
        grant.require(Permission::ExportPersonalData)?;
        self.segments
            .with(&self.store, self.batches(), grant.tenant_id, |tenant| {
                let live = tenant.segments.get(segment_id)?;
                Some((
                    SegmentCount {
                        record: live.record.clone(),
                        members: live.members.count(),
                    },
                    live.members
                        .ones()
                        .map(|row| *tenant.table.id(row))
                        .collect(),
                ))
            })
            .await
            .map_err(internal)?
            .ok_or_else(not_found)
    }

    /// Every member of a segment now, for a campaign's audience (no grant: the caller checked).
    pub(crate) async fn segments_members(
        &self,
        tenant_id: patron_core::TenantId,
        segment_id: &str,
    ) -> Result<Vec<MemberId>, AppError> {
        self.segments
            .with(&self.store, self.batches(), tenant_id, |tenant| {
                let live = tenant.segments.get(segment_id)?;
                Some(
                    live.members
                        .ones()
                        .map(|row| *tenant.table.id(row))
                        .collect::<Vec<_>>(),
                )
            })
            .await
            .map_err(internal)?
            .ok_or_else(not_found)
    }

    /// A segment's saved versions, newest first.
    pub async fn segment_versions(
        &self,
        grant: &Grant,
        segment_id: &str,
    ) -> Result<Vec<SegmentVersion>, AppError> {
        grant.require(Permission::Read)?;
        Ok(self
            .store
            .segment_versions(grant.tenant_id, segment_id)
            .await?)
    }

    /// Archives a segment.
    pub async fn archive_segment(&self, grant: &Grant, segment_id: &str) -> Result<(), AppError> {
        grant.require(Permission::ManageMarketing)?;
        self.store
            .archive_segment(grant.tenant_id, segment_id, &grant.actor)
            .await?;
        let slot = self.segments.slot(grant.tenant_id);
        if let Some(tenant) = slot.lock().await.as_mut() {
            tenant.segments.remove(segment_id);
        }
        Ok(())
    }

    /// The segments a member is in now (with their sales policies, which the till shows).
    pub async fn member_segments(
        &self,
        grant: &Grant,
        member_id: MemberId,
    ) -> Result<Vec<SegmentRecord>, AppError> {
        grant.require(Permission::Read)?;
        self.segments
            .with(&self.store, self.batches(), grant.tenant_id, |tenant| {
                let Some(row) = tenant.table.row(&member_id) else {
                    return Vec::new();
                };
                tenant
                    .segments
                    .values()
                    .filter(|live| live.members.get(row))
                    .map(|live| live.record.clone())
                    .collect()
            })
            .await
            .map_err(internal)
    }
}
