//! Segments and consent: `GET /v1/segments/fields`, `GET/POST /v1/segments`,
//! `POST /v1/segments/preview`, `GET/PUT/DELETE /v1/segments/{id}`,
//! `GET /v1/segments/{id}/members`, `GET /v1/segments/{id}/members.csv`,
//! `GET /v1/segments/{id}/versions`, `GET /v1/members/{id}/consents`,
//! `PUT /v1/members/{id}/consents/{channel}`.

use crate::answers::MemberSummaryAnswer;
use crate::auth::{Caller, Permission};
use crate::error::{body_json, parse_json, ApiError, ErrorBody};
use crate::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use patron_app::segments::{SegmentCount, SEGMENT_PAGE_MAX};
use patron_core::segment::{SalesPolicy, SegmentDefinition};
use patron_core::MemberId;
use patron_store::exports::spreadsheet_safe;
use patron_store::segments::{Consent, ConsentChannel, SegmentVersion};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(segment_fields))
        .routes(routes!(list_segments, create_segment))
        .routes(routes!(preview_segment))
        .routes(routes!(get_segment, update_segment, archive_segment))
        .routes(routes!(segment_members))
        .routes(routes!(segment_members_csv))
        .routes(routes!(segment_versions))
        .routes(routes!(member_consents))
        .routes(routes!(set_member_consent))
}

/// A field a segment condition may name, as `member.<name>`.
#[derive(Serialize, ToSchema)]
pub struct FieldAnswer {
    name: String,
    /// `number`, `text`, `yes_no` or `tags`.
    kind: String,
    help: String,
}

/// What the till offers a segment's members.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyBody {
    /// Whole percent off, 0 to 100.
    #[serde(default)]
    discount_percent: u8,
    #[serde(default)]
    price_list: Option<String>,
    /// For the cashier.
    #[serde(default)]
    note: Option<String>,
}

impl From<SalesPolicy> for PolicyBody {
    fn from(policy: SalesPolicy) -> PolicyBody {
        PolicyBody {
            discount_percent: policy.discount_percent,
            price_list: policy.price_list,
            note: policy.note,
        }
    }
}

impl From<PolicyBody> for SalesPolicy {
    fn from(policy: PolicyBody) -> SalesPolicy {
        SalesPolicy {
            discount_percent: policy.discount_percent,
            price_list: policy.price_list,
            note: policy.note,
        }
    }
}

/// A segment at its current version, with how many members it holds now.
#[derive(Serialize, ToSchema)]
pub struct SegmentAnswer {
    id: String,
    version: i64,
    name: String,
    /// CEL over `member`, e.g. `member.tier == "gold" && member.spend_90d >= 2000000`.
    condition: String,
    policy: Option<PolicyBody>,
    members: usize,
    created_at: String,
    updated_at: String,
}

impl From<SegmentCount> for SegmentAnswer {
    fn from(count: SegmentCount) -> SegmentAnswer {
        let record = count.record;
        SegmentAnswer {
            id: record.id,
            version: record.version,
            name: record.name,
            condition: record.condition,
            policy: record.policy.map(PolicyBody::from),
            members: count.members,
            created_at: record.created_at,
            updated_at: record.updated_at,
        }
    }
}

/// A segment with a few of its members.
#[derive(Serialize, ToSchema)]
pub struct SegmentDetailAnswer {
    segment: SegmentAnswer,
    sample: Vec<MemberSummaryAnswer>,
}

/// A page of a segment's members.
#[derive(Serialize, ToSchema)]
pub struct SegmentMembersAnswer {
    members: usize,
    offset: usize,
    items: Vec<MemberSummaryAnswer>,
}

/// What a condition selects now.
#[derive(Serialize, ToSchema)]
pub struct PreviewAnswer {
    /// Members it selects.
    members: usize,
    /// Members of the tenant.
    of: usize,
    sample: Vec<MemberSummaryAnswer>,
}

