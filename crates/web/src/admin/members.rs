//! Members in the admin: search and list (`/admin/members`), the profile with balances, tier
//! progress, history and vouchers (`/admin/members/{id}`), and what a manager does to a member:
//! a manual adjustment with a reason (through the API's own event path, so it is audited the
//! same way), a merge of another member into this one (after a confirmation), the Decree 13
//! export (JSON download) and erasure. Forms post, then redirect back to the profile.
//! The history names who made each change and, next to a purchase, offers its refund (on the
//! till's receipt page) and, to managers and owners, its void.

use super::reader;
use super::url_encode;
use crate::format::{self, WholeError};
use crate::i18n::Texts;
use crate::page::{self, render, render_with};
use crate::staff::Staff;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use chrono::{DateTime, Utc};
use patron_app::{AdjustPoints, ErrorKind};
use patron_core::programme::QualificationMetric;
use patron_core::{MemberId, Phone};
use patron_server::auth::Permission;
use patron_server::AppState;
use patron_store::audit::Actor;
use patron_store::members::PurchaseState;
use patron_store::members::{MemberFilter, SEARCH_LENGTH_MAX};
use patron_store::queries::HistoryCursor;
use patron_store::stats::MemberFigures;
use patron_store::{HistoryEntry, MemberRef, MemberView, StoreError, VoucherView};
use serde::Deserialize;
use std::collections::{HashMap, HashSet};

/// Members in one page of the list.
pub const MEMBERS_PAGE_SIZE: i64 = 50;
/// History entries in one page of a profile.
pub const HISTORY_PAGE_SIZE: i64 = 50;

fn member_path(id: &str) -> String {
    format!("/admin/members/{id}")
}

/// The tier's name in the programme in force, or its code.
pub(super) fn tier_name(staff: &Staff, code: &str) -> String {
    staff
        .tenant
        .programme_at(Utc::now())
        .and_then(|programme| programme.tier(code))
        .map(|(_, tier)| tier.name.clone())
        .unwrap_or_else(|| code.to_owned())
}

fn date_of(staff: &Staff, rfc3339: &str) -> String {
    DateTime::parse_from_rfc3339(rfc3339)
        .map(|at| format::date(staff.t.locale, at.with_timezone(&Utc), staff.tenant.zone))
        .unwrap_or_else(|_| rfc3339.to_owned())
}

pub(super) fn date_time_of(staff: &Staff, rfc3339: &str) -> String {
    DateTime::parse_from_rfc3339(rfc3339)
        .map(|at| format::date_time(staff.t.locale, at.with_timezone(&Utc), staff.tenant.zone))
        .unwrap_or_else(|_| rfc3339.to_owned())
}

// ---------------------------------------------------------------------------------------------
// The list

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    q: Option<String>,
    after: Option<String>,
}

struct MemberRow {
    id: String,
    name: String,
    phone: String,
    email: String,
    tier: String,
    balance: String,
    joined: String,
    erased: bool,
}

#[derive(Template)]
#[template(path = "admin/members.html")]
struct MembersPage {
    t: Texts,
    staff: Staff,
    q: String,
    q_error: Option<&'static str>,
    rows: Vec<MemberRow>,
    searched: bool,
    next: Option<String>,
    first_page: Option<String>,
}

