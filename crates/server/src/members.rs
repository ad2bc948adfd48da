//! Members: list and search with a cursor, create, look up by id or phone, update the profile,
//! history, vouchers, manual adjustments, merge, and the Decree 13 export and erasure.

use crate::answers::*;

use crate::auth::{Caller, Permission};
use crate::error::{body_json, parse_instant, parse_json, ApiError, ErrorBody};
use crate::events::{parse_profile, ProfileRequest};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use patron_core::{EventId, MemberId, Phone};
use patron_store::members::{MemberFilter, ProfileUpdate, MEMBER_PAGE_MAX, SEARCH_LENGTH_MAX};
use patron_store::queries::{HistoryCursor, HISTORY_PAGE_MAX};
use patron_store::MemberRef;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_members, create_member))
        .routes(routes!(get_member, update_member))
        .routes(routes!(find_by_phone))
        .routes(routes!(get_history))
        .routes(routes!(get_vouchers))
        .routes(routes!(adjust_points))
        .routes(routes!(merge_member))
        .routes(routes!(export_member))
        .routes(routes!(erase_member))
}

fn member_id(text: &str) -> Result<MemberId, ApiError> {
    MemberId::parse(text).map_err(|_| ApiError::not_found("member"))
}

/// The caller's tenant's member, with balances and tier progress now.
async fn member_view(
    state: &AppState,
    caller: &Caller,
    reference: &MemberRef,
) -> Result<Json<MemberAnswer>, ApiError> {
    let view = state.app.member(&caller.0, reference).await?;
    let member_id = MemberId::parse(&view.id).map_err(ApiError::internal)?;
    let mut answer = MemberAnswer::from(view);
    answer.segments = all(state.app.member_segments(&caller.0, member_id).await?);
    Ok(Json(answer))
}

/// A member of the caller's tenant named by id in the path (404 for another tenant's).
async fn own_member(state: &AppState, caller: &Caller, id: &str) -> Result<MemberId, ApiError> {
    Ok(state
        .store
        .member_id(caller.0.tenant_id, &MemberRef::Id(member_id(id)?))
        .await?)
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// A phone (any Vietnamese spelling), part of a phone (at least 4 digits: "5678",
    /// "0912 345"), or words of a name or e-mail, with or without diacritics ("tran thi an").
    q: Option<String>,
    /// Only members in this tier.
    tier: Option<String>,
    /// `next_after` of the previous page.
    after: Option<String>,
    /// 1 to 200; 50 when absent.
    limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
struct MemberPage {
    members: Vec<MemberSummaryAnswer>,
    /// Pass as `after` for the next page; absent on the last page.
    next_after: Option<String>,
}

/// Lists members, oldest first, with a cursor; filters by text and tier.
#[utoipa::path(get, path = "/v1/members", tag = "members", params(ListQuery),
    responses((status = 200, body = MemberPage), (status = 422, body = ErrorBody)))]
