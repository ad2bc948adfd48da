//! The programme: published versions, the draft, publishing, and the dry run ("what would this
//! purchase earn, and why").

use crate::answers::*;

use crate::auth::{Caller, Permission};
use crate::error::{body_json, parse_instant, parse_json, ApiError, ErrorBody};
use crate::events::{body_hash, parse_event, EventRequest};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use patron_core::engine::Judge;
use patron_core::member::MemberState;
use patron_core::programme::{Programme, ProgrammeDefinition};
use patron_core::{EventId, MemberId, TenantId};
use patron_store::programmes::validate;
use patron_store::{IncomingKind, StoreError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

// The rules' cost bound assumes no list they read is longer than this.
const _: () = assert!(crate::events::ITEMS_MAX as u64 <= patron_core::rules::INPUT_LIST_LENGTH_MAX);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_versions, publish_version))
        .routes(routes!(get_draft, save_draft))
        .routes(routes!(publish_draft))
        .routes(routes!(dry_run))
}

/// Parses a definition, naming fields under `definition.`.
fn parse_definition(value: serde_json::Value) -> Result<ProgrammeDefinition, ApiError> {
    parse_json(value).map_err(|mut error| {
        error.body.field = Some(format!(
            "definition.{}",
            error.body.field.unwrap_or_default()
        ));
        error
    })
}

/// Every published version, oldest first.
#[utoipa::path(get, path = "/v1/programme/versions", tag = "programme",
    responses((status = 200, body = Vec<VersionAnswer>)))]