/// One saved version of a segment.
#[derive(Serialize, ToSchema)]
pub struct SegmentVersionAnswer {
    version: i64,
    name: String,
    condition: String,
    policy: Option<PolicyBody>,
    created_at: String,
    actor: String,
}

impl From<SegmentVersion> for SegmentVersionAnswer {
    fn from(version: SegmentVersion) -> SegmentVersionAnswer {
        SegmentVersionAnswer {
            version: version.version,
            name: version.name,
            condition: version.condition,
            policy: version.policy.map(PolicyBody::from),
            created_at: version.created_at,
            actor: version.actor,
        }
    }
}

/// A member's latest word on one channel.
#[derive(Serialize, ToSchema)]
pub struct ConsentAnswer {
    /// `zns`, `sms` or `email`.
    channel: String,
    granted: bool,
    at: String,
    source: String,
}

impl From<Consent> for ConsentAnswer {
    fn from(consent: Consent) -> ConsentAnswer {
        ConsentAnswer {
            channel: consent.channel.as_str().to_owned(),
            granted: consent.granted,
            at: consent.at,
            source: consent.source,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SegmentRequest {
    name: String,
    condition: String,
    #[serde(default)]
    policy: Option<PolicyBody>,
    /// On update: the version being replaced; a segment saved meanwhile answers 409.
    #[serde(default)]
    version: Option<i64>,
}

impl SegmentRequest {
    fn definition(self) -> (SegmentDefinition, Option<i64>) {
        (
            SegmentDefinition {
                name: self.name,
                condition: self.condition,
                policy: self.policy.map(SalesPolicy::from),
            },
            self.version,
        )
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PreviewRequest {
    condition: String,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct PageQuery {
    #[serde(default)]
    offset: usize,
    /// At most 500.
    limit: Option<usize>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ConsentRequest {
    granted: bool,
    /// Where the member gave it (`till`, `member_page`, `import`, `api`, …); `api` when
    /// missing.
    #[serde(default)]
    source: Option<String>,
}

/// Longest consent source, in bytes.
const CONSENT_SOURCE_MAX: usize = 40;

fn summaries(members: Vec<patron_store::members::MemberSummary>) -> Vec<MemberSummaryAnswer> {
    members.into_iter().map(MemberSummaryAnswer::from).collect()
}

/// The fields a segment condition may name.
#[utoipa::path(get, path = "/v1/segments/fields", tag = "segments",
    responses((status = 200, body = Vec<FieldAnswer>)))]
async fn segment_fields(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<FieldAnswer>>, ApiError> {
    caller.require(Permission::Read)?;
    Ok(Json(
        state
            .app
            .segment_fields()
            .into_iter()
            .map(|field| FieldAnswer {
                name: field.name.to_owned(),
                kind: serde_json::to_value(field.kind)
                    .ok()
                    .and_then(|kind| kind.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                help: field.help.to_owned(),
            })
            .collect(),
    ))
}

/// The tenant's segments, each with its member count now.
#[utoipa::path(get, path = "/v1/segments", tag = "segments",
    responses((status = 200, body = Vec<SegmentAnswer>)))]
async fn list_segments(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<SegmentAnswer>>, ApiError> {
    let counts = state.app.segments(&caller.0).await?;
    Ok(Json(counts.into_iter().map(SegmentAnswer::from).collect()))
}

/// Saves a new segment (version 1).
#[utoipa::path(post, path = "/v1/segments", tag = "segments", request_body = SegmentRequest,
    responses((status = 201, body = SegmentAnswer), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn create_segment(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<(StatusCode, Json<SegmentAnswer>), ApiError> {
    caller.require(Permission::ManageMarketing)?;
    let request: SegmentRequest = parse_json(body_json(&body)?)?;
    let (definition, _) = request.definition();
    let saved = state
        .app
        .save_segment(&caller.0, None, None, &definition)
        .await?;
    Ok((StatusCode::CREATED, Json(saved.into())))
}

/// How many members a condition selects now, with a sample: nothing is saved.
#[utoipa::path(post, path = "/v1/segments/preview", tag = "segments", request_body = PreviewRequest,
    responses((status = 200, body = PreviewAnswer), (status = 422, body = ErrorBody)))]
async fn preview_segment(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<Json<PreviewAnswer>, ApiError> {
    caller.require(Permission::ManageMarketing)?;
    let request: PreviewRequest = parse_json(body_json(&body)?)?;
    let selection = state
        .app
        .preview_segment(&caller.0, &request.condition)
        .await?;
    Ok(Json(PreviewAnswer {
        members: selection.members,
        of: selection.of,
        sample: summaries(selection.sample),
    }))
}

/// One segment, its count and a sample of members.
#[utoipa::path(get, path = "/v1/segments/{id}", params(("id" = String, Path)), tag = "segments",
    responses((status = 200, body = SegmentDetailAnswer), (status = 404, body = ErrorBody)))]
async fn get_segment(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<SegmentDetailAnswer>, ApiError> {
    let (count, sample) = state.app.segment(&caller.0, &id).await?;
    Ok(Json(SegmentDetailAnswer {
        segment: count.into(),
        sample: summaries(sample),
    }))
}

/// Saves a new version of a segment.
#[utoipa::path(put, path = "/v1/segments/{id}", params(("id" = String, Path)), tag = "segments", request_body = SegmentRequest,
    responses((status = 200, body = SegmentAnswer), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_segment(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<SegmentAnswer>, ApiError> {
    caller.require(Permission::ManageMarketing)?;
    let request: SegmentRequest = parse_json(body_json(&body)?)?;
    let (definition, version) = request.definition();
    let saved = state
        .app
        .save_segment(&caller.0, Some(&id), version, &definition)
        .await?;
    Ok(Json(saved.into()))
}

/// Archives a segment; its versions stay.
#[utoipa::path(delete, path = "/v1/segments/{id}", params(("id" = String, Path)), tag = "segments",
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn archive_segment(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.app.archive_segment(&caller.0, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A page of a segment's members, in member id order.
#[utoipa::path(get, path = "/v1/segments/{id}/members", tag = "segments", params(("id" = String, Path), PageQuery),
    responses((status = 200, body = SegmentMembersAnswer), (status = 404, body = ErrorBody)))]
async fn segment_members(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<SegmentMembersAnswer>, ApiError> {
    let Query(query) = query.map_err(|error| ApiError::invalid("query", error.body_text()))?;
    let limit = query.limit.unwrap_or(100);
    if limit == 0 || limit > SEGMENT_PAGE_MAX {
        return Err(ApiError::invalid(
            "limit",
            format!("1 to {SEGMENT_PAGE_MAX}"),
        ));
    }
    let (count, items) = state
        .app
        .segment_members(&caller.0, &id, query.offset, limit)
        .await?;
    Ok(Json(SegmentMembersAnswer {
        members: count.members,
        offset: query.offset,
        items: summaries(items),
    }))
}

/// Members of a segment read per page of the CSV.
const CSV_PAGE: usize = 1_000;

/// Every member of a segment as CSV (`id,phone,name,email,tier,balance,lifetime_spend,
/// order_count,created_at`), for owners and managers; audited.
#[utoipa::path(get, path = "/v1/segments/{id}/members.csv", params(("id" = String, Path)), tag = "segments",
    responses((status = 200, content_type = "text/csv", body = String),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn segment_members_csv(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (count, ids) = state.app.segment_member_ids(&caller.0, &id).await?;
    state
        .store
        .audit(&patron_store::audit::Change {
            tenant_id: caller.0.tenant_id,
            actor: caller.actor(),
            action: "export.segment_members",
            subject: format!("segment:{id}"),
            before: None,
            after: Some(serde_json::json!({ "members": count.members })),
        })
        .await?;
    let store = state.store.clone();
    let tenant_id = caller.0.tenant_id;
    let pages: Vec<Vec<MemberId>> = ids.chunks(CSV_PAGE).map(<[MemberId]>::to_vec).collect();
    let header = Bytes::from_static(
        b"id,phone,name,email,tier,balance,lifetime_spend,order_count,created_at\n",
    );
    let rows = futures_util::stream::iter(pages).then(move |page| {
        let store = store.clone();
        async move {
            let members = store
                .member_summaries(tenant_id, &page)
                .await
                .map_err(std::io::Error::other)?;
            let mut writer = csv::Writer::from_writer(Vec::with_capacity(page.len() * 96));
            for member in members {
                let fields = [
                    member.id,
                    member.phone.unwrap_or_default(),
                    member.name.unwrap_or_default(),
                    member.email.unwrap_or_default(),
                    member.tier,
                    member.balance.to_string(),
                    member.lifetime_spend.to_string(),
                    member.order_count.to_string(),
                    member.created_at,
                ];
                writer
                    .write_record(
                        fields
                            .iter()
                            .map(|field| spreadsheet_safe(field).into_owned()),
                    )
                    .map_err(std::io::Error::other)?;
            }
            writer
                .into_inner()
                .map(Bytes::from)
                .map_err(|error| std::io::Error::other(error.to_string()))
        }
    });
    use futures_util::StreamExt;
    let body = futures_util::stream::once(async move { Ok::<_, std::io::Error>(header) })
        .chain(rows.map(|page: Result<Bytes, std::io::Error>| page));
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"segment-{id}.csv\""),
            ),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

/// A segment's saved versions, newest first.
#[utoipa::path(get, path = "/v1/segments/{id}/versions", params(("id" = String, Path)), tag = "segments",
    responses((status = 200, body = Vec<SegmentVersionAnswer>), (status = 404, body = ErrorBody)))]
async fn segment_versions(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<SegmentVersionAnswer>>, ApiError> {
    let versions = state.app.segment_versions(&caller.0, &id).await?;
    Ok(Json(versions.into_iter().map(Into::into).collect()))
}

fn member_id(text: &str) -> Result<MemberId, ApiError> {
    MemberId::parse(text).map_err(|_| ApiError::not_found("member"))
}

/// A member's latest word per channel.
#[utoipa::path(get, path = "/v1/members/{id}/consents", params(("id" = String, Path)), tag = "members",
    responses((status = 200, body = Vec<ConsentAnswer>), (status = 404, body = ErrorBody)))]
async fn member_consents(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<ConsentAnswer>>, ApiError> {
    let member = member_id(&id)?;
    let consents = state.app.consents(&caller.0, member).await?;
    Ok(Json(consents.into_iter().map(Into::into).collect()))
}

/// Records a member's word on promotions over one channel (`zns`, `sms`, `email`).
#[utoipa::path(put, path = "/v1/members/{id}/consents/{channel}", params(("id" = String, Path), ("channel" = String, Path)), tag = "members",
    request_body = ConsentRequest,
    responses((status = 200, body = ConsentAnswer), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn set_member_consent(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, channel)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<ConsentAnswer>, ApiError> {
    caller.require(Permission::RecordEvents)?;
    let member = member_id(&id)?;
    let channel = ConsentChannel::parse(&channel)
        .ok_or_else(|| ApiError::invalid("channel", "zns, sms or email"))?;
    let request: ConsentRequest = parse_json(body_json(&body)?)?;
    let source = request.source.unwrap_or_else(|| "api".to_owned());
    if source.is_empty()
        || source.len() > CONSENT_SOURCE_MAX
        || !source
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(ApiError::invalid(
            "source",
            format!("1 to {CONSENT_SOURCE_MAX} characters a-z, 0-9 and _"),
        ));
    }
    let consent = state
        .app
        .set_consent(&caller.0, member, channel, request.granted, &source)
        .await?;
    Ok(Json(consent.into()))
}