/// `/admin/members?q=…&after=…`: members, oldest first, or those matching a phone, part of a
/// name or of an e-mail.
pub async fn list(
    State(state): State<AppState>,
    staff: Staff,
    Query(query): Query<ListQuery>,
) -> Response {
    if let Err(refused) = reader(&staff) {
        return refused;
    }
    let q = query.q.unwrap_or_default().trim().to_owned();
    let mut page = MembersPage {
        t: staff.t,
        q: q.clone(),
        q_error: None,
        rows: Vec::new(),
        searched: !q.is_empty(),
        next: None,
        first_page: query
            .after
            .as_ref()
            .map(|_| format!("/admin/members?q={}", url_encode(&q))),
        staff,
    };
    if q.chars().count() > SEARCH_LENGTH_MAX {
        page.q_error = Some("admin.members.query_too_long");
        return render_with(StatusCode::UNPROCESSABLE_ENTITY, &page);
    }
    let filter = MemberFilter {
        query: (!q.is_empty()).then(|| q.clone()),
        tier: None,
        after: query.after.filter(|after| !after.is_empty()),
        limit: MEMBERS_PAGE_SIZE,
    };
    let members = match state.store.members(page.staff.tenant_id, &filter).await {
        Ok(members) => members,
        Err(error) => return page::failed(page.t, error),
    };
    if members.len() as i64 == MEMBERS_PAGE_SIZE {
        page.next = members.last().map(|last| {
            format!(
                "/admin/members?q={}&after={}",
                url_encode(&q),
                url_encode(&last.id)
            )
        });
    }
    page.rows = members
        .into_iter()
        .map(|member| MemberRow {
            name: member.name.unwrap_or_default(),
            phone: member.phone.unwrap_or_default(),
            email: member.email.unwrap_or_default(),
            tier: tier_name(&page.staff, &member.tier),
            balance: page.staff.points(member.balance),
            joined: date_of(&page.staff, &member.created_at),
            erased: member.erased,
            id: member.id,
        })
        .collect();
    render(&page)
}

// ---------------------------------------------------------------------------------------------
// The profile

#[derive(Debug, Default, Deserialize)]
pub struct ProfileQuery {
    /// The history page's cursor: [`HistoryCursor::encode`] of the last entry shown.
    before: Option<String>,
    /// What was just done, for the notice after a redirect.
    done: Option<String>,
}

/// The adjustment form as typed, with its messages.
#[derive(Default)]
struct AdjustForm {
    event: String,
    points: String,
    reason: String,
    points_error: Option<&'static str>,
    reason_error: Option<&'static str>,
}

#[derive(Default)]
struct MergeForm {
    other: String,
    error: Option<&'static str>,
}

#[derive(Default)]
struct EraseForm {
    error: Option<&'static str>,
}

struct HistoryRow {
    at: String,
    kind: &'static str,
    points: String,
    credit: bool,
    /// Store credit and stamps the transaction moved, one text each.
    others: Vec<String>,
    reason: String,
    /// Who sent the event: a staff member's or key's name.
    who: String,
    /// The purchase this row belongs to, on its first row.
    purchase: Option<PurchaseRow>,
}

/// A purchase in the history, with what may still be done to it.
struct PurchaseRow {
    event_id: String,
    voided: bool,
    /// Something is left to refund.
    refundable: bool,
    /// The idempotency key of its void form.
    void_event_id: String,
}

/// A channel's consent as the profile lists it.
struct ConsentRow {
    channel: &'static str,
    granted: bool,
    at: String,
    source: String,
}

/// Where a consent was given, in words (`member_page` → "member page"); unknown ones as given.
fn consent_source(t: Texts, source: &str) -> String {
    let key = format!("admin.consent.source.{source}");
    match t.get(&key) {
        text if text == key => source.to_owned(),
        text => text.to_owned(),
    }
}

fn consent_rows(staff: &Staff, consents: &[patron_store::segments::Consent]) -> Vec<ConsentRow> {
    consents
        .iter()
        .map(|consent| ConsentRow {
            channel: staff
                .t
                .get(crate::member_page::channel_key(consent.channel)),
            granted: consent.granted,
            at: date_time_of(staff, &consent.at),
            source: consent_source(staff.t, &consent.source),
        })
        .collect()
}

struct VoucherRow {
    code: String,
    reward: String,
    cost: String,
    status: &'static str,
    issued: String,
    expires: String,
}

/// Tier standing as the profile writes it.
struct TierView {
    name: String,
    /// "350.000đ more to reach Gold", when there is a tier above.
    to_next: Option<String>,
    /// (value, threshold) of the progress bar toward the next tier.
    progress: Option<(i64, i64)>,
    qualifying: String,
}

#[derive(Template)]
#[template(path = "admin/member.html")]
struct MemberPage {
    t: Texts,
    staff: Staff,
    member: MemberView,
    erased: bool,
    title: String,
    notice: Option<&'static str>,
    tier: TierView,
    balance: String,
    available: String,
    pending: String,
    expiring: String,
    expiring_note: String,
    debt: Option<String>,
    /// Store credit and stamps.
    holdings: Vec<format::HoldingLine>,
    lifetime_spend: String,
    orders: String,
    joined: String,
    first_purchase: Option<String>,
    last_purchase: Option<String>,
    history: Vec<HistoryRow>,
    history_next: Option<String>,
    history_first: Option<String>,
    vouchers: Vec<VoucherRow>,
    /// Promotions consent per channel, as last given.
    consents: Vec<ConsentRow>,
    may_manage: bool,
    /// May refund a purchase (on the till's receipt page).
    may_refund: bool,
    may_export: bool,
    adjust: AdjustForm,
    merge: MergeForm,
    erase: EraseForm,
}

