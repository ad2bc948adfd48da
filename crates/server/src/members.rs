//! `GET /v1/members/{id}`, `GET /v1/members?phone=…`, a member's history and vouchers.

use crate::auth::Caller;
use crate::error::{parse_instant, ApiError};
use crate::AppState;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use patron_core::{MemberId, Phone};
use patron_store::{HistoryEntry, MemberRef, MemberView, VoucherView};
use serde::Deserialize;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/members", get(find_member))
        .route("/v1/members/{id}", get(get_member))
        .route("/v1/members/{id}/history", get(get_history))
        .route("/v1/members/{id}/vouchers", get(get_vouchers))
}

fn member_id(text: &str) -> Result<MemberId, ApiError> {
    MemberId::parse(text).map_err(|_| ApiError::not_found("member"))
}

async fn get_member(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<MemberView>, ApiError> {
    let reference = MemberRef::Id(member_id(&id)?);
    member_view(&state, &caller, &reference).await
}

/// The caller's tenant's member, with balances and tier progress now.
async fn member_view(
    state: &AppState,
    caller: &Caller,
    reference: &MemberRef,
) -> Result<Json<MemberView>, ApiError> {
    let view = state
        .store
        .member(caller.0.tenant_id, reference, chrono::Utc::now())
        .await?;
    Ok(Json(view))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FindQuery {
    phone: String,
}

async fn find_member(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<FindQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<MemberView>, ApiError> {
    let Query(query) = query.map_err(|_| ApiError::invalid("phone", "give ?phone=…"))?;
    let phone = Phone::parse(&query.phone)
        .map_err(|error| ApiError::invalid("phone", error.to_string()))?;
    let reference = MemberRef::Phone(phone);
    member_view(&state, &caller, &reference).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    limit: Option<i64>,
    before: Option<String>,
}

#[derive(serde::Serialize)]
struct HistoryPage {
    entries: Vec<HistoryEntry>,
    /// Pass as `before` for the next page; absent on the last page.
    next_before: Option<String>,
}

async fn get_history(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<HistoryPage>, ApiError> {
    let Query(query) = query.map_err(|error| ApiError::invalid("query", error.body_text()))?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=patron_store::queries::HISTORY_PAGE_MAX).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("must be 1 to {}", patron_store::queries::HISTORY_PAGE_MAX),
        ));
    }
    let before = parse_instant(query.before, "before")?;
    let member_id = state
        .store
        .member_id(caller.0.tenant_id, &MemberRef::Id(member_id(&id)?))
        .await?;
    let entries = state
        .store
        .history(caller.0.tenant_id, member_id, limit, before)
        .await?;
    let next_before = (entries.len() as i64 == limit)
        .then(|| entries.last().map(|entry| entry.occurred_at.clone()))
        .flatten();
    Ok(Json(HistoryPage {
        entries,
        next_before,
    }))
}

async fn get_vouchers(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<VoucherView>>, ApiError> {
    let member_id = state
        .store
        .member_id(caller.0.tenant_id, &MemberRef::Id(member_id(&id)?))
        .await?;
    Ok(Json(
        state.store.vouchers(caller.0.tenant_id, member_id).await?,
    ))
}
