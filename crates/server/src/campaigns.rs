//! Campaigns, the tenant's messaging accounts and rules of respect, and the providers' delivery
//! callbacks: `GET/POST /v1/campaigns`, `GET /v1/campaigns/{id}`,
//! `POST /v1/campaigns/{id}/start`, `POST /v1/campaigns/{id}/cancel`,
//! `GET /v1/campaigns/{id}/report`, `GET /v1/channels`, `PUT /v1/channels/{channel}`,
//! `GET/PUT /v1/outreach`; undocumented (providers call them): `POST /hooks/zns/{tenant}`,
//! `GET /hooks/esms/{tenant}`, `POST /hooks/speedsms/{tenant}`.

use crate::auth::{Caller, Permission};
use crate::error::{body_json, parse_json, ApiError, ErrorBody};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use patron_app::campaigns::{Campaign, CampaignDefinition, CampaignReport, GroupFigures};
use patron_app::dispatch::{Account, RespectSettings};
use patron_store::rfc3339;
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_campaigns, create_campaign))
        .routes(routes!(get_campaign))
        .routes(routes!(start_campaign))
        .routes(routes!(cancel_campaign))
        .routes(routes!(campaign_report))
        .routes(routes!(list_channels))
        .routes(routes!(save_channel))
        .routes(routes!(get_outreach, save_outreach))
}

/// The providers' delivery callbacks, outside the documented API.
pub fn hooks() -> Router<AppState> {
    Router::new()
        .route("/hooks/zns/{tenant}", post(zns_delivery))
        .route("/hooks/esms/{tenant}", get(esms_delivery))
        .route("/hooks/speedsms/{tenant}", post(speedsms_delivery))
}

/// A campaign and where it stands.
#[derive(Serialize, ToSchema)]
pub struct CampaignAnswer {
    id: String,
    name: String,
    segment_id: String,
    /// `scheduled`, `sending`, `sent` or `cancelled`.
    status: String,
    scheduled_at: Option<String>,
    started_at: Option<String>,
    finished_at: Option<String>,
    /// Members targeted when it started.
    audience: Option<i64>,
    /// As written: channels, variants, hold-out, attribution window.
    #[schema(value_type = Object)]
    definition: serde_json::Value,
}

fn utc(at: patron_core::time::Timestamp) -> String {
    rfc3339(at, chrono_tz::UTC)
}

impl From<Campaign> for CampaignAnswer {
    fn from(campaign: Campaign) -> CampaignAnswer {
        let row = campaign.row;
        CampaignAnswer {
            id: row.id,
            name: row.name,
            segment_id: row.segment_id,
            status: row.status,
            scheduled_at: row.scheduled_at.map(utc),
            started_at: row.started_at.map(utc),
            finished_at: row.finished_at.map(utc),
            audience: row.audience,
            definition: serde_json::to_value(&campaign.definition).unwrap_or_default(),
        }
    }
}

/// A group's members and what they bought in the attribution window.
#[derive(Serialize, ToSchema)]
pub struct GroupAnswer {
    members: i64,
    converted: i64,
    purchases: i64,
    /// In minor units.
    revenue: i64,
}

impl From<&GroupFigures> for GroupAnswer {
    fn from(figures: &GroupFigures) -> GroupAnswer {
        GroupAnswer {
            members: figures.members,
            converted: figures.converted,
            purchases: figures.purchases,
            revenue: figures.revenue,
        }
    }
}

/// A variant's part of the sent group.
#[derive(Serialize, ToSchema)]
pub struct VariantAnswer {
    name: String,
    sent: i64,
    group: GroupAnswer,
}

/// An interval at 95 %.
#[derive(Serialize, ToSchema)]
pub struct IntervalAnswer {
    low: f64,
    high: f64,
}

/// What a campaign did.
#[derive(Serialize, ToSchema)]
pub struct ReportAnswer {
    targeted: i64,
    held_out: i64,
    /// Never sent, by reason.
    suppressed: BTreeMap<String, i64>,
    pending: i64,
    sent: i64,
    delivered: i64,
    /// Failed for good, by reason.
    failed: BTreeMap<String, i64>,
    sent_by_channel: BTreeMap<String, i64>,
    /// Charged by the providers, in đồng.
    cost: i64,
    attribution_from: String,
    attribution_to: String,
    /// Every member not held out, whatever became of their message.
    sent_group: GroupAnswer,
    holdout_group: GroupAnswer,
    variants: Vec<VariantAnswer>,
    /// Conversion rate of the sent group less the hold-out's, and its 95 % interval.
    conversion_uplift: Option<f64>,
    conversion_interval: Option<IntervalAnswer>,
    /// Revenue per member of the sent group less the hold-out's, and its 95 % interval.
    revenue_uplift: Option<f64>,
    revenue_interval: Option<IntervalAnswer>,
}

