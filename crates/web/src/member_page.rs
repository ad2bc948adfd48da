//! The member page: public, one per tenant under `/m/{tenant_id}`, made for a phone.
//!
//! A member signs in with their phone and a one-time code sent through the tenant's channel,
//! or with a signed link a member of staff made for them; then sees their card (QR code of the
//! card code for the till), points (available, pending, the next to expire), tier and what it
//! takes to reach the next one, rewards they can take now and redeem themselves, their
//! vouchers and their history. Codes, links and sessions live in
//! `patron_store::member_access`; a redemption goes through the journal like any event.

use crate::cashier::query_escape;
use crate::format;
use crate::i18n::{Locale, Texts};
use crate::page::{self, render, render_with};
use askama::Template;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use patron_core::programme::QualificationMetric;
use patron_core::time::Timestamp;
use patron_core::{EventId, Phone, RewardId, TenantId};
use patron_server::auth::{cookie_value, tokens_match, ClientInfo};
use patron_server::AppState;
use patron_store::member_access::{
    display_card_code, CodeCheck, MemberSession, NewMemberSession, SignedLink, MEMBER_SESSION_TTL,
    SIGN_IN_CODE_DIGITS,
};
use patron_store::segments::{Consent, ConsentChannel};
use patron_store::{
    EventError, HistoryEntry, MemberRef, MemberView, RewardView, StoreError, TenantSettings,
    VoucherView,
};
use serde::Deserialize;
use std::sync::Arc;

/// The member session cookie; its path is the tenant's page, so a browser never sends one
/// tenant's session to another's.
pub const MEMBER_COOKIE: &str = "patron_member";
/// History entries on the card page (the newest).
const HISTORY_SHOWN_MAX: i64 = 20;
/// Rewards listed on the card page (cheapest first).
const REWARDS_SHOWN_MAX: usize = 20;
/// Vouchers listed on the card page (newest first).
const VOUCHERS_SHOWN_MAX: usize = 20;
/// The namespace of event ids the member page makes: `member-page:<member id>:<form token>`.
/// The form carries only the token (a UUID, so a resent form is the same event); the server
/// puts the prefix and the member in front, so a member can never take an id a till will use
/// (a future receipt number) nor another member's.
pub const MEMBER_EVENT_ID_PREFIX: &str = "member-page:";

/// The event id of a redemption sent from the member page with form token `token`; `None`
/// when the token is not one the page made.
fn member_event_id(member_id: patron_core::MemberId, token: &str) -> Option<String> {
    let token = uuid::Uuid::try_parse(token.trim()).ok()?;
    Some(format!(
        "{MEMBER_EVENT_ID_PREFIX}{member_id}:{}",
        token.simple()
    ))
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/m/{tenant}", get(card))
        .route("/m/{tenant}/sign-in", get(sign_in_page).post(send_code))
        .route("/m/{tenant}/code", get(code_page).post(check_code))
        .route("/m/{tenant}/link", get(follow_link))
        .route("/m/{tenant}/redeem", post(redeem))
        .route("/m/{tenant}/consent", post(consent))
        .route("/m/{tenant}/sign-out", post(sign_out))
}

/// The path of a signed sign-in link (the till puts the site's address in front).
pub(crate) fn link_path(tenant_id: TenantId, link: &SignedLink) -> String {
    format!(
        "/m/{tenant_id}/link?member={}&expires={}&signature={}",
        link.member_id, link.expires, link.signature
    )
}

/// The tenant a member page belongs to, and the visitor's texts.
struct Visit {
    t: Texts,
    tenant_id: TenantId,
    tenant: Arc<TenantSettings>,
}

impl Visit {
    fn base(&self) -> String {
        format!("/m/{}", self.tenant_id)
    }
}

/// The tenant of the page's path (`/m/{tenant}/…`); an unknown one is a 404 page.
impl FromRequestParts<AppState> for Visit {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Visit, Response> {
        let t = Locale::from_headers(&parts.headers).texts();
        let Path(tenant) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| page::not_found(t))?;
        let tenant_id = TenantId::parse(&tenant).map_err(|_| page::not_found(t))?;
        match state.store.tenant(tenant_id).await {
            Ok(tenant) => Ok(Visit {
                t,
                tenant_id,
                tenant,
            }),
            Err(StoreError::NotFound { .. }) => Err(page::not_found(t)),
            Err(error) => Err(page::failed(t, error)),
        }
    }
}