/// Who sent the event of a history entry: the staff member's or key's name, `cli`, or nothing
/// for changes made before events named their sender.
fn actor_name(actors: &HashMap<String, String>, entry: &HistoryEntry) -> String {
    let Some(actor) = entry.reason.get("actor").and_then(|actor| actor.as_str()) else {
        return String::new();
    };
    actors
        .get(actor)
        .cloned()
        .unwrap_or_else(|| actor.to_owned())
}

fn kind_label(t: Texts, kind: &str) -> &'static str {
    match kind {
        "earn" => t.get("admin.kind.earn"),
        "payment" => t.get("admin.kind.payment"),
        "redemption" => t.get("admin.kind.redemption"),
        "voucher_use" => t.get("admin.kind.voucher_use"),
        "voucher_cancel" => t.get("admin.kind.voucher_cancel"),
        "voucher_expiry" => t.get("admin.kind.voucher_expiry"),
        "clawback" => t.get("admin.kind.clawback"),
        "payment_return" => t.get("admin.kind.payment_return"),
        "expiry" => t.get("admin.kind.expiry"),
        "adjustment" => t.get("admin.kind.adjustment"),
        _ => t.get("admin.kind.other"),
    }
}

fn voucher_status(t: Texts, status: &str) -> &'static str {
    match status {
        "issued" => t.get("admin.voucher.issued"),
        "used" => t.get("admin.voucher.used"),
        "cancelled" => t.get("admin.voucher.cancelled"),
        "expired" => t.get("admin.voucher.expired"),
        _ => t.get("admin.kind.other"),
    }
}

/// Why a history entry happened, in words: the rules that gave points, the reward, or the
/// reason staff gave.
fn reason_text(staff: &Staff, entry: &HistoryEntry) -> String {
    let t = staff.t;
    let reason = &entry.reason;
    let text = |key: &str| {
        reason
            .get(key)
            .and_then(|value| value.as_str())
            .unwrap_or("")
    };
    match entry.kind.as_str() {
        "earn" => crate::reasons::earn_lines(t, reason),
        "payment" => t.fill(
            "admin.reason.payment",
            &[(
                "value",
                &staff.money(reason.get("paid").and_then(|v| v.as_i64()).unwrap_or(0)),
            )],
        ),
        "redemption" | "voucher_use" | "voucher_cancel" => t.fill(
            "admin.reason.voucher",
            &[("reward", text("reward")), ("voucher", text("voucher"))],
        ),
        "voucher_expiry" => t.fill(
            "admin.reason.voucher_expiry",
            &[("voucher", text("voucher"))],
        ),
        _ => crate::reasons::entry_detail(t, entry),
    }
}

fn tier_view(staff: &Staff, member: &MemberView) -> TierView {
    let t = staff.t;
    let progress = &member.tier;
    let amount = |value: i64| match progress.metric {
        QualificationMetric::Spend => staff.money(value),
        QualificationMetric::Points => {
            t.fill("admin.tier.points", &[("points", &staff.points(value))])
        }
    };
    let threshold = progress.next_tier.as_deref().and_then(|code| {
        staff
            .tenant
            .programme_at(Utc::now())
            .and_then(|programme| programme.tier(code))
            .map(|(_, tier)| tier.threshold)
    });
    TierView {
        name: if progress.tier_name.is_empty() {
            progress.tier.clone()
        } else {
            progress.tier_name.clone()
        },
        to_next: progress
            .to_next_tier
            .zip(progress.next_tier_name.as_deref())
            .map(|(more, name)| {
                t.fill(
                    "admin.tier.to_next",
                    &[("amount", &amount(more)), ("tier", name)],
                )
            }),
        progress: threshold
            .filter(|threshold| *threshold > 0)
            .map(|threshold| (progress.qualifying_value.clamp(0, threshold), threshold)),
        qualifying: t.fill(
            "admin.tier.qualifying",
            &[("value", &amount(progress.qualifying_value))],
        ),
    }
}

