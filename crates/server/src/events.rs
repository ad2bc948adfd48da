//! `POST /v1/events` and `POST /v1/events/batch`: purchases, refunds, voids, engagement,
//! redemptions, voucher use and cancellation, adjustments and enrolment, each with the sender's
//! id.

use crate::answers::EventAnswer;
use crate::auth::{Caller, Permission};
use crate::error::{body_json, parse_instant, parse_json, ApiError, ErrorBody};
use crate::{AppState, BATCH_EVENTS_MAX};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use patron_app::{Command, Sending};
use patron_core::event::{Item, Purchase};
use patron_core::member::Profile;
use patron_core::time::Timestamp;
use patron_core::{EventId, MemberId, Money, Phone, Points, RewardId, TenantId};
use patron_store::{IncomingEvent, IncomingKind, MemberRef};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(post_event))
        .routes(routes!(post_batch))
        .routes(routes!(post_redemption))
        .routes(routes!(post_voucher_use))
        .routes(routes!(post_voucher_cancel))
        .routes(routes!(get_purchase_limits, put_purchase_limits))
}

/// How far in the future an event's `occurred_at` may be (clock skew of a till).
pub const OCCURRED_AT_FUTURE_SKEW_MAX: chrono::Duration = chrono::Duration::minutes(5);
/// Largest amount of money in one event, in minor units (10^15: a quadrillion đồng), so no
/// sum or product the engine makes of it can overflow.
pub const AMOUNT_MAX: i64 = 1_000_000_000_000_000;
/// Most units of one line.
pub const QUANTITY_MAX: i64 = 1_000_000;
/// Most points in one event (paid with, adjusted).
pub const POINTS_MAX: i64 = 1_000_000_000;

/// Most lines in one purchase.
pub const ITEMS_MAX: usize = 500;
/// Longest free text (names, reasons, categories), in bytes.
pub const TEXT_LENGTH_MAX: usize = 200;

/// How a request names a member: by id or by phone.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberRequest {
    pub id: Option<String>,
    pub phone: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemRequest {
    pub sku: Option<String>,
    pub category: String,
    #[serde(default = "one")]
    pub quantity: i64,
    #[serde(default)]
    pub amount: i64,
}

fn one() -> i64 {
    1
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileRequest {
    pub name: Option<String>,
    pub email: Option<String>,
    pub birthday: Option<String>,
    pub gender: Option<String>,
    pub city: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// The tenant's own fields, e.g. `{"favourite_drink": "bạc xỉu"}`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub attributes: serde_json::Map<String, serde_json::Value>,
}

/// Most custom attributes on a member.
pub const ATTRIBUTES_MAX: usize = 50;
/// Largest custom attributes object, serialised, in bytes.
pub const ATTRIBUTES_BYTES_MAX: usize = 4096;

/// An event as a POS or a shop sends it. One flat shape; which fields a type needs is checked
/// when it is turned into a domain event, and the error names the field.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventRequest {
    /// The sender's id for the event (a receipt number): at most 128 printable ASCII
    /// characters. A retry with the same id and body returns the first answer.
    pub id: String,
    /// purchase, refund, void, engagement, redemption, voucher_use, voucher_cancel,
    /// adjustment, enrol or tier_hold. A `refund`'s `amount` is part of the original bill
    /// total (the part paid with points included); a `void` (a manager's) reverses all that is
    /// left of the original purchase.
    #[serde(rename = "type")]
    pub kind: String,
    pub occurred_at: Option<String>,
    pub member: Option<MemberRequest>,
    pub store: Option<String>,
    pub amount: Option<i64>,
    pub points_paid: Option<i64>,
    pub items: Option<Vec<ItemRequest>>,
    pub profile: Option<ProfileRequest>,
    pub original_id: Option<String>,
    pub engagement: Option<String>,
    pub reward_id: Option<String>,
    pub code: Option<String>,
    pub points: Option<i64>,
    /// `adjustment`: what is adjusted, `points` (the default) or `money` (store credit, in the
    /// tenant's minor units); `points` is then the amount.
    pub asset: Option<String>,
    pub reason: Option<String>,
    /// `tier_hold`: until when (RFC 3339); `null` releases the hold.
    #[serde(default, deserialize_with = "present_or_null")]
    #[schema(value_type = Option<String>)]
    pub until: Option<Option<String>>,
}