/// The signed-in member of this tenant's page, if any.
async fn session(
    state: &AppState,
    visit: &Visit,
    headers: &HeaderMap,
) -> Result<Option<MemberSession>, Response> {
    let Some(token) = cookie_value(headers, MEMBER_COOKIE) else {
        return Ok(None);
    };
    state
        .store
        .member_session(visit.tenant_id, token, chrono::Utc::now())
        .await
        .map_err(|error| page::failed(visit.t, error))
}

fn session_cookie(visit: &Visit, session: &NewMemberSession) -> String {
    format!(
        "{MEMBER_COOKIE}={}; Path={}; HttpOnly; Secure; SameSite=Lax; Max-Age={}",
        session.token,
        visit.base(),
        MEMBER_SESSION_TTL.num_seconds()
    )
}

fn signed_in(visit: &Visit, session: &NewMemberSession) -> Response {
    (
        [(header::SET_COOKIE, session_cookie(visit, session))],
        Redirect::to(&visit.base()),
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------
// Signing in with phone and code

#[derive(Template)]
#[template(path = "member/sign_in.html")]
struct SignInPage {
    t: Texts,
    tenant_name: String,
    base: String,
    phone: String,
    error: Option<String>,
    /// The session cookie would not be kept on this connection (see
    /// [`page::secure_cookies_dropped`]).
    insecure: bool,
}

#[derive(Deserialize)]
struct PhoneQuery {
    #[serde(default)]
    phone: String,
}

async fn sign_in_page(
    visit: Visit,
    client: ClientInfo,
    headers: HeaderMap,
    Query(query): Query<PhoneQuery>,
) -> Response {
    render(&SignInPage {
        t: visit.t,
        tenant_name: visit.tenant.name.clone(),
        base: visit.base(),
        phone: Phone::parse(&query.phone)
            .map(|phone| phone.national())
            .unwrap_or_default(),
        error: None,
        insecure: page::secure_cookies_dropped(client.https, &headers),
    })
}

#[derive(Deserialize)]
struct PhoneForm {
    #[serde(default)]
    phone: String,
}

async fn send_code(
    State(state): State<AppState>,
    visit: Visit,
    client: ClientInfo,
    headers: HeaderMap,
    Form(form): Form<PhoneForm>,
) -> Response {
    let again = |key: &str| {
        render_with(
            StatusCode::UNPROCESSABLE_ENTITY,
            &SignInPage {
                t: visit.t,
                tenant_name: visit.tenant.name.clone(),
                base: visit.base(),
                phone: form.phone.clone(),
                error: Some(visit.t.get(key).to_owned()),
                insecure: page::secure_cookies_dropped(client.https, &headers),
            },
        )
    };
    let Ok(phone) = Phone::parse(&form.phone) else {
        return again("member.phone_invalid");
    };
    match state
        .store
        .issue_sign_in_code(visit.tenant_id, &phone, chrono::Utc::now())
        .await
    {
        // Whether the phone is a member's or not, the visitor is asked for the code: the page
        // does not tell who is a member.
        Ok(_) => Redirect::to(&format!(
            "{}/code?phone={}",
            visit.base(),
            query_escape(phone.as_str())
        ))
        .into_response(),
        Err(StoreError::Invalid { .. }) => again("member.too_many_codes"),
        Err(error) => page::failed(visit.t, error),
    }
}

#[derive(Template)]
#[template(path = "member/code.html")]
struct CodePage {
    t: Texts,
    tenant_name: String,
    base: String,
    phone: Phone,
    error: Option<String>,
}

impl CodePage {
    fn sent(&self) -> String {
        self.t
            .fill("member.code_sent", &[("phone", &self.phone.national())])
    }

    fn new_code_path(&self) -> String {
        format!(
            "{}/sign-in?phone={}",
            self.base,
            query_escape(self.phone.as_str())
        )
    }
}

async fn code_page(visit: Visit, Query(query): Query<PhoneQuery>) -> Response {
    let Ok(phone) = Phone::parse(&query.phone) else {
        return Redirect::to(&format!("{}/sign-in", visit.base())).into_response();
    };
    render(&CodePage {
        t: visit.t,
        tenant_name: visit.tenant.name.clone(),
        base: visit.base(),
        phone,
        error: None,
    })
}

#[derive(Deserialize)]
struct CodeForm {
    #[serde(default)]
    phone: String,
    #[serde(default)]
    code: String,
}

async fn check_code(
    State(state): State<AppState>,
    visit: Visit,
    Form(form): Form<CodeForm>,
) -> Response {
    let Ok(phone) = Phone::parse(&form.phone) else {
        return Redirect::to(&format!("{}/sign-in", visit.base())).into_response();
    };
    let t = visit.t;
    let again = |message: String| {
        render_with(
            StatusCode::UNPROCESSABLE_ENTITY,
            &CodePage {
                t,
                tenant_name: visit.tenant.name.clone(),
                base: visit.base(),
                phone: phone.clone(),
                error: Some(message),
            },
        )
    };
    let code: String = form.code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != SIGN_IN_CODE_DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return again(t.get("member.code_missing").to_owned());
    }
    let checked = state
        .store
        .check_sign_in_code(visit.tenant_id, &phone, &code, chrono::Utc::now())
        .await;
    match checked {
        Ok(CodeCheck::SignedIn(session)) => signed_in(&visit, &session),
        Ok(CodeCheck::Wrong { attempts_left }) => again(t.fill(
            "member.code_wrong",
            &[("attempts", &attempts_left.to_string())],
        )),
        Ok(CodeCheck::Expired) => again(t.get("member.code_expired").to_owned()),
        Ok(CodeCheck::Locked) => again(t.get("member.code_locked").to_owned()),
        Ok(CodeCheck::NoCode) => again(t.get("member.code_none").to_owned()),
        Err(error) => page::failed(t, error),
    }
}

// ---------------------------------------------------------------------------------------
// Signing in with a link made by staff

#[derive(Deserialize)]
struct LinkQuery {
    #[serde(default)]
    member: String,
    #[serde(default)]
    expires: String,
    #[serde(default)]
    signature: String,
}

async fn follow_link(
    State(state): State<AppState>,
    visit: Visit,
    Query(query): Query<LinkQuery>,
) -> Response {
    let t = visit.t;
    let refused = || {
        page::message(
            StatusCode::FORBIDDEN,
            t,
            "member.link_invalid_title",
            "member.link_invalid",
        )
    };
    let Ok(expires) = query.expires.parse::<i64>() else {
        return refused();
    };
    let now = chrono::Utc::now();
    let verified = state
        .store
        .verify_member_link(
            visit.tenant_id,
            &query.member,
            expires,
            &query.signature,
            now,
        )
        .await;
    let member = match verified {
        Ok(Some(member)) => member,
        Ok(None) => return refused(),
        Err(error) => return page::failed(t, error),
    };
    match state
        .store
        .start_member_session(visit.tenant_id, member, now)
        .await
    {
        Ok(session) => signed_in(&visit, &session),
        Err(error) => page::failed(t, error),
    }
}

// ---------------------------------------------------------------------------------------
// The card

/// One line of the member's history, ready to show.
struct HistoryLine {
    date: String,
    what: String,
    detail: String,
    points: i64,
    /// Store credit and stamps moved, one text each.
    others: Vec<String>,
}

/// A reward on the card: redeemable now, or how many points are missing.
struct RewardLine {
    reward: RewardView,
    missing: i64,
    event_id: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "member/card.html")]