/// Everything the profile shows, read now.
struct Loaded {
    member: MemberView,
    figures: MemberFigures,
    history: Vec<HistoryEntry>,
    vouchers: Vec<VoucherView>,
    /// The purchases the history names, by event id.
    purchases: HashMap<String, PurchaseState>,
    /// Names of the tenant's staff and keys, by how events name them (`user:<id>`, `key:<id>`).
    actors: HashMap<String, String>,
    /// The member's latest word on promotions per channel.
    consents: Vec<patron_store::segments::Consent>,
}

async fn load(
    state: &AppState,
    staff: &Staff,
    member_id: MemberId,
    before: Option<HistoryCursor>,
) -> Result<Loaded, StoreError> {
    let tenant = staff.tenant_id;
    let member = state
        .store
        .member(tenant, &MemberRef::Id(member_id), Utc::now())
        .await?;
    let history = state
        .store
        .history(tenant, member_id, HISTORY_PAGE_SIZE, before.as_ref())
        .await?;
    let event_ids: Vec<String> = history
        .iter()
        .filter_map(|entry| entry.event_id.clone())
        .collect();
    let mut actors: HashMap<String, String> = HashMap::new();
    for user in state.store.users(tenant).await? {
        actors.insert(Actor::user(&user.id).0, user.name);
    }
    for key in state.store.api_keys(tenant).await? {
        actors.insert(Actor::key(&key.id).0, key.name);
    }
    Ok(Loaded {
        figures: state.store.member_figures(tenant, member_id).await?,
        purchases: state.store.purchase_states(tenant, &event_ids).await?,
        history,
        vouchers: state.store.vouchers(tenant, member_id).await?,
        consents: state.store.consents(tenant, member_id).await?,
        actors,
        member,
    })
}

/// The forms and notice a profile is shown with.
#[derive(Default)]
struct Forms {
    notice: Option<&'static str>,
    adjust: AdjustForm,
    merge: MergeForm,
    erase: EraseForm,
    /// Whether this is a later page of the history.
    later_page: bool,
}