async fn list_members(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<MemberPage>, ApiError> {
    caller.require(Permission::Read)?;
    let Query(query) = query.map_err(|error| ApiError::invalid("query", error.body_text()))?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=MEMBER_PAGE_MAX).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("must be 1 to {MEMBER_PAGE_MAX}"),
        ));
    }
    if query
        .q
        .as_ref()
        .is_some_and(|q| q.chars().count() > SEARCH_LENGTH_MAX)
    {
        return Err(ApiError::invalid(
            "q",
            format!("at most {SEARCH_LENGTH_MAX} characters"),
        ));
    }
    let filter = MemberFilter {
        query: query.q.filter(|q| !q.trim().is_empty()),
        tier: query.tier,
        after: query.after,
        limit,
    };
    let members = state.store.members(caller.0.tenant_id, &filter).await?;
    let next_after = (members.len() as i64 == limit)
        .then(|| members.last().map(|member| member.id.clone()))
        .flatten();
    Ok(Json(MemberPage {
        members: all(members),
        next_after,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateMemberRequest {
    /// Idempotency key: a retry with the same id returns the first answer. Without it, the
    /// same request is recognised by its content.
    id: Option<String>,
    phone: String,
    #[schema(value_type = Object)]
    profile: Option<serde_json::Value>,
}

/// Enrols a member by phone (a sign-up rule may award points). Enrolling a known phone returns
/// the existing member.
#[utoipa::path(post, path = "/v1/members", tag = "members", request_body = CreateMemberRequest,
    responses((status = 200, body = EventAnswer), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn create_member(
    state: State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<Json<EventAnswer>, ApiError> {
    let request: CreateMemberRequest = parse_json(body_json(&body)?)?;
    let phone = Phone::parse(&request.phone)
        .map_err(|error| ApiError::invalid("phone", error.to_string()))?;
    let profile = parse_profile(
        request
            .profile
            .clone()
            .map(parse_json::<ProfileRequest>)
            .transpose()?,
    )?;
    // Without an id, the same request is the same event (its content is the key); another
    // profile for a known phone answers with the existing member.
    let id = request.id.unwrap_or_else(|| {
        let content = serde_json::json!({"phone": phone.as_str(), "profile": request.profile});
        format!(
            "enrol-{}-{}",
            phone.as_str(),
            &crate::events::body_hash(&content)[..16]
        )
    });
    let id = EventId::parse(&id).map_err(|error| ApiError::invalid("id", error.to_string()))?;
    let command = patron_app::commands::Enrol { phone, profile };
    Ok(Json(state.app.enrol(&caller.0, id, command).await?.into()))
}

/// A member with balances (available, pending, debt, expiring soon) and tier progress.
#[utoipa::path(get, path = "/v1/members/{id}", tag = "members",
    params(("id" = String, Path, description = "member id")),
    responses((status = 200, body = MemberAnswer), (status = 404, body = ErrorBody)))]
async fn get_member(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<MemberAnswer>, ApiError> {
    let reference = MemberRef::Id(member_id(&id)?);
    member_view(&state, &caller, &reference).await
}

/// A member by phone, as a till looks them up.
#[utoipa::path(get, path = "/v1/members/by-phone/{phone}", tag = "members",
    params(("phone" = String, Path, description = "any Vietnamese spelling: 0912…, +84912…")),
    responses((status = 200, body = MemberAnswer), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn find_by_phone(
    State(state): State<AppState>,
    caller: Caller,
    Path(phone): Path<String>,
) -> Result<Json<MemberAnswer>, ApiError> {
    let phone =
        Phone::parse(&phone).map_err(|error| ApiError::invalid("phone", error.to_string()))?;
    member_view(&state, &caller, &MemberRef::Phone(phone)).await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UpdateMemberRequest {
    phone: Option<String>,
    #[schema(value_type = Object)]
    profile: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Changes a member's phone or profile fields; fields given are set, `null` clears. Audited.
#[utoipa::path(patch, path = "/v1/members/{id}", tag = "members", request_body = UpdateMemberRequest,
    params(("id" = String, Path)),
    responses((status = 200, body = MemberAnswer), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_member(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<MemberAnswer>, ApiError> {
    caller.require(Permission::RecordEvents)?;
    let request: UpdateMemberRequest = parse_json(body_json(&body)?)?;
    let member = own_member(&state, &caller, &id).await?;
    let mut update = ProfileUpdate {
        phone: request
            .phone
            .map(|phone| Phone::parse(&phone))
            .transpose()
            .map_err(|error| ApiError::invalid("phone", error.to_string()))?,
        ..ProfileUpdate::default()
    };
    if let Some(fields) = request.profile {
        // Parse the present fields as a profile (same checks as enrolment); a `null` clears.
        let present: Vec<String> = fields.keys().cloned().collect();
        let cleaned: serde_json::Map<_, _> = fields
            .into_iter()
            .filter(|(_, value)| !value.is_null())
            .collect();
        let request: ProfileRequest =
            parse_json(serde_json::Value::Object(cleaned)).map_err(|mut error| {
                error.body.field = error.body.field.map(|field| format!("profile.{field}"));
                error
            })?;
        let profile = parse_profile(Some(request))?;
        for field in present {
            match field.as_str() {
                "name" => update.name = Some(profile.name.clone()),
                "email" => update.email = Some(profile.email.clone()),
                "birthday" => update.birthday = Some(profile.birthday),
                "gender" => update.gender = Some(profile.gender.clone()),
                "city" => update.city = Some(profile.city.clone()),
                "tags" => update.tags = Some(profile.tags.clone()),
                "attributes" => update.attributes = Some(profile.attributes.clone()),
                _ => {}
            }
        }
    }
    state
        .store
        .update_member(caller.0.tenant_id, member, &update, caller.actor())
        .await?;
    member_view(&state, &caller, &MemberRef::Id(member)).await
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct HistoryQuery {
    /// 1 to 200; 50 when absent.
    limit: Option<i64>,
    /// `next_cursor` of the previous page: the page starts after that entry.
    cursor: Option<String>,
    /// An RFC 3339 instant: start with the entries strictly older than it (a starting point,
    /// not a page cursor; not with `cursor`).
    before: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct HistoryPage {
    entries: Vec<HistoryEntryAnswer>,
    /// Pass as `cursor` for the next page; absent on the last page. Opaque.
    next_cursor: Option<String>,
}

/// A member's ledger history, newest first (by instant, then transaction id), with the reason
/// for each entry; page with `cursor`.
#[utoipa::path(get, path = "/v1/members/{id}/history", tag = "members",
    params(("id" = String, Path), HistoryQuery),
    responses((status = 200, body = HistoryPage), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn get_history(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<HistoryPage>, ApiError> {
    caller.require(Permission::Read)?;
    let Query(query) = query.map_err(|error| ApiError::invalid("query", error.body_text()))?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=HISTORY_PAGE_MAX).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("must be 1 to {HISTORY_PAGE_MAX}"),
        ));
    }
    let before = parse_instant(query.before, "before")?.map(HistoryCursor::before);
    let after = match (query.cursor, before) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "cursor",
                "give either cursor or before, not both",
            ))
        }
        (Some(text), None) => Some(HistoryCursor::parse(&text).ok_or_else(|| {
            ApiError::invalid("cursor", "must be the next_cursor of a previous page")
        })?),
        (None, before) => before,
    };
    let member = own_member(&state, &caller, &id).await?;
    let entries = state
        .store
        .history(caller.0.tenant_id, member, limit, after.as_ref())
        .await?;
    let next_cursor = (entries.len() as i64 == limit)
        .then(|| entries.last().map(|entry| entry.cursor.encode()))
        .flatten();
    Ok(Json(HistoryPage {
        entries: all(entries),
        next_cursor,
    }))
}

/// A member's vouchers.
#[utoipa::path(get, path = "/v1/members/{id}/vouchers", tag = "members",
    params(("id" = String, Path)),
    responses((status = 200, body = Vec<VoucherAnswer>), (status = 404, body = ErrorBody)))]
async fn get_vouchers(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<VoucherAnswer>>, ApiError> {
    caller.require(Permission::Read)?;
    let member = own_member(&state, &caller, &id).await?;
    let vouchers = state.store.vouchers(caller.0.tenant_id, member).await?;
    Ok(Json(
        vouchers.into_iter().map(VoucherAnswer::from).collect(),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct AdjustmentRequest {
    /// Idempotency key.
    id: String,
    /// Points to add (negative to take away); never zero.
    points: i64,
    /// Why, shown in the member's history and the audit log; required.
    reason: String,
}

/// A manual adjustment of points with a reason; written to the audit log with the change.
#[utoipa::path(post, path = "/v1/members/{id}/adjustments", tag = "members",
    request_body = AdjustmentRequest, params(("id" = String, Path)),
    responses((status = 200, body = EventAnswer), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn adjust_points(
    state: State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<EventAnswer>, ApiError> {
    let request: AdjustmentRequest = parse_json(body_json(&body)?)?;
    let member = member_id(&id)?;
    let id =
        EventId::parse(&request.id).map_err(|error| ApiError::invalid("id", error.to_string()))?;
    let command = patron_app::commands::AdjustPoints {
        member: MemberRef::Id(member),
        asset: patron_core::ledger::Asset::Points,
        points: crate::events::adjustment_points(request.points)?,
        reason: crate::events::text(&request.reason, "reason")?,
    };
    Ok(Json(
        state
            .app
            .adjust_points(&caller.0, id, command)
            .await?
            .into(),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct MergeBody {
    /// The member to merge into this one; they are deleted after the merge.
    member_id: String,
}

/// Merges another member into this one, keeping every ledger entry. Audited.
#[utoipa::path(post, path = "/v1/members/{id}/merge", tag = "members", request_body = MergeBody,
    params(("id" = String, Path, description = "the member that stays")),
    responses((status = 200, body = MergeReportAnswer), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn merge_member(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<MergeReportAnswer>, ApiError> {
    caller.require(Permission::ManageMembers)?;
    let request: MergeBody = parse_json(body_json(&body)?)?;
    let survivor = member_id(&id)?;
    let source = MemberId::parse(&request.member_id)
        .map_err(|_| ApiError::invalid("member_id", "not a member id"))?;
    Ok(Json(
        state.app.merge(&caller.0, survivor, source).await?.into(),
    ))
}

/// Everything held about a member, as JSON (Decree 13/2023 data-access request).
#[utoipa::path(get, path = "/v1/members/{id}/export", tag = "members",
    params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
async fn export_member(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Permission::ManageMembers)?;
    let member = own_member(&state, &caller, &id).await?;
    let data = state
        .store
        .member_export(caller.0.tenant_id, member)
        .await?;
    state
        .store
        .audit(&patron_store::audit::Change {
            tenant_id: caller.0.tenant_id,
            actor: caller.actor(),
            action: "member.export",
            subject: format!("member:{member}"),
            before: None,
            after: None,
        })
        .await?;
    Ok(Json(data))
}

/// Erases a member's personal data (Decree 13/2023); the ledger stays, anonymous. Audited.
#[utoipa::path(post, path = "/v1/members/{id}/erase", tag = "members",
    params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn erase_member(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let member = member_id(&id)?;
    state.app.erase(&caller.0, member).await?;
    Ok(StatusCode::NO_CONTENT)
}