struct CardPage {
    t: Texts,
    tenant_name: String,
    base: String,
    csrf: String,
    member: MemberView,
    card_code: String,
    qr_svg: String,
    /// Points of the next expiry, and its day.
    expiring: Option<(i64, String)>,
    redeemed: Option<VoucherView>,
    rewards: Vec<RewardLine>,
    vouchers: Vec<VoucherView>,
    /// Store credit and stamps.
    holdings: Vec<format::HoldingLine>,
    history: Vec<HistoryLine>,
    /// The member's word on promotions, per channel.
    consents: Vec<ConsentLine>,
    /// The consent form was just saved.
    consent_saved: bool,
    currency: String,
    zone: chrono_tz::Tz,
}

/// One channel of the promotions form: whether the member agreed, and since when.
struct ConsentLine {
    code: &'static str,
    label: &'static str,
    granted: bool,
    since: Option<String>,
}

/// The message key of a channel's name.
pub(crate) fn channel_key(channel: ConsentChannel) -> &'static str {
    match channel {
        ConsentChannel::Zns => "member.consent.zns",
        ConsentChannel::Sms => "member.consent.sms",
        ConsentChannel::Email => "member.consent.email",
    }
}

fn consent_lines(t: Texts, consents: &[Consent], zone: chrono_tz::Tz) -> Vec<ConsentLine> {
    ConsentChannel::ALL
        .iter()
        .map(|channel| {
            let given = consents.iter().find(|consent| consent.channel == *channel);
            ConsentLine {
                code: channel.as_str(),
                label: t.get(channel_key(*channel)),
                granted: given.is_some_and(|consent| consent.granted),
                since: given.and_then(|consent| {
                    chrono::DateTime::parse_from_rfc3339(&consent.at)
                        .ok()
                        .map(|at| format::date(t.locale, at.with_timezone(&chrono::Utc), zone))
                }),
            }
        })
        .collect()
}