fn member_page(staff: Staff, loaded: Loaded, mut forms: Forms) -> MemberPage {
    let t = staff.t;
    let Loaded {
        member,
        figures,
        history,
        vouchers,
        purchases,
        actors,
        consents,
    } = loaded;
    let erased = figures.erased_at.is_some();
    let title = match (&member.name, &member.phone, erased) {
        (_, _, true) => t.get("admin.member.erased_title").to_owned(),
        (Some(name), _, _) if !name.is_empty() => name.clone(),
        (_, Some(phone), _) => phone.clone(),
        _ => t.get("admin.member.no_name").to_owned(),
    };
    let history_next = (history.len() as i64 == HISTORY_PAGE_SIZE)
        .then(|| history.last())
        .flatten()
        .map(|entry| {
            format!(
                "{}?before={}#history",
                member_path(&member.id),
                entry.cursor.encode()
            )
        });
    let mut purchases_shown: HashSet<String> = HashSet::new();
    let history = history
        .iter()
        .map(|entry| HistoryRow {
            at: date_time_of(&staff, &entry.occurred_at),
            kind: kind_label(t, &entry.kind),
            points: if entry.points > 0 {
                format!("+{}", staff.points(entry.points))
            } else if entry.points == 0 && !entry.holdings.is_empty() {
                String::new()
            } else {
                staff.points(entry.points)
            },
            credit: entry.points > 0,
            others: format::moved_lines(t, &entry.holdings, &staff.tenant.currency),
            reason: reason_text(&staff, entry),
            who: actor_name(&actors, entry),
            purchase: entry
                .event_id
                .as_ref()
                .filter(|id| purchases_shown.insert((*id).clone()))
                .and_then(|id| purchases.get(id).map(|state| (id, state)))
                .map(|(id, state)| PurchaseRow {
                    event_id: id.clone(),
                    voided: state.voided,
                    refundable: !state.voided && state.refunded_amount < state.amount,
                    void_event_id: format!("admin-void-{}", uuid::Uuid::now_v7().simple()),
                }),
        })
        .collect();
    let vouchers = vouchers
        .iter()
        .map(|voucher| VoucherRow {
            code: voucher.code.clone(),
            reward: voucher.reward_name.clone(),
            cost: staff.points(voucher.cost),
            status: voucher_status(t, &voucher.status),
            issued: date_of(&staff, &voucher.issued_at),
            expires: date_of(&staff, &voucher.expires_at),
        })
        .collect();
    if forms.adjust.event.is_empty() {
        forms.adjust.event = format!("admin-adjust-{}", uuid::Uuid::now_v7());
    }
    let when = |at: Option<chrono::DateTime<Utc>>| {
        at.map(|at| format::date(t.locale, at, staff.tenant.zone))
    };
    MemberPage {
        t,
        erased,
        title,
        notice: forms.notice,
        tier: tier_view(&staff, &member),
        balance: staff.points(member.balance),
        available: staff.points(member.available),
        pending: staff.points(member.pending),
        expiring: staff.points(member.expiring_soon),
        expiring_note: t.fill(
            "admin.member.expiring_until",
            &[("date", &date_of(&staff, &member.expiring_soon_until))],
        ),
        debt: (member.debt != 0).then(|| staff.points(member.debt.abs())),
        holdings: format::holding_lines(t, &member.holdings, &staff.tenant.currency),
        lifetime_spend: staff.money(member.lifetime_spend),
        orders: staff.points(member.order_count),
        joined: date_of(&staff, &member.created_at),
        first_purchase: when(figures.first_purchase_at),
        last_purchase: when(figures.last_purchase_at),
        history,
        history_next,
        history_first: forms
            .later_page
            .then(|| format!("{}#history", member_path(&member.id))),
        vouchers,
        consents: consent_rows(&staff, &consents),
        may_manage: staff.may(Permission::ManageMembers) && !erased,
        may_refund: staff.may(Permission::RecordEvents) && !erased,
        may_export: staff.may(Permission::ManageMembers),
        adjust: forms.adjust,
        merge: forms.merge,
        erase: forms.erase,
        member,
        staff,
    }
}

/// The member named in the path, or the page to show instead (404 for another tenant's).
fn parse_member_id(staff: &Staff, id: &str) -> Result<MemberId, Response> {
    MemberId::parse(id).map_err(|_| page::not_found(staff.t))
}

async fn show(
    state: &AppState,
    staff: Staff,
    member_id: MemberId,
    status: StatusCode,
    forms: Forms,
) -> Response {
    match load(state, &staff, member_id, None).await {
        Ok(loaded) => render_with(status, &member_page(staff, loaded, forms)),
        Err(StoreError::NotFound { .. }) => page::not_found(staff.t),
        Err(error) => page::failed(staff.t, error),
    }
}

/// `/admin/members/{id}`: the profile.
pub async fn profile(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    Query(query): Query<ProfileQuery>,
) -> Response {
    if let Err(refused) = reader(&staff) {
        return refused;
    }
    let member_id = match parse_member_id(&staff, &id) {
        Ok(member_id) => member_id,
        Err(refused) => return refused,
    };
    let before = query.before.as_deref().and_then(HistoryCursor::parse);
    let notice = match query.done.as_deref() {
        Some("adjusted") => Some("admin.done.adjusted"),
        Some("merged") => Some("admin.done.merged"),
        Some("erased") => Some("admin.done.erased"),
        _ => None,
    };
    let forms = Forms {
        notice,
        later_page: before.is_some(),
        ..Forms::default()
    };
    match load(&state, &staff, member_id, before).await {
        Ok(loaded) => render(&member_page(staff, loaded, forms)),
        Err(StoreError::NotFound { .. }) => page::not_found(staff.t),
        Err(error) => page::failed(staff.t, error),
    }
}

/// Checks the role and the form's token before any change.
fn may_change(staff: &Staff, csrf: &str) -> Result<(), Response> {
    reader(staff)?;
    staff.require(Permission::ManageMembers)?;
    staff.check_csrf(csrf)
}

fn done(id: &str, what: &str) -> Response {
    Redirect::to(&format!("{}?done={what}", member_path(id))).into_response()
}

// ---------------------------------------------------------------------------------------------
// Adjustment

