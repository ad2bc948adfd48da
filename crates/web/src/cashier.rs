//! The cashier screen: a phone or tablet at the till, one screen per action.
//!
//! Find the customer (phone, or the card code from their member page, typed or scanned) →
//! their card with a purchase form → the receipt ("+15 điểm", the new balance). An unknown
//! phone is enrolled in one step. Every form that records something carries an event id made
//! when the form was drawn, and the event goes through the journal with that id, so a second
//! tap (or a resend after a lost answer) gets the first answer and records nothing twice.
//!
//! A purchase above the tenant's `purchase_amount_confirm` is recorded only once the cashier
//! confirms the amount (a second submit carrying it); above `purchase_amount_max` it is
//! refused. The store picked for a sale is remembered by the device (`TILL_STORE_COOKIE`).
//! From a receipt, a cashier refunds part or all of the bill, and a manager or owner voids
//! the sale (`Permission::ManageMembers`, as the API asks).

use crate::format::{self, WholeError};
use crate::i18n::Texts;
use crate::page::{self, render, render_with};
use crate::staff::Staff;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use patron_app::{
    AppError, Command, Enrol, ErrorKind, PurchaseWithVoucher, RecordPurchase, Refund, Sending, Void,
};
use patron_core::engine::Rejection;
use patron_core::event::Purchase;
use patron_core::member::Profile;
use patron_core::{EventId, MemberId, Money, Phone, Points};
use patron_server::auth::Permission;
use patron_server::{AppState, AMOUNT_MAX, POINTS_MAX};
use patron_store::member_access::{display_card_code, parse_card_code};
use patron_store::{EventError, EventResult, MemberRef, MemberView, StoreError, VoucherView};
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/cashier", get(find_page))
        .route("/cashier/find", get(find))
        .route("/cashier/enrol", post(enrol))
        .route("/cashier/member/{id}", get(member_page))
        .route("/cashier/member/{id}/purchase", post(purchase))
        .route("/cashier/member/{id}/link", post(member_link))
        .route("/cashier/receipt/{event_id}", get(receipt))
        .route("/cashier/find-receipt", get(find_receipt))
        .route("/cashier/receipt/{event_id}/refund", post(refund))
        .route("/cashier/receipt/{event_id}/void", post(void))
        .route("/cashier/reversal/{event_id}", get(reversal))
        .route("/static/cashier.js", get(cashier_js))
}

async fn cashier_js() -> Response {
    crate::static_file(
        "text/javascript; charset=utf-8",
        include_str!("../static/cashier.js"),
    )
}

/// Longest name taken at the till, in bytes (the API's limit for free text).
const NAME_LENGTH_MAX: usize = 200;
/// Longest text typed into the find box before it is refused unread.
const FIND_LENGTH_MAX: usize = 64;
/// The cookie in which a till's browser remembers the store it sells for.
pub const TILL_STORE_COOKIE: &str = "patron_till_store";
/// How long a till remembers its store: 400 days, the longest browsers keep a cookie.
const TILL_STORE_COOKIE_MAX_AGE_SECONDS: i64 = 400 * 24 * 60 * 60;