/// Tells a field given as `null` (`Some(None)`) from a field left out (`None`).
fn present_or_null<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

fn required<T>(value: Option<T>, field: &str, kind: &str) -> Result<T, ApiError> {
    value.ok_or_else(|| {
        ApiError::invalid(field, format!("`{field}` is required for a {kind} event"))
    })
}

pub(crate) fn text(value: &str, field: &str) -> Result<String, ApiError> {
    let trimmed = value.trim();
    if trimmed.is_empty() || trimmed.len() > TEXT_LENGTH_MAX {
        return Err(ApiError::invalid(
            field,
            format!("must be 1 to {TEXT_LENGTH_MAX} bytes"),
        ));
    }
    Ok(trimmed.to_owned())
}

pub fn parse_member(member: Option<MemberRequest>, kind: &str) -> Result<MemberRef, ApiError> {
    let member = required(member, "member", kind)?;
    match (member.id, member.phone) {
        (Some(id), None) => MemberId::parse(&id)
            .map(MemberRef::Id)
            .map_err(|_| ApiError::invalid("member.id", "not a member id")),
        (None, Some(phone)) => Phone::parse(&phone)
            .map(MemberRef::Phone)
            .map_err(|error| ApiError::invalid("member.phone", error.to_string())),
        _ => Err(ApiError::invalid(
            "member",
            "give exactly one of `id` or `phone`",
        )),
    }
}

pub fn parse_profile(profile: Option<ProfileRequest>) -> Result<Profile, ApiError> {
    let Some(profile) = profile else {
        return Ok(Profile::default());
    };
    let optional =
        |value: Option<String>, field: &str| value.map(|value| text(&value, field)).transpose();
    let birthday = profile
        .birthday
        .map(|day| {
            chrono::NaiveDate::parse_from_str(&day, "%Y-%m-%d")
                .map_err(|_| ApiError::invalid("profile.birthday", "must be a date YYYY-MM-DD"))
        })
        .transpose()?;
    let email = optional(profile.email, "profile.email")?;
    if email.as_ref().is_some_and(|email| !email.contains('@')) {
        return Err(ApiError::invalid("profile.email", "not an e-mail address"));
    }
    if profile.tags.len() > 50 {
        return Err(ApiError::invalid("profile.tags", "at most 50 tags"));
    }
    Ok(Profile {
        phone: None,
        email,
        name: optional(profile.name, "profile.name")?,
        birthday,
        gender: optional(profile.gender, "profile.gender")?,
        city: optional(profile.city, "profile.city")?,
        tags: profile
            .tags
            .iter()
            .map(|tag| text(tag, "profile.tags"))
            .collect::<Result<_, _>>()?,
        attributes: parse_attributes(profile.attributes)?,
    })
}

fn parse_attributes(
    attributes: serde_json::Map<String, serde_json::Value>,
) -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
    if attributes.len() > ATTRIBUTES_MAX {
        return Err(ApiError::invalid(
            "profile.attributes",
            format!("at most {ATTRIBUTES_MAX} attributes"),
        ));
    }
    let size = serde_json::to_vec(&attributes)
        .map(|bytes| bytes.len())
        .unwrap_or(usize::MAX);
    if size > ATTRIBUTES_BYTES_MAX {
        return Err(ApiError::invalid(
            "profile.attributes",
            format!("at most {ATTRIBUTES_BYTES_MAX} bytes of JSON"),
        ));
    }
    Ok(attributes)
}