impl From<CampaignReport> for ReportAnswer {
    fn from(report: CampaignReport) -> ReportAnswer {
        let interval = |interval: Option<patron_core::outreach::Interval>| {
            interval.map(|interval| IntervalAnswer {
                low: interval.low,
                high: interval.high,
            })
        };
        ReportAnswer {
            targeted: report.targeted,
            held_out: report.held_out,
            suppressed: report.suppressed,
            pending: report.pending,
            sent: report.sent,
            delivered: report.delivered,
            failed: report.failed,
            sent_by_channel: report.sent_by_channel,
            cost: report.cost,
            attribution_from: utc(report.window_from),
            attribution_to: utc(report.window_to),
            sent_group: (&report.sent_group).into(),
            holdout_group: (&report.holdout_group).into(),
            variants: report
                .variants
                .iter()
                .map(|variant| VariantAnswer {
                    name: variant.name.clone(),
                    sent: variant.sent,
                    group: (&variant.figures).into(),
                })
                .collect(),
            conversion_uplift: report.uplift.conversion_difference,
            conversion_interval: interval(report.uplift.conversion_interval),
            revenue_uplift: report.uplift.revenue_difference,
            revenue_interval: interval(report.uplift.revenue_interval),
        }
    }
}

/// A messaging account (its credentials are never shown back).
#[derive(Serialize, ToSchema)]
pub struct ChannelAnswer {
    /// `zns`, `sms` or `email`.
    channel: String,
    /// `zns`, `esms`, `speedsms` or `smtp`.
    provider: String,
}

#[derive(Serialize, ToSchema)]
pub struct StartedAnswer {
    /// Members the campaign targets.
    audience: usize,
}

/// The tenant's campaigns, newest first.
#[utoipa::path(get, path = "/v1/campaigns", tag = "campaigns",
    responses((status = 200, body = Vec<CampaignAnswer>)))]
async fn list_campaigns(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<CampaignAnswer>>, ApiError> {
    let campaigns = state.app.campaigns(&caller.0).await?;
    Ok(Json(campaigns.into_iter().map(Into::into).collect()))
}

/// Saves a campaign to a segment: it starts at `scheduled_at`, or at once.
#[utoipa::path(post, path = "/v1/campaigns", tag = "campaigns",
    request_body(content = Object, description = "name, segment_id, purpose (advertising|care), \
        channels (in fallback order: zns, sms, email), variants [{name, weight, zns {template_id, data}, \
        sms, email {subject, html, text}}] (minijinja over member.name, member.first_name, member.tier, \
        member.points, tenant.name), holdout_percent, attribution_days, scheduled_at"),
    responses((status = 201, body = CampaignAnswer), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn create_campaign(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<(StatusCode, Json<CampaignAnswer>), ApiError> {
    caller.require(Permission::ManageMarketing)?;
    let definition: CampaignDefinition = parse_json(body_json(&body)?)?;
    let campaign = state.app.create_campaign(&caller.0, &definition).await?;
    Ok((StatusCode::CREATED, Json(campaign.into())))
}

/// One campaign.
#[utoipa::path(get, path = "/v1/campaigns/{id}", params(("id" = String, Path)), tag = "campaigns",
    responses((status = 200, body = CampaignAnswer), (status = 404, body = ErrorBody)))]
async fn get_campaign(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<CampaignAnswer>, ApiError> {
    Ok(Json(state.app.campaign(&caller.0, &id).await?.into()))
}

/// Starts a scheduled campaign now: fixes its audience and queues its messages.
#[utoipa::path(post, path = "/v1/campaigns/{id}/start", params(("id" = String, Path)), tag = "campaigns",
    responses((status = 200, body = StartedAnswer), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn start_campaign(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<StartedAnswer>, ApiError> {
    let audience = state.app.start_campaign(&caller.0, &id).await?;
    Ok(Json(StartedAnswer { audience }))
}

/// Cancels a campaign: what is not sent yet is not.
#[utoipa::path(post, path = "/v1/campaigns/{id}/cancel", params(("id" = String, Path)), tag = "campaigns",
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn cancel_campaign(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.app.cancel_campaign(&caller.0, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What a campaign did, and what its members bought against the hold-out.
#[utoipa::path(get, path = "/v1/campaigns/{id}/report", params(("id" = String, Path)), tag = "campaigns",
    responses((status = 200, body = ReportAnswer), (status = 404, body = ErrorBody)))]
async fn campaign_report(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ReportAnswer>, ApiError> {
    Ok(Json(
        state.app.campaign_report(&caller.0, &id).await?.into(),
    ))
}

/// The tenant's messaging accounts.
#[utoipa::path(get, path = "/v1/channels", tag = "campaigns",
    responses((status = 200, body = Vec<ChannelAnswer>)))]
async fn list_channels(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<ChannelAnswer>>, ApiError> {
    let accounts = state.app.channel_accounts(&caller.0).await?;
    Ok(Json(
        accounts
            .into_iter()
            .map(|(channel, provider)| ChannelAnswer { channel, provider })
            .collect(),
    ))
}

/// Keeps the tenant's account on a channel, sealed with the server's key; never shown back.
#[utoipa::path(put, path = "/v1/channels/{channel}", params(("channel" = String, Path)), tag = "campaigns",
    request_body(content = Object, description = "{provider: zns, app_id, secret_key, oa_secret_key, \
        access_token, refresh_token, expires_at} | {provider: esms, api_key, secret_key, brandname} | \
        {provider: speedsms, access_token, sender} | {provider: smtp, host, port, username, password, starttls, from}"),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn save_channel(
    State(state): State<AppState>,
    caller: Caller,
    Path(channel): Path<String>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    caller.require(Permission::ManageMarketing)?;
    let account: Account = parse_json(body_json(&body)?)?;
    if account.channel().as_str() != channel {
        return Err(ApiError::invalid(
            "provider",
            format!(
                "a {} account does not send on {channel}",
                account.provider()
            ),
        ));
    }
    state.app.save_channel_account(&caller.0, &account).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The tenant's rules of respect.
#[utoipa::path(get, path = "/v1/outreach", tag = "campaigns",
    responses((status = 200, body = Object)))]
async fn get_outreach(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Permission::Read)?;
    let settings = state.app.respect_settings(caller.0.tenant_id).await?;
    Ok(Json(serde_json::to_value(settings).unwrap_or_default()))
}

/// Keeps the tenant's rules of respect: a frequency cap and quiet hours (the law's rules on
/// advertising SMS apply whatever these say).
#[utoipa::path(put, path = "/v1/outreach", tag = "campaigns",
    request_body(content = Object, description = "cap_messages, cap_days, quiet_from (HH:MM), quiet_to (HH:MM)"),
    responses((status = 204), (status = 422, body = ErrorBody)))]