/// Messages shown next to the fields of a form, by field name.
#[derive(Default)]
pub(crate) struct FieldErrors(Vec<(&'static str, String)>);

impl FieldErrors {
    pub(crate) fn add(&mut self, field: &'static str, message: impl Into<String>) {
        if self.get(field).is_none() {
            self.0.push((field, message.into()));
        }
    }

    pub(crate) fn get(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(name, _)| *name == field)
            .map(|(_, message)| message.as_str())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A fresh idempotency key for a form about to be drawn.
pub(crate) fn new_event_id(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::now_v7().simple())
}

/// Parses a whole number as people type it at a till: `150000`, `150.000`, `150,000`,
/// `150 000`, with or without `đ`; never negative.
pub(crate) fn parse_whole(text: &str) -> Result<Option<i64>, WholeError> {
    let mut text = text.trim().to_lowercase();
    for unit in ["vnd", "đ", "₫", "d"] {
        if let Some(rest) = text.strip_suffix(unit) {
            text = rest.trim_end().to_owned();
        }
    }
    if text.starts_with('-') {
        return Err(WholeError::Negative);
    }
    format::parse_whole(&text)
}

// ---------------------------------------------------------------------------------------
// Finding the customer

#[derive(Template)]
#[template(path = "cashier/find.html")]
struct FindPage {
    t: Texts,
    staff: Staff,
    query: String,
    error: Option<String>,
}

async fn find_page(staff: Staff) -> Response {
    if let Err(refused) = staff.require(Permission::RecordEvents) {
        return refused;
    }
    render(&FindPage {
        t: staff.t,
        staff,
        query: String::new(),
        error: None,
    })
}

#[derive(Deserialize)]
struct FindQuery {
    #[serde(default)]
    q: String,
}

/// A card code, else a phone: the member's card, or the enrolment form for a new phone.
async fn find(
    State(state): State<AppState>,
    staff: Staff,
    Query(query): Query<FindQuery>,
) -> Response {
    if let Err(refused) = staff.require(Permission::RecordEvents) {
        return refused;
    }
    let typed = query.q.trim().to_owned();
    let again = |staff: Staff, key: &str| {
        let error = Some(staff.t.get(key).to_owned());
        render_with(
            StatusCode::UNPROCESSABLE_ENTITY,
            &FindPage {
                t: staff.t,
                staff,
                query: typed.clone(),
                error,
            },
        )
    };
    if typed.is_empty() {
        return again(staff, "cashier.find_missing");
    }
    if typed.len() > FIND_LENGTH_MAX {
        return again(staff, "cashier.find_invalid");
    }
    if parse_card_code(&typed).is_some() {
        match state.store.member_by_card(staff.tenant_id, &typed).await {
            Ok(Some(member)) => return to_member(member),
            Ok(None) => {}
            Err(error) => return page::failed(staff.t, error),
        }
    }
    let Ok(phone) = Phone::parse(&typed) else {
        let key = if parse_card_code(&typed).is_some() {
            "cashier.card_not_found"
        } else {
            "cashier.find_invalid"
        };
        return again(staff, key);
    };
    match state
        .store
        .member_id(staff.tenant_id, &MemberRef::Phone(phone.clone()))
        .await
    {
        Ok(member) => to_member(member),
        Err(StoreError::NotFound { .. }) => render(&EnrolPage {
            t: staff.t,
            event_id: new_event_id("till-enrol"),
            not_found: Some(phone.national()),
            phone: phone.national(),
            name: String::new(),
            errors: FieldErrors::default(),
            staff,
        }),
        Err(error) => page::failed(staff.t, error),
    }
}

fn to_member(member: MemberId) -> Response {
    Redirect::to(&format!("/cashier/member/{member}")).into_response()
}

// ---------------------------------------------------------------------------------------
// Enrolling a new member

#[derive(Template)]
#[template(path = "cashier/enrol.html")]
struct EnrolPage {
    t: Texts,
    staff: Staff,
    event_id: String,
    not_found: Option<String>,
    phone: String,
    name: String,
    errors: FieldErrors,
}

#[derive(Deserialize)]
struct EnrolForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    event_id: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    name: String,
}

async fn enrol(
    State(state): State<AppState>,
    staff: Staff,
    Form(form): Form<EnrolForm>,
) -> Response {
    if let Err(refused) = staff.require(Permission::RecordEvents) {
        return refused;
    }
    if let Err(refused) = staff.check_csrf(&form.csrf) {
        return refused;
    }
    let t = staff.t;
    let mut errors = FieldErrors::default();
    let phone = Phone::parse(&form.phone);
    if phone.is_err() {
        errors.add("phone", t.get("cashier.phone_invalid"));
    }
    let name = form.name.trim().to_owned();
    if name.len() > NAME_LENGTH_MAX {
        errors.add("name", t.get("cashier.name_too_long"));
    }
    let again = |staff: Staff, errors: FieldErrors| {
        render_with(
            StatusCode::UNPROCESSABLE_ENTITY,
            &EnrolPage {
                t,
                staff,
                event_id: form.event_id.clone(),
                not_found: None,
                phone: form.phone.clone(),
                name: form.name.clone(),
                errors,
            },
        )
    };
    let Ok(phone) = phone else {
        return again(staff, errors);
    };
    if !errors.is_empty() {
        return again(staff, errors);
    }
    let profile = Profile {
        name: (!name.is_empty()).then_some(name),
        ..Profile::default()
    };
    let answer = submit(&state, &staff, &form.event_id, Enrol { phone, profile }).await;
    match answer {
        Ok(result) => match result.member_id {
            Some(member) => Redirect::to(&format!("/cashier/member/{member}")).into_response(),
            None => page::failed(t, "an enrolment without a member"),
        },
        Err(Refusal::Field(field, message)) => {
            let field = if field == "profile.name" {
                "name"
            } else {
                "phone"
            };
            errors.add(field, message);
            again(staff, errors)
        }
        Err(Refusal::Page(response)) => response,
    }
}

/// Why the journal or the API's parsing refused an event, for the form.
enum Refusal {
    /// A message for the named field (the API's field name).
    Field(String, String),
    /// A whole page (a 404, a 500).
    Page(Response),
}

/// Records `command` through the app layer, as the signed-in member of staff, under the id the
/// form was drawn with.
async fn submit(
    state: &AppState,
    staff: &Staff,
    event_id: &str,
    command: impl Into<Command>,
) -> Result<EventResult, Refusal> {
    let t = staff.t;
    let id = parse_event_id(t, event_id)?;
    state
        .app
        .submit(&staff.grant(), Sending::new(id, command))
        .await
        .map_err(|error| refusal(t, error))
}

/// The id a form was drawn with; a forged or mangled one is refused next to the form.
fn parse_event_id(t: Texts, text: &str) -> Result<EventId, Refusal> {
    EventId::parse(text).map_err(|error| {
        Refusal::Field(
            "id".into(),
            t.fill("cashier.rejected", &[("reason", &error.to_string())]),
        )
    })
}

/// The one place the app layer's refusals become the till's: the journal's by their kind,
/// the rest (a permission, a value) as a page or a message next to the field.
fn refusal(t: Texts, error: AppError) -> Refusal {
    if let Some(event) = error.event {
        return event_refusal(t, event);
    }
    match error.kind {
        ErrorKind::Forbidden => Refusal::Page(page::forbidden(t)),
        ErrorKind::NotFound => Refusal::Page(page::not_found(t)),
        ErrorKind::Internal | ErrorKind::Unavailable => Refusal::Page(page::failed(t, error)),
        ErrorKind::Invalid | ErrorKind::Conflict => Refusal::Field(
            error.field.unwrap_or_default(),
            t.fill("cashier.rejected", &[("reason", &error.message)]),
        ),
    }
}

fn event_refusal(t: Texts, error: EventError) -> Refusal {
    let key = match &error {
        EventError::ExistsWithDifferentBody => "cashier.already_recorded",
        EventError::PhoneTaken => "cashier.phone_taken",
        EventError::MemberQuarantined => "cashier.member_quarantined",
        EventError::UnknownStore => "cashier.store_unknown",
        EventError::VoucherNotFound => "cashier.voucher_unknown",
        EventError::AmountAboveMaximum { .. } => "cashier.amount_above_maximum",
        EventError::OriginalNotFound => "cashier.receipt_not_found",
        EventError::Rejected(Rejection::InsufficientPoints { available, .. }) => {
            let message = t.fill(
                "cashier.points_too_many",
                &[("available", &format::points(t.locale, available.0.max(0)))],
            );
            return Refusal::Field("points_paid".into(), message);
        }
        EventError::Rejected(rejection) => match rejection.code() {
            "points_exceed_bill" => "cashier.points_exceed_bill",
            "voucher_not_usable" => "cashier.voucher_used",
            "voucher_expired" => "cashier.voucher_expired",
            "voucher_wrong_store" => "cashier.voucher_wrong_store",
            "refund_exceeds_purchase" => "cashier.refund_too_much",
            "purchase_voided" => "cashier.already_voided",
            _ => "",
        },
        EventError::MemberNotFound => return Refusal::Page(page::not_found(t)),
        EventError::Database(_) | EventError::Unavailable => {
            return Refusal::Page(page::failed(t, error))
        }
        _ => "",
    };
    let message = if key.is_empty() {
        t.fill(
            "cashier.rejected",
            &[("reason", &crate::reasons::refusal(t, &error))],
        )
    } else {
        t.get(key).to_owned()
    };
    Refusal::Field(error.field().unwrap_or("id").to_owned(), message)
}

// ---------------------------------------------------------------------------------------
// The member's card at the till, with the purchase form

/// What the till shows of a member.
struct MemberPanel {
    view: MemberView,
    card_code: String,
    vouchers: Vec<VoucherView>,
    /// Store credit and stamps.
    holdings: Vec<format::HoldingLine>,
    /// The sales policies of the segments the member is in.
    policies: Vec<PolicyLine>,
}

/// What a segment the member is in asks of the till: `VIP · −5% · price list Sỉ · note`.
struct PolicyLine {
    segment: String,
    discount: Option<String>,
    price_list: Option<String>,
    note: Option<String>,
}

/// The sales policies of the member's segments. The till still serves when the segments
/// cannot be read (logged): a sale matters more than its discount note.
async fn policy_lines(
    state: &AppState,
    grant: &patron_app::Grant,
    member: MemberId,
) -> Vec<PolicyLine> {
    let segments = match state.app.member_segments(grant, member).await {
        Ok(segments) => segments,
        Err(error) => {
            tracing::warn!(%error, %member, "the member's segments were not read for the till");
            return Vec::new();
        }
    };
    segments
        .into_iter()
        .filter_map(|segment| {
            let policy = segment.policy?;
            Some(PolicyLine {
                segment: segment.name,
                discount: (policy.discount_percent > 0)
                    .then(|| crate::admin::discount_text(policy.discount_percent)),
                price_list: policy.price_list.filter(|list| !list.is_empty()),
                note: policy.note.filter(|note| !note.is_empty()),
            })
        })
        .collect()
}

impl MemberPanel {
    fn name(&self) -> Option<&str> {
        self.view.name.as_deref()
    }

    fn phone(&self) -> String {
        self.view
            .phone
            .as_deref()
            .and_then(|phone| Phone::parse(phone).ok())
            .map(|phone| phone.national())
            .unwrap_or_default()
    }
}

async fn member_panel(
    state: &AppState,
    staff: &Staff,
    member: MemberId,
) -> Result<MemberPanel, Response> {
    let t = staff.t;
    let grant = staff.grant();
    let view = match state.app.member(&grant, &MemberRef::Id(member)).await {
        Ok(view) => view,
        Err(error) if error.kind == ErrorKind::NotFound => return Err(page::not_found(t)),
        Err(error) => return Err(page::failed(t, error)),
    };
    let card_code = state
        .store
        .card_code(staff.tenant_id, member)
        .await
        .map_err(|error| page::failed(t, error))?;
    let vouchers = state
        .app
        .vouchers(&grant, member)
        .await
        .map_err(|error| page::failed(t, error))?
        .into_iter()
        .filter(|voucher| voucher.status == "issued")
        .collect();
    let policies = policy_lines(state, &grant, member).await;
    Ok(MemberPanel {
        holdings: format::holding_lines(t, &view.holdings, &staff.tenant.currency),
        policies,
        view,
        card_code: display_card_code(&card_code),
        vouchers,
    })
}

/// The purchase form's fields as typed, and what is wrong with them.
struct PurchaseForm {
    event_id: String,
    amount: String,
    store: String,
    points: String,
    voucher: String,
    /// An amount above the tenant's confirmation limit, waiting for the cashier's confirmation.
    confirm_amount: Option<i64>,
    errors: FieldErrors,
}

#[derive(Template)]
#[template(path = "cashier/member.html")]
struct MemberPage {
    t: Texts,
    staff: Staff,
    member: MemberPanel,
    stores: Vec<(String, String)>,
    form: PurchaseForm,
}

impl MemberPage {
    fn date(&self, rfc3339: &str) -> String {
        chrono::DateTime::parse_from_rfc3339(rfc3339)
            .map(|at| {
                format::date(
                    self.t.locale,
                    at.with_timezone(&chrono::Utc),
                    self.staff.tenant.zone,
                )
            })
            .unwrap_or_default()
    }
}

fn member_id_of(text: &str, t: Texts) -> Result<MemberId, Response> {
    MemberId::parse(text).map_err(|_| page::not_found(t))
}

/// The store this device last sold for, from its cookie.
fn remembered_store(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == TILL_STORE_COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// The `Set-Cookie` value that makes this device remember `store`. Not `Secure`: it holds no
/// secret, and a till on the shop's network may be served over plain HTTP.
fn remember_store_cookie(store: &str) -> String {
    format!(
        "{TILL_STORE_COOKIE}={}; Path=/cashier; Max-Age={TILL_STORE_COOKIE_MAX_AGE_SECONDS}; HttpOnly; SameSite=Lax",
        query_escape(store)
    )
}

async fn member_page(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = staff.require(Permission::RecordEvents) {
        return refused;
    }
    let member = match member_id_of(&id, staff.t) {
        Ok(member) => member,
        Err(refused) => return refused,
    };
    let panel = match member_panel(&state, &staff, member).await {
        Ok(panel) => panel,
        Err(refused) => return refused,
    };
    let stores = match state.store.store_names(staff.tenant_id).await {
        Ok(stores) => stores,
        Err(error) => return page::failed(staff.t, error),
    };
    let remembered = remembered_store(&headers)
        .filter(|remembered| stores.iter().any(|(code, _)| code == remembered));
    let store = match remembered {
        Some(store) => store,
        None if stores.len() == 1 => stores[0].0.clone(),
        None => String::new(),
    };
    render(&MemberPage {
        t: staff.t,
        staff,
        member: panel,
        stores,
        form: PurchaseForm {
            event_id: new_event_id("till"),
            amount: String::new(),
            store,
            points: String::new(),
            voucher: String::new(),
            confirm_amount: None,
            errors: FieldErrors::default(),
        },
    })
}

#[derive(Deserialize)]
struct PurchaseFields {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    event_id: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    store: String,
    #[serde(default)]
    points: String,
    #[serde(default)]
    voucher: String,
    /// The amount the cashier confirmed, when it was above the confirmation limit.
    #[serde(default)]
    confirmed_amount: String,
}

/// Checks the typed fields; returns the amount, points and voucher to record.
fn check_purchase(
    t: Texts,
    fields: &PurchaseFields,
    panel: &MemberPanel,
    stores: &[(String, String)],
    maximum: i64,
    currency: &str,
    errors: &mut FieldErrors,
) -> (i64, i64, Option<String>) {
    let amount = match parse_whole(&fields.amount) {
        Ok(None) => {
            errors.add("amount", t.get("cashier.amount_missing"));
            0
        }
        Ok(Some(0)) | Err(WholeError::Negative) => {
            errors.add("amount", t.get("cashier.amount_not_positive"));
            0
        }
        Ok(Some(amount)) if amount > AMOUNT_MAX => {
            errors.add("amount", t.get("cashier.amount_too_large"));
            0
        }
        Ok(Some(amount)) if amount > maximum => {
            errors.add(
                "amount",
                t.fill(
                    "cashier.amount_above_maximum_of",
                    &[("maximum", &format::money(t.locale, maximum, currency))],
                ),
            );
            0
        }
        Err(WholeError::TooLarge) => {
            errors.add("amount", t.get("cashier.amount_too_large"));
            0
        }
        Err(WholeError::NotNumber) => {
            errors.add("amount", t.get("cashier.amount_not_number"));
            0
        }
        Ok(Some(amount)) => amount,
    };
    // Whether the member has the points is the engine's to say; here only what can be read.
    let available = panel.view.available.max(0);
    let too_many = || {
        t.fill(
            "cashier.points_too_many",
            &[("available", &format::points(t.locale, available))],
        )
    };
    let points = match parse_whole(&fields.points) {
        Ok(None) => 0,
        Ok(Some(points)) if points > POINTS_MAX => {
            errors.add("points", too_many());
            0
        }
        Ok(Some(points)) => points,
        Err(WholeError::TooLarge) => {
            errors.add("points", too_many());
            0
        }
        Err(_) => {
            errors.add("points", t.get("cashier.points_not_number"));
            0
        }
    };
    // A tenant without stores sells without naming one.
    let store_fits = if stores.is_empty() {
        fields.store.is_empty()
    } else {
        stores.iter().any(|(code, _)| *code == fields.store)
    };
    if !store_fits {
        errors.add("store", t.get("cashier.store_unknown"));
    }
    // Whether the voucher can be used is the app layer's and the engine's to say.
    let voucher = fields.voucher.trim();
    (
        amount,
        points,
        (!voucher.is_empty()).then(|| voucher.to_owned()),
    )
}

async fn purchase(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    Form(fields): Form<PurchaseFields>,
) -> Response {
    if let Err(refused) = staff.require(Permission::RecordEvents) {
        return refused;
    }
    if let Err(refused) = staff.check_csrf(&fields.csrf) {
        return refused;
    }
    let t = staff.t;
    let member = match member_id_of(&id, t) {
        Ok(member) => member,
        Err(refused) => return refused,
    };
    // Drawn before the checks: a repeat of an event already recorded must reach the journal
    // (which answers it) even though the balance it was checked against has changed since.
    if let Ok(Some(_)) = state
        .store
        .event_result(staff.tenant_id, &fields.event_id)
        .await
    {
        return to_receipt(&fields.event_id);
    }
    let panel = match member_panel(&state, &staff, member).await {
        Ok(panel) => panel,
        Err(refused) => return refused,
    };
    let stores = match state.store.store_names(staff.tenant_id).await {
        Ok(stores) => stores,
        Err(error) => return page::failed(t, error),
    };
    let mut errors = FieldErrors::default();
    let limits = (
        staff.tenant.purchase_amount_max,
        staff.tenant.purchase_amount_confirm,
    );
    let (amount, points, voucher) = check_purchase(
        t,
        &fields,
        &panel,
        &stores,
        limits.0,
        &staff.tenant.currency,
        &mut errors,
    );
    let confirmed = parse_whole(&fields.confirmed_amount) == Ok(Some(amount));
    let confirm_amount = (errors.is_empty() && amount > limits.1 && !confirmed).then_some(amount);
    let again = |staff: Staff, panel: MemberPanel, stores, errors| {
        render_with(
            StatusCode::UNPROCESSABLE_ENTITY,
            &MemberPage {
                t,
                staff,
                member: panel,
                stores,
                form: PurchaseForm {
                    event_id: fields.event_id.clone(),
                    amount: fields.amount.clone(),
                    store: fields.store.clone(),
                    points: fields.points.clone(),
                    voucher: fields.voucher.clone(),
                    confirm_amount,
                    errors,
                },
            },
        )
    };
    if !errors.is_empty() || confirm_amount.is_some() {
        return again(staff, panel, stores, errors);
    }
    let store = (!fields.store.is_empty()).then(|| fields.store.clone());
    let remember = store.as_deref().map(remember_store_cookie);
    let command = RecordPurchase {
        member: MemberRef::Id(member),
        purchase: Purchase {
            store,
            amount: Money(amount),
            points_paid: Points(points),
            items: Vec::new(),
        },
        profile: None,
    };
    let refused = |staff: Staff, panel, stores, refusal: Refusal| match refusal {
        Refusal::Field(field, message) => {
            let mut errors = FieldErrors::default();
            let field = match field.as_str() {
                "amount" => "amount",
                "points_paid" => "points",
                "store" => "store",
                "code" | "voucher" => "voucher",
                _ => "form",
            };
            errors.add(field, message);
            again(staff, panel, stores, errors)
        }
        Refusal::Page(response) => response,
    };
    let Some(code) = voucher else {
        if let Err(refusal) = submit(&state, &staff, &fields.event_id, command).await {
            return refused(staff, panel, stores, refusal);
        }
        return remembering(remember, to_receipt(&fields.event_id));
    };
    // The sale and the voucher's use go together; the use's id is the sale's with `-voucher`
    // after it, so a resend repeats both harmlessly.
    let id = match parse_event_id(t, &fields.event_id) {
        Ok(id) => id,
        Err(refusal) => return refused(staff, panel, stores, refusal),
    };
    let answer = state
        .app
        .purchase_with_voucher(
            &staff.grant(),
            id,
            PurchaseWithVoucher {
                purchase: command,
                code,
            },
        )
        .await;
    if let Err(error) = answer {
        return refused(staff, panel, stores, refusal(t, error));
    }
    remembering(remember, to_receipt(&fields.event_id))
}

/// Adds the cookie that remembers the till's store, when there is one.
fn remembering(cookie: Option<String>, mut response: Response) -> Response {
    if let Some(value) = cookie.and_then(|cookie| cookie.parse().ok()) {
        response
            .headers_mut()
            .append(axum::http::header::SET_COOKIE, value);
    }
    response
}

fn to_receipt(event_id: &str) -> Response {
    Redirect::to(&format!("/cashier/receipt/{}", query_escape(event_id))).into_response()
}

/// Percent-encodes everything but unreserved characters.
pub(crate) fn query_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// The receipt

#[derive(Template)]
#[template(path = "cashier/receipt.html")]
struct ReceiptPage {
    t: Texts,
    staff: Staff,
    result: EventResult,
    member: MemberView,
    /// The code of the voucher used with this sale, if one was (they are recorded together).
    voucher_used: Option<String>,
    reverse: ReverseForm,
}

/// The refund and void forms under a receipt.
struct ReverseForm {
    refund_event_id: String,
    void_event_id: String,
    amount: String,
    /// A void needs a manager or owner; the form is shown only to them.
    may_void: bool,
    errors: FieldErrors,
}

impl ReverseForm {
    fn new(staff: &Staff) -> ReverseForm {
        ReverseForm {
            refund_event_id: new_event_id("till-refund"),
            void_event_id: new_event_id("till-void"),
            amount: String::new(),
            may_void: staff.require(Permission::ManageMembers).is_ok(),
            errors: FieldErrors::default(),
        }
    }
}

/// The receipt of the purchase `event_id`, with empty refund and void forms.
async fn receipt_page(
    state: &AppState,
    staff: Staff,
    event_id: &str,
) -> Result<ReceiptPage, Response> {
    let t = staff.t;
    let result = match state.store.event_result(staff.tenant_id, event_id).await {
        Ok(Some(result)) if result.kind == "purchase" => result,
        Ok(_) => return Err(page::not_found(t)),
        Err(error) => return Err(page::failed(t, error)),
    };
    let member = event_member(state, &staff, &result).await?;
    let voucher_used = match state
        .store
        .event_result(staff.tenant_id, &format!("{event_id}-voucher"))
        .await
    {
        Ok(found) => found.map(|used| used.voucher.map(|voucher| voucher.code).unwrap_or_default()),
        Err(error) => return Err(page::failed(t, error)),
    };
    Ok(ReceiptPage {
        t,
        result,
        member,
        voucher_used,
        reverse: ReverseForm::new(&staff),
        staff,
    })
}

/// The member an event's answer names, as they stand now.
async fn event_member(
    state: &AppState,
    staff: &Staff,
    result: &EventResult,
) -> Result<MemberView, Response> {
    let t = staff.t;
    let Some(member) = result
        .member_id
        .as_deref()
        .and_then(|id| MemberId::parse(id).ok())
    else {
        return Err(page::not_found(t));
    };
    match state
        .store
        .member(staff.tenant_id, &MemberRef::Id(member), chrono::Utc::now())
        .await
    {
        Ok(member) => Ok(member),
        Err(StoreError::NotFound { .. }) => Err(page::not_found(t)),
        Err(error) => Err(page::failed(t, error)),
    }
}

async fn receipt(
    State(state): State<AppState>,
    staff: Staff,
    Path(event_id): Path<String>,
) -> Response {
    if let Err(refused) = staff.require(Permission::RecordEvents) {
        return refused;
    }
    match receipt_page(&state, staff, &event_id).await {
        Ok(page) => render(&page),
        Err(refused) => refused,
    }
}

#[derive(Deserialize)]
struct FindReceiptQuery {
    #[serde(default)]
    receipt: String,
}

/// A receipt by its number (the event id of the sale), to refund or void it.
async fn find_receipt(staff: Staff, Query(query): Query<FindReceiptQuery>) -> Response {
    if let Err(refused) = staff.require(Permission::RecordEvents) {
        return refused;
    }
    let receipt = query.receipt.trim();
    if receipt.is_empty() || receipt.len() > FIND_LENGTH_MAX {
        return page::not_found(staff.t);
    }
    to_receipt(receipt)
}

#[derive(Deserialize)]
struct ReverseFields {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    event_id: String,
    #[serde(default)]
    amount: String,
}

/// Refunds part or all of a sale's bill (the part paid with points included): a cashier may.
async fn refund(
    State(state): State<AppState>,
    staff: Staff,
    Path(original): Path<String>,
    Form(fields): Form<ReverseFields>,
) -> Response {
    reverse(state, staff, original, fields, false).await
}

/// Voids a sale: all of it is reversed. Only a manager or owner may.
async fn void(
    State(state): State<AppState>,
    staff: Staff,
    Path(original): Path<String>,
    Form(fields): Form<ReverseFields>,
) -> Response {
    reverse(state, staff, original, fields, true).await
}

async fn reverse(
    state: AppState,
    staff: Staff,
    original: String,
    fields: ReverseFields,
    voiding: bool,
) -> Response {
    let permission = if voiding {
        Permission::ManageMembers
    } else {
        Permission::RecordEvents
    };
    if let Err(refused) = staff.require(permission) {
        return refused;
    }
    if let Err(refused) = staff.check_csrf(&fields.csrf) {
        return refused;
    }
    let t = staff.t;
    let mut errors = FieldErrors::default();
    let original_id = EventId::parse(&original);
    let mut command = None;
    if voiding {
        command = original_id
            .ok()
            .map(|original| Command::from(Void { original }));
    } else {
        match parse_whole(&fields.amount) {
            Ok(Some(amount)) if amount > 0 && amount <= AMOUNT_MAX => {
                command = original_id.ok().map(|original| {
                    Command::from(Refund {
                        original,
                        amount: Money(amount),
                    })
                })
            }
            Ok(None) => errors.add("refund_amount", t.get("cashier.amount_missing")),
            Ok(Some(_)) | Err(WholeError::Negative) => {
                errors.add("refund_amount", t.get("cashier.amount_not_positive"))
            }
            Err(WholeError::TooLarge) => {
                errors.add("refund_amount", t.get("cashier.amount_too_large"))
            }
            Err(WholeError::NotNumber) => {
                errors.add("refund_amount", t.get("cashier.amount_not_number"))
            }
        }
    }
    if errors.is_empty() {
        let answer = match command {
            Some(command) => submit(&state, &staff, &fields.event_id, command).await,
            None => Err(Refusal::Page(page::not_found(t))),
        };
        match answer {
            Ok(_) => {
                let target = format!("/cashier/reversal/{}", query_escape(&fields.event_id));
                return Redirect::to(&target).into_response();
            }
            Err(Refusal::Field(field, message)) => {
                let field = if field == "amount" && !voiding {
                    "refund_amount"
                } else {
                    "reverse"
                };
                errors.add(field, message);
            }
            Err(Refusal::Page(response)) => return response,
        }
    }
    let mut page = match receipt_page(&state, staff, &original).await {
        Ok(page) => page,
        Err(refused) => return refused,
    };
    if voiding {
        page.reverse.void_event_id = fields.event_id;
    } else {
        page.reverse.refund_event_id = fields.event_id;
        page.reverse.amount = fields.amount;
    }
    page.reverse.errors = errors;
    render_with(StatusCode::UNPROCESSABLE_ENTITY, &page)
}

#[derive(Template)]
#[template(path = "cashier/reversal.html")]
struct ReversalPage {
    t: Texts,
    staff: Staff,
    result: EventResult,
    member: MemberView,
}

/// What a refund or void did: points given back, points taken back, the new balance.
async fn reversal(
    State(state): State<AppState>,
    staff: Staff,
    Path(event_id): Path<String>,
) -> Response {
    if let Err(refused) = staff.require(Permission::RecordEvents) {
        return refused;
    }
    let t = staff.t;
    let result = match state.store.event_result(staff.tenant_id, &event_id).await {
        Ok(Some(result)) if result.kind == "refund" || result.kind == "void" => result,
        Ok(_) => return page::not_found(t),
        Err(error) => return page::failed(t, error),
    };
    let member = match event_member(&state, &staff, &result).await {
        Ok(member) => member,
        Err(refused) => return refused,
    };
    render(&ReversalPage {
        t,
        staff,
        result,
        member,
    })
}

// ---------------------------------------------------------------------------------------
// A signed link to the member's page

#[derive(Template)]
#[template(path = "cashier/link.html")]
struct LinkPage {
    t: Texts,
    staff: Staff,
    member_id: String,
    link: String,
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn member_link(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(refused) = staff.require(Permission::RecordEvents) {
        return refused;
    }
    if let Err(refused) = staff.check_csrf(&form.csrf) {
        return refused;
    }
    let t = staff.t;
    let member = match member_id_of(&id, t) {
        Ok(member) => member,
        Err(refused) => return refused,
    };
    let signed = match state
        .store
        .member_link(staff.tenant_id, member, chrono::Utc::now())
        .await
    {
        Ok(signed) => signed,
        Err(StoreError::NotFound { .. }) => return page::not_found(t),
        Err(error) => return page::failed(t, error),
    };
    // The configured public address, never the request's Host: a forged Host must not put
    // another site in a link the member trusts.
    let link = format!(
        "{}{}",
        state.public_url,
        crate::member_page::link_path(staff.tenant_id, &signed)
    );
    render(&LinkPage {
        t,
        member_id: member.to_string(),
        link,
        staff,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_read_as_people_type_them() {
        assert_eq!(parse_whole("150000"), Ok(Some(150_000)));
        assert_eq!(parse_whole("150.000"), Ok(Some(150_000)));
        assert_eq!(parse_whole("150,000"), Ok(Some(150_000)));
        assert_eq!(parse_whole(" 1.250.000đ "), Ok(Some(1_250_000)));
        assert_eq!(parse_whole("150 000 VND"), Ok(Some(150_000)));
        assert_eq!(parse_whole(""), Ok(None));
        assert_eq!(parse_whole("0"), Ok(Some(0)));
        assert_eq!(parse_whole("-5"), Err(WholeError::Negative));
        assert_eq!(parse_whole("1.5"), Err(WholeError::NotNumber));
        assert_eq!(parse_whole("1.5000"), Err(WholeError::NotNumber));
        assert_eq!(parse_whole(".500"), Err(WholeError::NotNumber));
        assert_eq!(parse_whole("abc"), Err(WholeError::NotNumber));
        assert_eq!(parse_whole("12a"), Err(WholeError::NotNumber));
        assert_eq!(
            parse_whole("99999999999999999999"),
            Err(WholeError::TooLarge)
        );
    }

    #[test]
    fn receipt_addresses_escape_the_event_id() {
        assert_eq!(query_escape("a b&c"), "a%20b%26c");
    }
}