fn parse_purchase(request: &mut EventRequest) -> Result<IncomingKind, ApiError> {
    let member = parse_member(request.member.take(), "purchase")?;
    let amount = required(request.amount, "amount", "purchase")?;
    if !(1..=AMOUNT_MAX).contains(&amount) {
        return Err(ApiError::invalid(
            "amount",
            format!("must be 1 to {AMOUNT_MAX}"),
        ));
    }
    let points_paid = request.points_paid.unwrap_or(0);
    if !(0..=POINTS_MAX).contains(&points_paid) {
        return Err(ApiError::invalid(
            "points_paid",
            format!("must be 0 to {POINTS_MAX}"),
        ));
    }
    let items = request.items.take().unwrap_or_default();
    if items.len() > ITEMS_MAX {
        return Err(ApiError::invalid(
            "items",
            format!("at most {ITEMS_MAX} items"),
        ));
    }
    let mut parsed = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        if !(1..=QUANTITY_MAX).contains(&item.quantity) {
            return Err(ApiError::invalid(
                format!("items[{index}].quantity"),
                format!("must be 1 to {QUANTITY_MAX}"),
            ));
        }
        if !(0..=AMOUNT_MAX).contains(&item.amount) {
            return Err(ApiError::invalid(
                format!("items[{index}].amount"),
                format!("must be 0 to {AMOUNT_MAX}"),
            ));
        }
        parsed.push(Item {
            sku: item.sku.unwrap_or_default(),
            category: text(&item.category, &format!("items[{index}].category"))?,
            quantity: item.quantity,
            amount: Money(item.amount),
        });
    }
    let store = request
        .store
        .take()
        .map(|store| text(&store, "store"))
        .transpose()?;
    Ok(IncomingKind::Purchase {
        member,
        purchase: Purchase {
            store,
            amount: Money(amount),
            points_paid: Points(points_paid),
            items: parsed,
        },
        profile: request
            .profile
            .take()
            .map(|profile| parse_profile(Some(profile)))
            .transpose()?,
    })
}

/// Fields each type may carry besides `id`, `type` and `occurred_at`.
fn allowed_fields(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "purchase" => &[
            "member",
            "store",
            "amount",
            "points_paid",
            "items",
            "profile",
        ],
        "refund" => &["original_id", "amount"],
        "void" => &["original_id"],
        "engagement" => &["member", "engagement"],
        "redemption" => &["member", "reward_id"],
        "voucher_use" => &["code", "store"],
        "voucher_cancel" => &["code"],
        "adjustment" => &["member", "asset", "points", "reason"],
        "enrol" => &["member", "profile"],
        "tier_hold" => &["member", "until"],
        _ => return None,
    })
}

fn present_fields(request: &EventRequest) -> Vec<&'static str> {
    let mut present = Vec::new();
    let mut mark = |is_present: bool, name: &'static str| {
        if is_present {
            present.push(name);
        }
    };
    mark(request.member.is_some(), "member");
    mark(request.store.is_some(), "store");
    mark(request.amount.is_some(), "amount");
    mark(request.points_paid.is_some(), "points_paid");
    mark(request.items.is_some(), "items");
    mark(request.profile.is_some(), "profile");
    mark(request.original_id.is_some(), "original_id");
    mark(request.engagement.is_some(), "engagement");
    mark(request.reward_id.is_some(), "reward_id");
    mark(request.code.is_some(), "code");
    mark(request.points.is_some(), "points");
    mark(request.reason.is_some(), "reason");
    mark(request.until.is_some(), "until");
    present
}

/// An adjustment's amount: not zero, and at most [`POINTS_MAX`] either way.
pub(crate) fn adjustment_points(points: i64) -> Result<i64, ApiError> {
    if points == 0 || points.unsigned_abs() > POINTS_MAX as u64 {
        return Err(ApiError::invalid(
            "points",
            "must be non-zero and at most 1,000,000,000 either way",
        ));
    }
    Ok(points)
}