impl CardPage {
    fn points(&self, points: i64) -> String {
        format::points(self.t.locale, points)
    }

    fn signed_points(&self, points: i64) -> String {
        let text = self.points(points);
        if points > 0 {
            format!("+{text}")
        } else {
            text
        }
    }

    fn date(&self, rfc3339: &str) -> String {
        chrono::DateTime::parse_from_rfc3339(rfc3339)
            .map(|at| format::date(self.t.locale, at.with_timezone(&chrono::Utc), self.zone))
            .unwrap_or_default()
    }

    fn hello(&self) -> String {
        match &self.member.name {
            Some(name) => self.t.fill("member.hello", &[("name", name)]),
            None => self.t.get("member.hello_anonymous").to_owned(),
        }
    }

    fn pending(&self) -> String {
        self.t.fill(
            "member.pending",
            &[("points", &self.points(self.member.pending))],
        )
    }

    fn expiring_text(&self) -> Option<String> {
        let (points, day) = self.expiring.as_ref()?;
        Some(self.t.fill(
            "member.expiring",
            &[("points", &self.points(*points)), ("date", day)],
        ))
    }

    fn tier(&self) -> String {
        self.t
            .fill("member.tier", &[("tier", &self.member.tier.tier_name)])
    }

    /// What it takes to reach the next tier, or that this is the top one.
    fn to_next(&self) -> String {
        let progress = &self.member.tier;
        let (Some(needed), Some(next)) = (progress.to_next_tier, &progress.next_tier_name) else {
            return self.t.get("member.top_tier").to_owned();
        };
        match progress.metric {
            QualificationMetric::Spend => self.t.fill(
                "member.to_next_spend",
                &[
                    (
                        "amount",
                        &format::money(self.t.locale, needed, &self.currency),
                    ),
                    ("tier", next),
                ],
            ),
            QualificationMetric::Points => self.t.fill(
                "member.to_next_points",
                &[("points", &self.points(needed)), ("tier", next)],
            ),
        }
    }

    /// What it takes to keep the tier at the next review, when something does.
    fn to_keep(&self) -> Option<String> {
        let progress = &self.member.tier;
        if progress.to_keep_tier <= 0 {
            return None;
        }
        let tier = progress.tier_name.as_str();
        Some(match progress.metric {
            QualificationMetric::Spend => self.t.fill(
                "member.to_keep_spend",
                &[
                    (
                        "amount",
                        &format::money(self.t.locale, progress.to_keep_tier, &self.currency),
                    ),
                    ("tier", tier),
                ],
            ),
            QualificationMetric::Points => self.t.fill(
                "member.to_keep_points",
                &[
                    ("points", &self.points(progress.to_keep_tier)),
                    ("tier", tier),
                ],
            ),
        })
    }

    /// The progress bar towards the next tier: (value, max), both at least 1 wide.
    fn progress(&self) -> Option<(i64, i64)> {
        let progress = &self.member.tier;
        let needed = progress.to_next_tier?;
        let value = progress.qualifying_value.max(0);
        Some((value, (value + needed).max(1)))
    }

    fn redeem_label(&self, reward: &RewardView) -> String {
        self.t
            .fill("member.redeem", &[("points", &self.points(reward.cost))])
    }

    fn needs_more(&self, line: &RewardLine) -> String {
        self.t.fill(
            "member.needs_more",
            &[
                ("cost", &self.points(line.reward.cost)),
                ("points", &self.points(line.missing)),
            ],
        )
    }

