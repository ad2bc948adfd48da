//! The rewards catalogue, stores and tiers: `GET/POST /v1/rewards`, `GET/POST /v1/stores`,
//! `GET /v1/tiers`.

use crate::auth::{Caller, Permission};
use crate::error::{body_json, parse_instant, parse_json, ApiError, ErrorBody};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use patron_core::reward::Reward;
use patron_core::{Points, RewardId};
use patron_store::admin::{StoreView, TierView};
use patron_store::RewardView;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_rewards, create_reward))
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
    responses((status = 200, body = Vec<RewardView>), (status = 422, body = ErrorBody)))]
async fn list_rewards(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<RewardsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<RewardView>>, ApiError> {
    caller.require(Permission::Read)?;
    let Query(query) = query.map_err(|error| ApiError::invalid("query", error.body_text()))?;
    let offered_at = query.offered.unwrap_or(false).then(chrono::Utc::now);
    Ok(Json(
        state.store.rewards(caller.0.tenant_id, offered_at).await?,
    ))
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
    responses((status = 201, body = RewardView), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn create_reward(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<(StatusCode, Json<RewardView>), ApiError> {
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
    let id = state.store.create_reward(tenant_id, &reward).await?;
    let view = state
        .store
        .rewards(tenant_id, None)
        .await?
        .into_iter()
        .find(|view| view.id == id.to_string())
        .ok_or_else(|| ApiError::internal("created reward not found"))?;
    Ok((StatusCode::CREATED, Json(view)))
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
    responses((status = 200, body = Vec<StoreView>)))]
async fn list_stores(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<StoreView>>, ApiError> {
    caller.require(Permission::Read)?;
    Ok(Json(state.store.stores(caller.0.tenant_id).await?))
}

/// The tiers of the programme in force, lowest first, with how many members hold each.
#[utoipa::path(get, path = "/v1/tiers", tag = "rewards",
    responses((status = 200, body = Vec<TierView>)))]
async fn list_tiers(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<TierView>>, ApiError> {
    caller.require(Permission::Read)?;
    Ok(Json(state.store.tiers(caller.0.tenant_id).await?))
}