/// Turns a request into a domain event of `tenant_id`.
pub fn parse_event(
    tenant_id: TenantId,
    mut request: EventRequest,
    body_hash: String,
    now: Timestamp,
) -> Result<IncomingEvent, ApiError> {
    let id =
        EventId::parse(&request.id).map_err(|error| ApiError::invalid("id", error.to_string()))?;
    let kind_name = request.kind.clone();
    let allowed = allowed_fields(&kind_name).ok_or_else(|| {
        ApiError::invalid(
            "type",
            "must be one of purchase, refund, void, engagement, redemption, voucher_use, voucher_cancel, adjustment, \
             enrol, tier_hold",
        )
    })?;
    if let Some(extra) = present_fields(&request)
        .into_iter()
        .find(|field| !allowed.contains(field))
    {
        return Err(ApiError::invalid(
            extra,
            format!("`{extra}` does not belong to a {kind_name} event"),
        ));
    }
    let occurred_at = parse_instant(request.occurred_at.take(), "occurred_at")?.unwrap_or(now);
    if occurred_at > now + OCCURRED_AT_FUTURE_SKEW_MAX {
        return Err(ApiError::invalid(
            "occurred_at",
            "is more than 5 minutes in the future",
        ));
    }
    let kind = match kind_name.as_str() {
        "purchase" => parse_purchase(&mut request)?,
        "refund" => {
            let original = required(request.original_id.take(), "original_id", "refund")?;
            let amount = required(request.amount, "amount", "refund")?;
            if !(1..=AMOUNT_MAX).contains(&amount) {
                return Err(ApiError::invalid(
                    "amount",
                    format!("must be 1 to {AMOUNT_MAX}"),
                ));
            }
            IncomingKind::Refund {
                original: EventId::parse(&original)
                    .map_err(|error| ApiError::invalid("original_id", error.to_string()))?,
                amount: Money(amount),
            }
        }
        "void" => {
            let original = required(request.original_id.take(), "original_id", "void")?;
            IncomingKind::Void {
                original: EventId::parse(&original)
                    .map_err(|error| ApiError::invalid("original_id", error.to_string()))?,
            }
        }
        "engagement" => {
            let engagement = required(request.engagement.take(), "engagement", "engagement")?;
            if engagement.is_empty()
                || engagement.len() > 32
                || !engagement
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_')
            {
                return Err(ApiError::invalid(
                    "engagement",
                    "a lowercase word such as review, survey, referral",
                ));
            }
            IncomingKind::Engagement {
                member: parse_member(request.member.take(), "engagement")?,
                kind: engagement,
            }
        }
        "redemption" => IncomingKind::Redemption {
            member: parse_member(request.member.take(), "redemption")?,
            reward_id: RewardId::parse(&required(
                request.reward_id.take(),
                "reward_id",
                "redemption",
            )?)
            .map_err(|_| ApiError::invalid("reward_id", "not a reward id"))?,
        },
        "voucher_use" => IncomingKind::VoucherUse {
            code: voucher_code(required(request.code.take(), "code", "voucher_use")?)?,
            store: request
                .store
                .take()
                .map(|store| text(&store, "store"))
                .transpose()?,
        },
        "voucher_cancel" => IncomingKind::VoucherCancel {
            code: voucher_code(required(request.code.take(), "code", "voucher_cancel")?)?,
        },
        "adjustment" => {
            let points = adjustment_points(required(request.points, "points", "adjustment")?)?;
            let asset =
                match request.asset.take().as_deref() {
                    None | Some("points") => patron_core::ledger::Asset::Points,
                    Some("money") => patron_core::ledger::Asset::Money,
                    Some(_) => return Err(ApiError::invalid(
                        "asset",
                        "must be points or money (stamps come with the programme's stamp cards)",
                    )),
                };
            IncomingKind::Adjustment {
                member: parse_member(request.member.take(), "adjustment")?,
                asset,
                points,
                reason: text(
                    &required(request.reason.take(), "reason", "adjustment")?,
                    "reason",
                )?,
                actor: None,
            }
        }
        "tier_hold" => {
            let until = parse_instant(
                required(request.until.take(), "until", "tier_hold")?,
                "until",
            )?;
            IncomingKind::TierHold {
                member: parse_member(request.member.take(), "tier_hold")?,
                until,
            }
        }
        "enrol" => match parse_member(request.member.take(), "enrol")? {
            MemberRef::Phone(phone) => IncomingKind::Enrol {
                phone,
                profile: parse_profile(request.profile.take())?,
            },
            MemberRef::Id(_) => return Err(ApiError::invalid("member", "enrol by `phone`")),
        },
        _ => unreachable!("checked by allowed_fields"),
    };
    Ok(IncomingEvent {
        tenant_id,
        id,
        occurred_at,
        body_hash,
        kind,
        actor: None,
        store_scope: None,
    })
}

fn voucher_code(code: String) -> Result<String, ApiError> {
    Ok(patron_app::voucher_code(&code)?)
}

pub use patron_app::body_hash;

/// Parses an event sent by `caller` into the app layer's command, with the hash of its body
/// (the same body resent is the same event). Who may send it is the app layer's to check.
fn parse_value(
    caller: &Caller,
    value: serde_json::Value,
    now: Timestamp,
) -> Result<Sending, ApiError> {
    let hash = body_hash(&value);
    let request: EventRequest = parse_json(value)?;
    let event = parse_event(caller.0.tenant_id, request, hash, now)?;
    Ok(Sending {
        id: event.id,
        occurred_at: Some(event.occurred_at),
        body_hash: Some(event.body_hash),
        command: Command::from_kind(event.kind),
    })
}