async fn save_outreach(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    caller.require(Permission::ManageMarketing)?;
    let settings: RespectSettings = parse_json(body_json(&body)?)?;
    state.app.save_respect(&caller.0, &settings).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn tenant_of(text: &str) -> Result<patron_core::TenantId, ApiError> {
    patron_core::TenantId::parse(text).map_err(|_| ApiError::not_found("tenant"))
}

async fn record(
    state: &AppState,
    delivery: patron_channels::Delivery,
) -> Result<StatusCode, ApiError> {
    let delivered = match delivery.status {
        patron_channels::DeliveryStatus::Delivered => true,
        patron_channels::DeliveryStatus::Failed => false,
        patron_channels::DeliveryStatus::Pending => return Ok(StatusCode::OK),
    };
    state
        .store
        .message_delivered(
            &delivery.provider_id,
            delivered,
            delivery.delivered_at.unwrap_or_else(chrono::Utc::now),
        )
        .await?;
    Ok(StatusCode::OK)
}

/// Zalo's delivery webhook, signed with the tenant's OA secret.
async fn zns_delivery(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let tenant_id = tenant_of(&tenant)?;
    let Some((app_id, secret)) = state.app.zns_webhook_secret(tenant_id).await? else {
        return Err(ApiError::not_found("ZNS account"));
    };
    let signature = headers
        .get("x-zevent-signature")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let delivery = patron_channels::zns::verify_delivery(&app_id, &secret, signature, &body)
        .map_err(|error| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "bad_signature",
                error.to_string(),
                None,
            )
        })?;
    record(&state, delivery).await
}

/// eSMS's delivery callback (a GET with the report in its query).
async fn esms_delivery(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<StatusCode, ApiError> {
    tenant_of(&tenant)?;
    let delivery = patron_channels::esms::parse_callback(query)
        .map_err(|error| ApiError::invalid("query", error.to_string()))?;
    record(&state, delivery).await
}

/// SpeedSMS's delivery callback.
async fn speedsms_delivery(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    tenant_of(&tenant)?;
    let delivery = patron_channels::speedsms::parse_callback(&body)
        .map_err(|error| ApiError::invalid("body", error.to_string()))?;
    record(&state, delivery).await
}