#[derive(Debug, Default, Deserialize)]
pub struct AdjustFields {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    event: String,
    #[serde(default)]
    points: String,
    #[serde(default)]
    reason: String,
}

/// Reads points as staff type them: an optional sign (`-`, `−` or `+`), digits grouped in
/// threes by `.`, `,` or spaces.
fn parse_points(text: &str) -> Result<i64, &'static str> {
    let text = text.trim();
    let signed = match text.strip_prefix('−') {
        Some(rest) => format!("-{rest}"),
        None => text.strip_prefix('+').unwrap_or(text).to_owned(),
    };
    let value = match crate::format::parse_whole(&signed) {
        Ok(Some(value)) => value,
        Ok(None) | Err(WholeError::NotNumber | WholeError::Negative) => {
            return Err("admin.adjust.points_invalid")
        }
        Err(WholeError::TooLarge) => return Err("admin.adjust.points_too_large"),
    };
    if value == 0 {
        return Err("admin.adjust.points_zero");
    }
    if value.unsigned_abs() > patron_server::POINTS_MAX as u64 {
        return Err("admin.adjust.points_too_large");
    }
    Ok(value)
}

/// `POST /admin/members/{id}/adjust`: adds or takes points with a reason, as the API's
/// `/v1/members/{id}/adjustments` does (same event, same audit entry).
pub async fn adjust(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    Form(fields): Form<AdjustFields>,
) -> Response {
    if let Err(refused) = may_change(&staff, &fields.csrf) {
        return refused;
    }
    let member_id = match parse_member_id(&staff, &id) {
        Ok(member_id) => member_id,
        Err(refused) => return refused,
    };
    let reason = fields.reason.trim().to_owned();
    let mut form = AdjustForm {
        event: fields.event.trim().to_owned(),
        points: fields.points.clone(),
        reason: fields.reason.clone(),
        points_error: None,
        reason_error: None,
    };
    let points = parse_points(&fields.points).map_err(|error| form.points_error = Some(error));
    if reason.is_empty() {
        form.reason_error = Some("admin.adjust.reason_required");
    } else if reason.len() > patron_server::events::TEXT_LENGTH_MAX {
        form.reason_error = Some("admin.adjust.reason_too_long");
    }
    if patron_core::EventId::parse(&form.event).is_err() {
        form.event = format!("admin-adjust-{}", uuid::Uuid::now_v7());
    }
    let invalid = |form: AdjustForm| Forms {
        adjust: form,
        ..Forms::default()
    };
    let Ok(points) = points else {
        return show(
            &state,
            staff,
            member_id,
            StatusCode::UNPROCESSABLE_ENTITY,
            invalid(form),
        )
        .await;
    };
    if form.reason_error.is_some() {
        return show(
            &state,
            staff,
            member_id,
            StatusCode::UNPROCESSABLE_ENTITY,
            invalid(form),
        )
        .await;
    }
    let command = AdjustPoints {
        member: MemberRef::Id(member_id),
        asset: patron_core::ledger::Asset::Points,
        points,
        reason,
    };
    let event_id = patron_core::EventId::parse(&form.event).expect("checked above");
    let result = state
        .app
        .adjust_points(&staff.grant(), event_id, command)
        .await;
    let error = match result {
        Ok(_) => return done(&id, "adjusted"),
        Err(error) => error,
    };
    match (error.kind, error.code.as_str()) {
        (ErrorKind::NotFound, _) => page::not_found(staff.t),
        (ErrorKind::Forbidden, _) => page::forbidden(staff.t),
        (_, "adjustment_below_zero") => {
            form.points_error = Some("admin.adjust.below_zero");
            show(
                &state,
                staff,
                member_id,
                StatusCode::UNPROCESSABLE_ENTITY,
                invalid(form),
            )
            .await
        }
        (ErrorKind::Conflict, _) => {
            form.points_error = Some("admin.adjust.sent_before");
            form.event = String::new();
            show(
                &state,
                staff,
                member_id,
                StatusCode::UNPROCESSABLE_ENTITY,
                invalid(form),
            )
            .await
        }
        (ErrorKind::Invalid, _) => {
            let field_reason = error.field.as_deref() == Some("reason");
            if field_reason {
                form.reason_error = Some("admin.adjust.reason_too_long");
            } else {
                form.points_error = Some("admin.adjust.points_invalid");
            }
            show(
                &state,
                staff,
                member_id,
                StatusCode::UNPROCESSABLE_ENTITY,
                invalid(form),
            )
            .await
        }
        _ => page::failed(staff.t, format!("adjustment: {error}")),
    }
}