/// Records one event; the answer says what it earned or spent, and why.
#[utoipa::path(post, path = "/v1/events", tag = "events", request_body = EventRequest,
    responses((status = 200, body = EventAnswer), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn post_event(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<Json<EventAnswer>, ApiError> {
    let sending = parse_value(&caller, body_json(&body)?, chrono::Utc::now())?;
    Ok(Json(state.app.submit(&caller.0, sending).await?.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct BatchRequest {
    /// 1 to 1,000 events, each as for `/v1/events`.
    #[schema(value_type = Vec<EventRequest>)]
    events: Vec<serde_json::Value>,
}

/// One event's answer in a batch.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
enum BatchAnswer {
    Accepted {
        result: Box<EventAnswer>,
    },
    Rejected {
        error: crate::error::ErrorBody,
        http_status: u16,
    },
}

#[derive(Debug, Serialize, ToSchema)]
struct BatchResponse {
    accepted: usize,
    rejected: usize,
    results: Vec<BatchAnswer>,
}

/// Records up to 1,000 events at once; each is answered on its own (one failing does not fail
/// the others).
#[utoipa::path(post, path = "/v1/events/batch", tag = "events", request_body = BatchRequest,
    responses((status = 200, body = BatchResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, description = "More than 1,000 events, or a body over 1 MiB", body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn post_batch(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<Json<BatchResponse>, ApiError> {
    caller.require_write()?;
    let request: BatchRequest = parse_json(body_json(&body)?)?;
    if request.events.is_empty() {
        return Err(ApiError::invalid(
            "events",
            format!("must hold 1 to {BATCH_EVENTS_MAX} events"),
        ));
    }
    if request.events.len() > BATCH_EVENTS_MAX {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("a batch holds at most {BATCH_EVENTS_MAX} events"),
            Some("events"),
        ));
    }
    let now = chrono::Utc::now();
    let in_place = |index: usize, mut error: ApiError| {
        error.body.field = Some(format!(
            "events[{index}].{}",
            error.body.field.unwrap_or_default()
        ));
        error
    };
    let mut slots: Vec<Result<usize, ApiError>> = Vec::with_capacity(request.events.len());
    let mut sendings = Vec::new();
    for (index, value) in request.events.into_iter().enumerate() {
        match parse_value(&caller, value, now) {
            Ok(sending) => {
                slots.push(Ok(sendings.len()));
                sendings.push((index, sending));
            }
            Err(error) => slots.push(Err(in_place(index, error))),
        }
    }
    let (places, sendings): (Vec<usize>, Vec<Sending>) = sendings.into_iter().unzip();
    // The request's own faults (a permission, a store) are named by their place in the batch;
    // the journal's refusals name the event's field, as `/v1/events` does.
    let mut answers: Vec<Option<Result<patron_store::EventResult, ApiError>>> = state
        .app
        .submit_all(&caller.0, sendings)
        .await
        .into_iter()
        .zip(places)
        .map(|(answer, index)| {
            Some(answer.map_err(|error| match error.event {
                Some(_) => ApiError::from(error),
                None => in_place(index, ApiError::from(error)),
            }))
        })
        .collect();
    let results: Vec<BatchAnswer> = slots
        .into_iter()
        .map(|slot| {
            let answer = match slot {
                Ok(position) => answers[position].take().expect("each answer used once"),
                Err(error) => Err(error),
            };
            match answer {
                Ok(result) => BatchAnswer::Accepted {
                    result: Box::new(result.into()),
                },
                Err(error) => BatchAnswer::Rejected {
                    http_status: error.status.as_u16(),
                    error: error.body,
                },
            }
        })
        .collect();
    let accepted = results
        .iter()
        .filter(|answer| matches!(answer, BatchAnswer::Accepted { .. }))
        .count();
    Ok(Json(BatchResponse {
        accepted,
        rejected: results.len() - accepted,
        results,
    }))
}

#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
struct RedemptionRequest {
    id: String,
    member: MemberRequest,
    reward_id: String,
    occurred_at: Option<String>,
}

/// Redeems a reward for points: `{id, member, reward_id}`, the same as a `redemption` event.
/// The answer carries the voucher.
#[utoipa::path(post, path = "/v1/redemptions", tag = "events", request_body = RedemptionRequest,
    responses((status = 200, body = EventAnswer), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn post_redemption(
    state: State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<Json<EventAnswer>, ApiError> {
    let mut value = body_json(&body)?;
    if let Some(object) = value.as_object_mut() {
        object.insert("type".into(), "redemption".into());
    }
    post_value(state, caller, value).await
}

#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
struct VoucherActionRequest {
    /// Idempotency key.
    id: String,
    /// `use` only: where it is used.
    store: Option<String>,
    occurred_at: Option<String>,
}

/// Uses a voucher at a till.
#[utoipa::path(post, path = "/v1/vouchers/{code}/use", tag = "events",
    request_body = VoucherActionRequest, params(("code" = String, Path)),
    responses((status = 200, body = EventAnswer), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn post_voucher_use(
    state: State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
    body: Bytes,
) -> Result<Json<EventAnswer>, ApiError> {
    voucher_action(state, caller, code, body, "voucher_use").await
}

/// Cancels an unused voucher: its points go back to their lots with their expiry.
#[utoipa::path(post, path = "/v1/vouchers/{code}/cancel", tag = "events",
    request_body = VoucherActionRequest, params(("code" = String, Path)),
    responses((status = 200, body = EventAnswer), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn post_voucher_cancel(
    state: State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
    body: Bytes,
) -> Result<Json<EventAnswer>, ApiError> {
    voucher_action(state, caller, code, body, "voucher_cancel").await
}

async fn voucher_action(
    state: State<AppState>,
    caller: Caller,
    code: String,
    body: Bytes,
    kind: &str,
) -> Result<Json<EventAnswer>, ApiError> {
    let mut value = body_json(&body)?;
    let Some(object) = value.as_object_mut() else {
        return Err(ApiError::invalid(
            "body",
            "must be a JSON object with an `id`",
        ));
    };
    object.insert("type".into(), kind.into());
    object.insert("code".into(), code.into());
    post_value(state, caller, value).await
}

async fn post_value(
    State(state): State<AppState>,
    caller: Caller,
    value: serde_json::Value,
) -> Result<Json<EventAnswer>, ApiError> {
    let sending = parse_value(&caller, value, chrono::Utc::now())?;
    Ok(Json(state.app.submit(&caller.0, sending).await?.into()))
}

/// A tenant's limits on one purchase, in minor units of its currency.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurchaseLimits {
    /// Largest amount of one purchase: above it the purchase is refused with 422
    /// `amount_above_maximum` (field `amount`). 1 to `AMOUNT_MAX`.
    pub maximum: i64,
    /// Amount above which the till asks the cashier to confirm. 1 to `maximum`.
    pub confirm: i64,
}

/// The tenant's purchase limits (by default 1,000,000,000 and 20,000,000).
#[utoipa::path(get, path = "/v1/settings/purchase-limits", tag = "events",
    responses((status = 200, body = PurchaseLimits), (status = 401, body = ErrorBody)))]
async fn get_purchase_limits(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<PurchaseLimits>, ApiError> {
    caller.require(Permission::Read)?;
    let settings = state.store.tenant(caller.0.tenant_id).await?;
    Ok(Json(PurchaseLimits {
        maximum: settings.purchase_amount_max,
        confirm: settings.purchase_amount_confirm,
    }))
}

/// Sets the tenant's purchase limits (an owner's change, audited).
#[utoipa::path(put, path = "/v1/settings/purchase-limits", tag = "events",
    request_body = PurchaseLimits,
    responses((status = 200, body = PurchaseLimits), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn put_purchase_limits(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<Json<PurchaseLimits>, ApiError> {
    caller.require(Permission::Administer)?;
    let limits: PurchaseLimits = parse_json(body_json(&body)?)?;
    if !(1..=AMOUNT_MAX).contains(&limits.maximum) {
        return Err(ApiError::invalid(
            "maximum",
            format!("must be 1 to {AMOUNT_MAX}"),
        ));
    }
    if !(1..=limits.maximum).contains(&limits.confirm) {
        return Err(ApiError::invalid("confirm", "must be 1 to `maximum`"));
    }
    state
        .store
        .set_purchase_limits(
            caller.0.tenant_id,
            caller.actor(),
            limits.maximum,
            limits.confirm,
        )
        .await?;
    Ok(Json(limits))
}