    fn voucher_until(&self, voucher: &VoucherView) -> String {
        self.t.fill(
            "member.voucher_until",
            &[("date", &self.date(&voucher.expires_at))],
        )
    }

    fn status(&self, voucher: &VoucherView) -> &'static str {
        match voucher.status.as_str() {
            "issued" => self.t.get("member.status.issued"),
            "used" => self.t.get("member.status.used"),
            "cancelled" => self.t.get("member.status.cancelled"),
            _ => self.t.get("member.status.expired"),
        }
    }
}

/// The server-drawn QR code of `text`, as inline SVG (no text of ours inside but the path).
fn qr_svg(text: &str) -> String {
    let Ok(code) = qrcode::QrCode::new(text.as_bytes()) else {
        return String::new();
    };
    let svg = code
        .render::<qrcode::render::svg::Color>()
        .module_dimensions(1, 1)
        .build();
    match svg.find("<svg") {
        Some(start) => svg[start..].replacen("<svg ", "<svg aria-hidden=\"true\" ", 1),
        None => String::new(),
    }
}

/// The points that expire next and their day, in the tenant's zone.
fn next_expiry(
    state: &patron_core::member::MemberState,
    now: Timestamp,
    locale: Locale,
    zone: chrono_tz::Tz,
) -> Option<(i64, String)> {
    let live = || {
        state.lots.iter().filter(move |lot| {
            lot.remaining.0 > 0 && lot.expires_at.is_some_and(|expires| expires > now)
        })
    };
    let first = live().filter_map(|lot| lot.expires_at).min()?;
    let day = format::date(locale, first, zone);
    let points = live()
        .filter(|lot| {
            lot.expires_at
                .is_some_and(|expires| format::date(locale, expires, zone) == day)
        })
        .map(|lot| lot.remaining.0)
        .sum();
    Some((points, day))
}

fn history_line(
    t: Texts,
    entry: &HistoryEntry,
    zone: chrono_tz::Tz,
    currency: &str,
) -> HistoryLine {
    let what = match entry.kind.as_str() {
        "earn" => "member.kind.earn",
        "payment" => "member.kind.payment",
        "redemption" => "member.kind.redemption",
        "voucher_use" => "member.kind.voucher_use",
        "voucher_cancel" => "member.kind.voucher_cancel",
        "voucher_expiry" => "member.kind.voucher_expiry",
        "clawback" => "member.kind.clawback",
        "payment_return" => "member.kind.payment_return",
        "expiry" => "member.kind.expiry",
        "adjustment" => "member.kind.adjustment",
        _ => "member.kind.other",
    };
    let reason = &entry.reason;
    let detail = if reason.get("lines").is_some() {
        crate::reasons::earn_lines(t, reason)
    } else if let Some(reward) = reason.get("reward").and_then(|r| r.as_str()) {
        reward.to_owned()
    } else {
        crate::reasons::entry_detail(t, entry)
    };
    let date = chrono::DateTime::parse_from_rfc3339(&entry.occurred_at)
        .map(|at| format::date(t.locale, at.with_timezone(&chrono::Utc), zone))
        .unwrap_or_default();
    HistoryLine {
        date,
        what: t.get(what).to_owned(),
        detail,
        points: entry.points,
        others: format::moved_lines(t, &entry.holdings, currency),
    }
}

