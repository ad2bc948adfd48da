//! The rewards catalogue, stores and tiers: `GET/POST /v1/rewards`, `PATCH /v1/rewards/{id}`,
//! `GET/POST /v1/stores`, `GET /v1/tiers`.

use crate::answers::*;
use crate::auth::{Caller, Permission};
use crate::error::{body_json, parse_instant, parse_json, ApiError, ErrorBody};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use patron_core::reward::Reward;
use patron_core::{Points, RewardId};
use patron_store::admin::RewardChange;
use patron_store::RewardView;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_rewards, create_reward))
        .routes(routes!(update_reward))
        .routes(routes!(list_stores, create_store))
        .routes(routes!(list_tiers))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct RewardsQuery {
    /// Only rewards offered now.
    offered: Option<bool>,
}

/// The rewards catalogue.
#[utoipa::path(get, path = "/v1/rewards", tag = "rewards", params(RewardsQuery),
    responses((status = 200, body = Vec<RewardAnswer>), (status = 422, body = ErrorBody)))]
async fn list_rewards(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<RewardsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<RewardAnswer>>, ApiError> {
    caller.require(Permission::Read)?;
    let Query(query) = query.map_err(|error| ApiError::invalid("query", error.body_text()))?;
    let offered_at = query.offered.unwrap_or(false).then(chrono::Utc::now);
    Ok(Json(all(state
        .store
        .rewards(caller.0.tenant_id, offered_at)
        .await?)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RewardRequest {
    name: String,
    #[serde(default)]
    description: String,
    cost: i64,
    stock: Option<i64>,
    per_member_limit: Option<i64>,
    valid_from: Option<String>,
    valid_until: Option<String>,
    #[serde(default)]
    stores: Vec<String>,
    #[serde(default = "thirty")]
    voucher_valid_days: u32,
}

fn thirty() -> u32 {
    30
}

/// Adds a reward to the catalogue.
#[utoipa::path(post, path = "/v1/rewards", tag = "rewards", request_body = RewardRequest,
    responses((status = 201, body = RewardAnswer), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn create_reward(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<(StatusCode, Json<RewardAnswer>), ApiError> {
    caller.require(Permission::ManageCatalogue)?;
    let request: RewardRequest = parse_json(body_json(&body)?)?;
    let reward = Reward {
        id: RewardId::new(),
        name: request.name.trim().to_owned(),
        description: request.description,
        cost: Points(request.cost),
        stock: request.stock,
        per_member_limit: request.per_member_limit,
        valid_from: parse_instant(request.valid_from, "valid_from")?,
        valid_until: parse_instant(request.valid_until, "valid_until")?,
        stores: request.stores,
        voucher_valid_days: request.voucher_valid_days,
        active: true,
    };
    let tenant_id = caller.0.tenant_id;
    let id = state
        .store
        .create_reward_as(tenant_id, &reward, caller.actor())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(reward_view(&state, tenant_id, id).await?.into()),
    ))
}

async fn reward_view(
    state: &AppState,
    tenant_id: patron_core::TenantId,
    id: RewardId,
) -> Result<RewardView, ApiError> {
    state
        .store
        .rewards(tenant_id, None)
        .await?
        .into_iter()
        .find(|view| view.id == id.to_string())
        .ok_or_else(|| ApiError::internal("reward not found after writing it"))
}

/// A field that may be absent (unchanged), `null` (cleared) or a value.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A change to a reward: fields left out stay as they are; `null` clears a limit or a date.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RewardPatch {
    name: Option<String>,
    description: Option<String>,
    /// Points, at least 1.
    cost: Option<i64>,
    /// Vouchers left to issue; `null` is unlimited.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, nullable)]
    stock: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, nullable)]
    per_member_limit: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable)]
    valid_from: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable)]
    valid_until: Option<Option<String>>,
    /// Store codes where its vouchers can be used; empty is everywhere.
    stores: Option<Vec<String>>,
    voucher_valid_days: Option<u32>,
    /// `true` retires the reward (no new redemptions; vouchers already issued stay usable),
    /// `false` offers it again.
    retired: Option<bool>,
}

/// Changes a reward, or retires it (`{"retired": true}`).
#[utoipa::path(patch, path = "/v1/rewards/{id}", tag = "rewards", request_body = RewardPatch,
    params(("id" = String, Path, description = "The reward's id")),
    responses((status = 200, body = RewardAnswer), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_reward(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<RewardAnswer>, ApiError> {
    caller.require(Permission::ManageCatalogue)?;
    let id = RewardId::parse(&id).map_err(|_| ApiError::not_found("reward"))?;
    let patch: RewardPatch = parse_json(body_json(&body)?)?;
    let instant = |value: Option<Option<String>>, field: &str| match value {
        Some(text) => parse_instant(text, field).map(Some),
        None => Ok(None),
    };
    let change = RewardChange {
        name: patch.name,
        description: patch.description,
        cost: patch.cost,
        stock: patch.stock,
        per_member_limit: patch.per_member_limit,
        valid_from: instant(patch.valid_from, "valid_from")?,
        valid_until: instant(patch.valid_until, "valid_until")?,
        stores: patch.stores,
        voucher_valid_days: patch.voucher_valid_days,
        active: patch.retired.map(|retired| !retired),
    };
    let tenant_id = caller.0.tenant_id;
    state
        .store
        .update_reward(tenant_id, id, &change, caller.actor())
        .await?;
    Ok(Json(reward_view(&state, tenant_id, id).await?.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct StoreRequest {
    code: String,
    name: String,
}

/// Adds a store (a shop or branch); events and keys name it by code.
#[utoipa::path(post, path = "/v1/stores", tag = "rewards", request_body = StoreRequest,
    responses((status = 201), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn create_store(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    caller.require(Permission::ManageCatalogue)?;
    let request: StoreRequest = parse_json(body_json(&body)?)?;
    state
        .store
        .create_store(caller.0.tenant_id, &request.code, &request.name)
        .await?;
    Ok(StatusCode::CREATED)
}

/// The tenant's stores, by code.
#[utoipa::path(get, path = "/v1/stores", tag = "rewards",
    responses((status = 200, body = Vec<StoreAnswer>)))]
async fn list_stores(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<StoreAnswer>>, ApiError> {
    caller.require(Permission::Read)?;
    Ok(Json(all(state.store.stores(caller.0.tenant_id).await?)))
}

/// The tiers of the programme in force, lowest first, with how many members hold each.
#[utoipa::path(get, path = "/v1/tiers", tag = "rewards",
    responses((status = 200, body = Vec<TierAnswer>)))]
async fn list_tiers(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<TierAnswer>>, ApiError> {
    caller.require(Permission::Read)?;
    Ok(Json(all(state.store.tiers(caller.0.tenant_id).await?)))
}