// ---------------------------------------------------------------------------------------------
// Merge

#[derive(Debug, Default, Deserialize)]
pub struct MergeFields {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    other: String,
}

struct Side {
    id: String,
    name: String,
    phone: String,
    email: String,
    tier: String,
    balance: String,
    orders: String,
}

fn side(staff: &Staff, member: &MemberView) -> Side {
    Side {
        id: member.id.clone(),
        name: member.name.clone().unwrap_or_default(),
        phone: member.phone.clone().unwrap_or_default(),
        email: member.email.clone().unwrap_or_default(),
        tier: tier_name(staff, &member.tier.tier),
        balance: staff.points(member.balance),
        orders: staff.points(member.order_count),
    }
}

#[derive(Template)]
#[template(path = "admin/merge.html")]
struct MergePage {
    t: Texts,
    staff: Staff,
    survivor: Side,
    source: Side,
}

/// `POST /admin/members/{id}/merge`: finds the other member (by phone or id) and asks to
/// confirm, showing both.
pub async fn merge(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    Form(fields): Form<MergeFields>,
) -> Response {
    if let Err(refused) = may_change(&staff, &fields.csrf) {
        return refused;
    }
    let member_id = match parse_member_id(&staff, &id) {
        Ok(member_id) => member_id,
        Err(refused) => return refused,
    };
    let other = fields.other.trim();
    let reference = if let Ok(phone) = Phone::parse(other) {
        Some(MemberRef::Phone(phone))
    } else {
        MemberId::parse(other).ok().map(MemberRef::Id)
    };
    let refuse = |error| Forms {
        merge: MergeForm {
            other: fields.other.clone(),
            error: Some(error),
        },
        ..Forms::default()
    };
    let Some(reference) = reference else {
        let forms = refuse("admin.merge.other_invalid");
        return show(
            &state,
            staff,
            member_id,
            StatusCode::UNPROCESSABLE_ENTITY,
            forms,
        )
        .await;
    };
    let now = Utc::now();
    let survivor = match state
        .store
        .member(staff.tenant_id, &MemberRef::Id(member_id), now)
        .await
    {
        Ok(survivor) => survivor,
        Err(StoreError::NotFound { .. }) => return page::not_found(staff.t),
        Err(error) => return page::failed(staff.t, error),
    };
    let source = match state.store.member(staff.tenant_id, &reference, now).await {
        Ok(source) => source,
        Err(StoreError::NotFound { .. }) => {
            let forms = refuse("admin.merge.not_found");
            return show(
                &state,
                staff,
                member_id,
                StatusCode::UNPROCESSABLE_ENTITY,
                forms,
            )
            .await;
        }
        Err(error) => return page::failed(staff.t, error),
    };
    if source.id == survivor.id {
        let forms = refuse("admin.merge.same");
        return show(
            &state,
            staff,
            member_id,
            StatusCode::UNPROCESSABLE_ENTITY,
            forms,
        )
        .await;
    }
    render(&MergePage {
        t: staff.t,
        survivor: side(&staff, &survivor),
        source: side(&staff, &source),
        staff,
    })
}

#[derive(Debug, Default, Deserialize)]
pub struct MergeConfirmFields {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    source: String,
}

