//! The rewards catalogue, the programme and stores: `GET/POST /v1/rewards`,
//! `GET/POST /v1/programme/versions`, `POST /v1/stores`.

use crate::auth::Caller;
use crate::error::{body_json, parse_instant, parse_json, ApiError};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use patron_core::programme::ProgrammeDefinition;
use patron_core::reward::Reward;
use patron_core::{Points, RewardId};
use patron_store::RewardView;
use serde::Deserialize;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/rewards", get(list_rewards).post(create_reward))
        .route("/v1/programme/versions", post(publish_programme))
        .route("/v1/stores", post(create_store))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RewardsQuery {
    /// Only rewards offered now.
    offered: Option<bool>,
}

async fn list_rewards(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<RewardsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<RewardView>>, ApiError> {
    let Query(query) = query.map_err(|error| ApiError::invalid("query", error.body_text()))?;
    let offered_at = query.offered.unwrap_or(false).then(chrono::Utc::now);
    Ok(Json(
        state.store.rewards(caller.0.tenant_id, offered_at).await?,
    ))
}

#[derive(Deserialize)]
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

async fn create_reward(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<(StatusCode, Json<RewardView>), ApiError> {
    caller.require_write()?;
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishRequest {
    definition: serde_json::Value,
    effective_from: Option<String>,
}

#[derive(serde::Serialize)]
struct Published {
    version: i64,
}

async fn publish_programme(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<(StatusCode, Json<Published>), ApiError> {
    caller.require_write()?;
    let request: PublishRequest = parse_json(body_json(&body)?)?;
    let definition: ProgrammeDefinition = parse_json(request.definition).map_err(|mut error| {
        error.body.field = Some(format!(
            "definition.{}",
            error.body.field.unwrap_or_default()
        ));
        error
    })?;
    let effective_from =
        parse_instant(request.effective_from, "effective_from")?.unwrap_or_else(chrono::Utc::now);
    let version = state
        .store
        .publish_programme(caller.0.tenant_id, definition, effective_from)
        .await?;
    Ok((StatusCode::CREATED, Json(Published { version })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreRequest {
    code: String,
    name: String,
}

async fn create_store(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    caller.require_write()?;
    let request: StoreRequest = parse_json(body_json(&body)?)?;
    state
        .store
        .create_store(caller.0.tenant_id, &request.code, &request.name)
        .await?;
    Ok(StatusCode::CREATED)
}