/// Everything the card shows. `redeem_error`: a reward id and the message to show by it.
async fn card_page(
    state: &AppState,
    visit: &Visit,
    session: &MemberSession,
    redeemed_code: Option<&str>,
    redeem_error: Option<(&str, String)>,
) -> Result<CardPage, StoreError> {
    let (store, tenant_id, member_id) = (&state.store, visit.tenant_id, session.member_id);
    let now = chrono::Utc::now();
    let reference = MemberRef::Id(member_id);
    let member = store.member(tenant_id, &reference, now).await?;
    let member_state = store.member_state(tenant_id, &reference).await?;
    let card_code = display_card_code(&store.card_code(tenant_id, member_id).await?);
    let mut vouchers = store.vouchers(tenant_id, member_id).await?;
    let redeemed = redeemed_code
        .and_then(|code| vouchers.iter().find(|voucher| voucher.code == code))
        .cloned();
    vouchers.truncate(VOUCHERS_SHOWN_MAX);
    let available = member.available;
    let rewards = store
        .rewards(tenant_id, Some(now))
        .await?
        .into_iter()
        .filter(|reward| reward.stock != Some(0))
        .take(REWARDS_SHOWN_MAX)
        .map(|reward| RewardLine {
            missing: (reward.cost - available).max(0),
            event_id: uuid::Uuid::now_v7().simple().to_string(),
            error: redeem_error
                .as_ref()
                .filter(|(id, _)| *id == reward.id)
                .map(|(_, message)| message.clone()),
            reward,
        })
        .collect();
    let history = store
        .history(tenant_id, member_id, HISTORY_SHOWN_MAX, None)
        .await?
        .iter()
        .map(|entry| history_line(visit.t, entry, visit.tenant.zone, &visit.tenant.currency))
        .collect();
    let consents = store.consents(tenant_id, member_id).await?;
    Ok(CardPage {
        consents: consent_lines(visit.t, &consents, visit.tenant.zone),
        consent_saved: false,
        t: visit.t,
        tenant_name: visit.tenant.name.clone(),
        base: visit.base(),
        csrf: session.csrf_token.clone(),
        qr_svg: qr_svg(&card_code),
        card_code,
        expiring: next_expiry(&member_state, now, visit.t.locale, visit.tenant.zone),
        holdings: format::holding_lines(visit.t, &member.holdings, &visit.tenant.currency),
        member,
        redeemed,
        rewards,
        vouchers,
        history,
        currency: visit.tenant.currency.clone(),
        zone: visit.tenant.zone,
    })
}

#[derive(Deserialize)]
struct CardQuery {
    voucher: Option<String>,
    consent: Option<String>,
}

async fn card(
    State(state): State<AppState>,
    visit: Visit,
    headers: HeaderMap,
    Query(query): Query<CardQuery>,
) -> Response {
    let session = match session(&state, &visit, &headers).await {
        Ok(Some(session)) => session,
        Ok(None) => return Redirect::to(&format!("{}/sign-in", visit.base())).into_response(),
        Err(refused) => return refused,
    };
    match card_page(&state, &visit, &session, query.voucher.as_deref(), None).await {
        Ok(mut card) => {
            card.consent_saved = query.consent.as_deref() == Some("saved");
            render(&card)
        }
        Err(StoreError::NotFound { .. }) => {
            Redirect::to(&format!("{}/sign-in", visit.base())).into_response()
        }
        Err(error) => page::failed(visit.t, error),
    }
}

// ---------------------------------------------------------------------------------------
// Redeeming a reward, signing out

#[derive(Deserialize)]
struct RedeemForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    event_id: String,
    #[serde(default)]
    reward_id: String,
}

fn redeem_error_key(error: &EventError) -> &'static str {
    match error.code() {
        "insufficient_points" => "member.redeem_error.insufficient_points",
        "reward_not_offered" => "member.redeem_error.reward_not_offered",
        "reward_out_of_stock" => "member.redeem_error.reward_out_of_stock",
        "reward_limit_reached" => "member.redeem_error.reward_limit_reached",
        "reward_not_found" => "member.redeem_error.reward_not_found",
        _ => "member.redeem_error.other",
    }
}

async fn redeem(
    State(state): State<AppState>,
    visit: Visit,
    headers: HeaderMap,
    Form(form): Form<RedeemForm>,
) -> Response {
    let t = visit.t;
    let session = match session(&state, &visit, &headers).await {
        Ok(Some(session)) => session,
        Ok(None) => return Redirect::to(&format!("{}/sign-in", visit.base())).into_response(),
        Err(refused) => return refused,
    };
    if !tokens_match(&form.csrf, &session.csrf_token) {
        return page::message(
            StatusCode::FORBIDDEN,
            t,
            "common.forbidden_title",
            "common.csrf_invalid",
        );
    }
    let submitted = match member_event_id(session.member_id, &form.event_id) {
        Some(event_id) => match (EventId::parse(&event_id), RewardId::parse(&form.reward_id)) {
            (Ok(event_id), Ok(reward_id)) => state
                .app
                .redeem_own(visit.tenant_id, session.member_id, event_id, reward_id)
                .await
                .map_err(|error| error.event.unwrap_or(EventError::RewardNotFound)),
            _ => Err(EventError::RewardNotFound),
        },
        // Not a token the page made (a typed receipt number, say): nothing is redeemed.
        None => Err(EventError::RewardNotFound),
    };
    let message = match submitted {
        Ok(result) => {
            let code = result
                .voucher
                .map(|voucher| voucher.code)
                .unwrap_or_default();
            return Redirect::to(&format!("{}?voucher={}", visit.base(), query_escape(&code)))
                .into_response();
        }
        Err(EventError::Database(detail)) => return page::failed(t, detail),
        Err(error) => t.get(redeem_error_key(&error)).to_owned(),
    };
    match card_page(
        &state,
        &visit,
        &session,
        None,
        Some((form.reward_id.as_str(), message)),
    )
    .await
    {
        Ok(card) => render_with(StatusCode::UNPROCESSABLE_ENTITY, &card),
        Err(error) => page::failed(t, error),
    }
}