async fn list_versions(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<VersionAnswer>>, ApiError> {
    caller.require(Permission::Read)?;
    Ok(Json(all(state
        .store
        .programme_versions(caller.0.tenant_id)
        .await?)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PublishRequest {
    /// The programme (rules, tiers, expiry); see the README for the format.
    #[schema(value_type = Object)]
    definition: serde_json::Value,
    /// RFC 3339; now when absent. Events are judged by the version in force when they occurred.
    effective_from: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct Published {
    version: i64,
}

/// Publishes a definition as a new version.
#[utoipa::path(post, path = "/v1/programme/versions", tag = "programme",
    request_body = PublishRequest,
    responses((status = 201, body = Published), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn publish_version(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<(StatusCode, Json<Published>), ApiError> {
    caller.require(Permission::ManageProgramme)?;
    let request: PublishRequest = parse_json(body_json(&body)?)?;
    let definition = parse_definition(request.definition)?;
    let effective_from =
        parse_instant(request.effective_from, "effective_from")?.unwrap_or_else(chrono::Utc::now);
    let version = state
        .store
        .publish_version(
            caller.0.tenant_id,
            definition,
            effective_from,
            caller.actor(),
            false,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(Published { version })))
}

/// The draft being edited.
#[utoipa::path(get, path = "/v1/programme/draft", tag = "programme",
    responses((status = 200, body = DraftAnswer), (status = 404, body = ErrorBody)))]
async fn get_draft(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<DraftAnswer>, ApiError> {
    caller.require(Permission::ManageProgramme)?;
    state
        .store
        .draft(caller.0.tenant_id)
        .await?
        .map(|draft| Json(draft.into()))
        .ok_or_else(|| ApiError::not_found("draft"))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct DraftRequest {
    #[schema(value_type = Object)]
    definition: serde_json::Value,
}

/// Saves the draft; it must be a valid programme (errors name the field).
#[utoipa::path(put, path = "/v1/programme/draft", tag = "programme", request_body = DraftRequest,
    responses((status = 200, body = DraftAnswer), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn save_draft(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<Json<DraftAnswer>, ApiError> {
    caller.require(Permission::ManageProgramme)?;
    let request: DraftRequest = parse_json(body_json(&body)?)?;
    let definition = parse_definition(request.definition)?;
    Ok(Json(
        state
            .store
            .save_draft(caller.0.tenant_id, &definition, caller.actor())
            .await?
            .into(),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PublishDraftRequest {
    effective_from: Option<String>,
}

/// Publishes the draft as a new version and discards it.
#[utoipa::path(post, path = "/v1/programme/draft/publish", tag = "programme",
    request_body = PublishDraftRequest,
    responses((status = 201, body = Published), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn publish_draft(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<(StatusCode, Json<Published>), ApiError> {
    caller.require(Permission::ManageProgramme)?;
    let request: PublishDraftRequest = parse_json(body_json(&body)?)?;
    let effective_from =
        parse_instant(request.effective_from, "effective_from")?.unwrap_or_else(chrono::Utc::now);
    let draft = state
        .store
        .draft(caller.0.tenant_id)
        .await?
        .ok_or_else(|| ApiError::not_found("draft"))?;
    let version = state
        .store
        .publish_version(
            caller.0.tenant_id,
            draft.definition,
            effective_from,
            caller.actor(),
            true,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(Published { version })))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct DryRunRequest {
    /// `draft`, `current`, or `given` (then `definition` is required). `draft` when a draft
    /// exists, else `current`, when absent.
    programme: Option<String>,
    #[schema(value_type = Option<Object>)]
    definition: Option<serde_json::Value>,
    /// A purchase as sent to `/v1/events`, without `id` and `type`; its member, if known,
    /// is judged as they stand now, else as a new member.
    #[schema(value_type = Object)]
    purchase: serde_json::Value,
}

/// What a purchase would earn, and why: the dry run's answer.
#[derive(Serialize, ToSchema)]
pub struct DryRun {
    /// Which programme judged it: `draft`, `current` or `given`.
    pub programme: String,
    pub points_earned: i64,
    /// One line per rule that gave points, and caps: the "because".
    #[schema(value_type = Vec<Object>)]
    pub lines: Vec<patron_core::engine::EarnLine>,
    pub tier_before: String,
    pub tier_change: Option<TierChangeAnswer>,
    /// Whether the member exists (else judged as a new member).
    pub known_member: bool,
}

/// What a purchase would earn and why, under the draft, the current or a given programme.
/// Nothing is recorded. Needs the programme permission (it runs the caller's rules); a given
/// definition is checked against the same rule limits as publishing.
#[utoipa::path(post, path = "/v1/programme/dry-run", tag = "programme", request_body = DryRunRequest,
    responses((status = 200, body = DryRun), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn dry_run(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<Json<DryRun>, ApiError> {
    caller.require(Permission::ManageProgramme)?;
    let request: DryRunRequest = parse_json(body_json(&body)?)?;
    let tenant_id = caller.0.tenant_id;
    let settings = state.store.tenant(tenant_id).await?;
    let now = chrono::Utc::now();
    let draft = state.store.draft(tenant_id).await?;
    let which = request
        .programme
        .clone()
        .unwrap_or_else(|| if draft.is_some() { "draft" } else { "current" }.to_owned());
    let programme: std::sync::Arc<Programme> = match which.as_str() {
        "draft" => {
            let draft = draft.ok_or_else(|| ApiError::not_found("draft"))?;
            std::sync::Arc::new(validate(&draft.definition)?)
        }
        "current" => settings
            .programme_at(now)
            .cloned()
            .ok_or_else(|| ApiError::not_found("programme"))?,
        "given" => {
            let value = request
                .definition
                .ok_or_else(|| ApiError::invalid("definition", "required with `given`"))?;
            std::sync::Arc::new(validate(&parse_definition(value)?)?)
        }
        _ => {
            return Err(ApiError::invalid(
                "programme",
                "must be draft, current or given",
            ))
        }
    };
    dry_run_purchase(&state, tenant_id, programme, &which, request.purchase, None)
        .await
        .map(Json)
}

/// Judges `purchase` (a purchase as sent to `/v1/events`, without `id` and `type`) under
/// `programme`, named `which` in the answer, and records nothing. Its member, if known, is
/// judged as they stand now; else as a new member of `new_member_tier` (the lowest tier when
/// `None`). The web's programme preview calls this too. The rules run on a blocking thread,
/// off the async runtime's workers and off the journal's writer, so a costly rule delays only
/// this answer.
pub async fn dry_run_purchase(
    state: &AppState,
    tenant_id: TenantId,
    programme: std::sync::Arc<Programme>,
    which: &str,
    mut purchase: serde_json::Value,
    new_member_tier: Option<&str>,
) -> Result<DryRun, ApiError> {
    let settings = state.store.tenant(tenant_id).await?;
    let now = chrono::Utc::now();
    let Some(object) = purchase.as_object_mut() else {
        return Err(ApiError::invalid("purchase", "must be a JSON object"));
    };
    object.insert("id".into(), "dry-run".into());
    object.insert("type".into(), "purchase".into());
    let hash = body_hash(&purchase);
    let event_request: EventRequest = parse_json(purchase).map_err(|mut error| {
        error.body.field = Some(format!("purchase.{}", error.body.field.unwrap_or_default()));
        error
    })?;
    let event = parse_event(tenant_id, event_request, hash, now)?;
    let IncomingKind::Purchase {
        member, purchase, ..
    } = event.kind
    else {
        unreachable!("a purchase parses as a purchase");
    };
    let (mut member_state, known_member) = match state.store.member_state(tenant_id, &member).await
    {
        Ok(member_state) => (member_state, true),
        Err(StoreError::NotFound { .. }) => (
            MemberState::new(
                MemberId::new(),
                Default::default(),
                new_member_tier.unwrap_or(programme.base_tier_code()),
                now,
            ),
            false,
        ),
        Err(error) => return Err(error.into()),
    };
    let tier_before = member_state.tier.clone();
    let zone = settings.zone;
    let occurred_at = event.occurred_at;
    let judged = tokio::task::spawn_blocking(move || {
        let judge = Judge::new(&programme, zone);
        let event_id = EventId::parse("dry-run").expect("a valid id");
        judge
            .purchase(&mut member_state, &event_id, &purchase, occurred_at)
            .map(|(outcome, _)| outcome)
    })
    .await
    .map_err(|error| ApiError::internal(format!("dry run: {error}")))?;
    let outcome = judged
        .map_err(|rejection| ApiError::from(patron_store::EventError::Rejected(rejection)))?;
    Ok(DryRun {
        programme: which.to_owned(),
        points_earned: outcome.points_earned.0,
        lines: outcome.lines,
        tier_before,
        tier_change: outcome.tier_change.map(|change| TierChangeAnswer {
            from: change.from,
            to: change.to,
            reason: change.reason.as_str().to_owned(),
        }),
        known_member,
    })
}