/// `POST /admin/members/{id}/merge/confirm`: merges, through the journal (audited there).
pub async fn merge_confirm(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    Form(fields): Form<MergeConfirmFields>,
) -> Response {
    if let Err(refused) = may_change(&staff, &fields.csrf) {
        return refused;
    }
    let member_id = match parse_member_id(&staff, &id) {
        Ok(member_id) => member_id,
        Err(refused) => return refused,
    };
    let refuse = |error| Forms {
        merge: MergeForm {
            other: fields.source.clone(),
            error: Some(error),
        },
        ..Forms::default()
    };
    let Ok(source) = MemberId::parse(fields.source.trim()) else {
        let forms = refuse("admin.merge.other_invalid");
        return show(
            &state,
            staff,
            member_id,
            StatusCode::UNPROCESSABLE_ENTITY,
            forms,
        )
        .await;
    };
    match state.app.merge(&staff.grant(), member_id, source).await {
        Ok(_) => done(&id, "merged"),
        Err(error) if error.kind == ErrorKind::NotFound => {
            let forms = refuse("admin.merge.not_found");
            show(
                &state,
                staff,
                member_id,
                StatusCode::UNPROCESSABLE_ENTITY,
                forms,
            )
            .await
        }
        Err(error) if error.kind == ErrorKind::Invalid => {
            let forms = refuse("admin.merge.same");
            show(
                &state,
                staff,
                member_id,
                StatusCode::UNPROCESSABLE_ENTITY,
                forms,
            )
            .await
        }
        Err(error) => page::failed(staff.t, error),
    }
}

// ---------------------------------------------------------------------------------------------
// Decree 13: export and erasure

/// `GET /admin/members/{id}/export`: everything held about the member, as a JSON download.
pub async fn export(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
) -> Response {
    if let Err(refused) = reader(&staff).and_then(|()| staff.require(Permission::ManageMembers)) {
        return refused;
    }
    let member_id = match parse_member_id(&staff, &id) {
        Ok(member_id) => member_id,
        Err(refused) => return refused,
    };
    let data = match state.store.member_export(staff.tenant_id, member_id).await {
        Ok(data) => data,
        Err(StoreError::NotFound { .. }) => return page::not_found(staff.t),
        Err(error) => return page::failed(staff.t, error),
    };
    let taken = patron_store::audit::Change {
        tenant_id: staff.tenant_id,
        actor: &Actor::user(&staff.user.id),
        action: "member.export",
        subject: format!("member:{member_id}"),
        before: None,
        after: None,
    };
    if let Err(error) = state.store.audit(&taken).await {
        return page::failed(staff.t, error);
    }
    let body = serde_json::to_string_pretty(&data).unwrap_or_else(|_| data.to_string());
    (
        [
            (
                header::CONTENT_TYPE,
                "application/json; charset=utf-8".to_owned(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"member-{member_id}.json\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        body,
    )
        .into_response()
}

#[derive(Debug, Default, Deserialize)]
pub struct EraseFields {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    confirm: String,
}

/// `POST /admin/members/{id}/erase`: wipes the member's personal data once confirmed; the
/// ledger stays, anonymous.
pub async fn erase(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    Form(fields): Form<EraseFields>,
) -> Response {
    if let Err(refused) = may_change(&staff, &fields.csrf) {
        return refused;
    }
    let member_id = match parse_member_id(&staff, &id) {
        Ok(member_id) => member_id,
        Err(refused) => return refused,
    };
    if fields.confirm != "yes" {
        let forms = Forms {
            erase: EraseForm {
                error: Some("admin.erase.confirm_required"),
            },
            ..Forms::default()
        };
        return show(
            &state,
            staff,
            member_id,
            StatusCode::UNPROCESSABLE_ENTITY,
            forms,
        )
        .await;
    }
    let actor = Actor::user(&staff.user.id);
    match state
        .store
        .erase_member(staff.tenant_id, member_id, &actor)
        .await
    {
        Ok(()) => done(&id, "erased"),
        Err(StoreError::NotFound { .. }) => page::not_found(staff.t),
        Err(error) => page::failed(staff.t, error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_are_read_as_staff_type_them() {
        assert_eq!(parse_points("1.000"), Ok(1000));
        assert_eq!(parse_points(" -250 "), Ok(-250));
        assert_eq!(parse_points("+1 200"), Ok(1200));
        assert_eq!(parse_points("0"), Err("admin.adjust.points_zero"));
        assert_eq!(parse_points("abc"), Err("admin.adjust.points_invalid"));
        assert_eq!(parse_points(""), Err("admin.adjust.points_invalid"));
        assert_eq!(parse_points("--5"), Err("admin.adjust.points_invalid"));
        assert_eq!(
            parse_points("99999999999999999999"),
            Err("admin.adjust.points_too_large")
        );
        assert_eq!(
            parse_points("1000000001"),
            Err("admin.adjust.points_too_large")
        );
    }
}