#[derive(Deserialize)]
struct ConsentForm {
    #[serde(default)]
    csrf: String,
    /// Each ticked channel is sent as `yes`; an unticked one is not sent at all.
    #[serde(default)]
    zns: String,
    #[serde(default)]
    sms: String,
    #[serde(default)]
    email: String,
}

/// The member's own word on promotions per channel (`POST /m/{tenant}/consent`): each channel
/// whose answer changed is recorded, with the source `member_page`.
async fn consent(
    State(state): State<AppState>,
    visit: Visit,
    headers: HeaderMap,
    Form(form): Form<ConsentForm>,
) -> Response {
    let t = visit.t;
    let session = match session(&state, &visit, &headers).await {
        Ok(Some(session)) => session,
        Ok(None) => return Redirect::to(&format!("{}/sign-in", visit.base())).into_response(),
        Err(refused) => return refused,
    };
    if !tokens_match(&form.csrf, &session.csrf_token) {
        return page::message(
            StatusCode::FORBIDDEN,
            t,
            "common.forbidden_title",
            "common.csrf_invalid",
        );
    }
    let (store, tenant_id, member_id) = (&state.store, visit.tenant_id, session.member_id);
    let current = match store.consents(tenant_id, member_id).await {
        Ok(current) => current,
        Err(error) => return page::failed(t, error),
    };
    for (channel, ticked) in [
        (ConsentChannel::Zns, &form.zns),
        (ConsentChannel::Sms, &form.sms),
        (ConsentChannel::Email, &form.email),
    ] {
        let granted = ticked == "yes";
        let was = current
            .iter()
            .find(|consent| consent.channel == channel)
            .map(|consent| consent.granted);
        // Unchanged, or never given and still not: nothing to record.
        if was == Some(granted) || (was.is_none() && !granted) {
            continue;
        }
        match state
            .app
            .set_own_consent(tenant_id, member_id, channel, granted)
            .await
        {
            Ok(_) => {}
            Err(StoreError::NotFound { .. }) => {
                return Redirect::to(&format!("{}/sign-in", visit.base())).into_response()
            }
            Err(error) => return page::failed(t, error),
        }
    }
    Redirect::to(&format!("{}?consent=saved#consent", visit.base())).into_response()
}

#[derive(Deserialize)]
struct SignOutForm {
    #[serde(default)]
    csrf: String,
}

async fn sign_out(
    State(state): State<AppState>,
    visit: Visit,
    headers: HeaderMap,
    Form(form): Form<SignOutForm>,
) -> Response {
    let to_sign_in = Redirect::to(&format!("{}/sign-in", visit.base()));
    let session = match session(&state, &visit, &headers).await {
        Ok(Some(session)) => session,
        Ok(None) => return to_sign_in.into_response(),
        Err(refused) => return refused,
    };
    if !tokens_match(&form.csrf, &session.csrf_token) {
        return page::message(
            StatusCode::FORBIDDEN,
            visit.t,
            "common.forbidden_title",
            "common.csrf_invalid",
        );
    }
    if let Some(token) = cookie_value(&headers, MEMBER_COOKIE) {
        if let Err(error) = state.store.end_member_session(token).await {
            return page::failed(visit.t, error);
        }
    }
    let cookie = format!(
        "{MEMBER_COOKIE}=; Path={}; HttpOnly; Secure; SameSite=Lax; Max-Age=0",
        visit.base()
    );
    ([(header::SET_COOKIE, cookie)], to_sign_in).into_response()
}
