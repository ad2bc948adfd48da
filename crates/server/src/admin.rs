//! Administration: tenants (platform operator), API keys, staff users, staff sessions and the
//! audit log.

use crate::answers::*;
use crate::auth::{cookie_value, session_cookie, Caller, Permission, SignInAnswer, SESSION_COOKIE};
use crate::error::{body_json, parse_json, ApiError, ErrorBody};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use patron_core::TenantId;
use patron_store::admin::{KeyScope, NewTenant};
use patron_store::audit::{Actor, AUDIT_PAGE_MAX};
use patron_store::users::Role;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tenants, create_tenant))
        .routes(routes!(list_keys, create_key))
        .routes(routes!(revoke_key))
        .routes(routes!(list_users, create_user))
        .routes(routes!(update_user))
        .routes(routes!(current_session, sign_in, sign_out))
        .routes(routes!(audit_log))
}

/// The platform operator, who presents the configured platform token.
fn require_platform(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    match (&state.platform_token, presented) {
        (Some(token), Some(presented))
            if crate::constant_time_eq(token.as_bytes(), presented.trim().as_bytes()) =>
        {
            Ok(())
        }
        _ => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the platform token is required",
            None,
        )),
    }
}

#[derive(Serialize, ToSchema)]
struct TenantView {
    id: String,
    name: String,
    currency: String,
    time_zone: String,
}

/// Every tenant (platform operator only).
#[utoipa::path(get, path = "/v1/tenants", tag = "admin",
    responses((status = 200, body = Vec<TenantView>), (status = 401, body = ErrorBody)))]
async fn list_tenants(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Vec<TenantView>>, ApiError> {
    require_platform(&state, &headers)?;
    let mut tenants = Vec::new();
    for id in state.store.tenant_ids().await? {
        let settings = state.store.tenant(id).await?;
        tenants.push(TenantView {
            id: id.to_string(),
            name: settings.name.clone(),
            currency: settings.currency.clone(),
            time_zone: settings.zone.name().to_owned(),
        });
    }
    Ok(Json(tenants))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TenantRequest {
    name: String,
    /// ISO 4217; VND when absent.
    currency: Option<String>,
    /// IANA zone; Asia/Ho_Chi_Minh when absent.
    time_zone: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct CreatedTenant {
    tenant: TenantView,
    /// An admin key for the new tenant, shown once.
    api_key: String,
}

/// Creates a tenant with a first admin key (platform operator only).
#[utoipa::path(post, path = "/v1/tenants", tag = "admin", request_body = TenantRequest,
    responses((status = 201, body = CreatedTenant), (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn create_tenant(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<CreatedTenant>), ApiError> {
    require_platform(&state, &headers)?;
    let request: TenantRequest = parse_json(body_json(&body)?)?;
    let mut tenant = NewTenant::vietnamese(request.name);
    if let Some(currency) = request.currency {
        tenant.currency = currency;
    }
    if let Some(zone) = request.time_zone {
        tenant.time_zone = zone;
    }
    let id = state.store.create_tenant(&tenant).await?;
    let key = state
        .store
        .create_key(
            id,
            "first admin key",
            KeyScope::Admin,
            None,
            &Actor("platform".into()),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedTenant {
            tenant: TenantView {
                id: id.to_string(),
                name: tenant.name.trim().to_owned(),
                currency: tenant.currency,
                time_zone: tenant.time_zone,
            },
            api_key: key.secret,
        }),
    ))
}

/// The tenant's API keys (never their secrets).
#[utoipa::path(get, path = "/v1/api-keys", tag = "admin",
    responses((status = 200, body = Vec<ApiKeyAnswer>), (status = 403, body = ErrorBody)))]
async fn list_keys(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<ApiKeyAnswer>>, ApiError> {
    caller.require(Permission::Administer)?;
    Ok(Json(all(state.store.api_keys(caller.0.tenant_id).await?)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct KeyRequest {
    name: String,
    /// `read`, `write` or `admin`.
    scope: String,
    /// Limit the key to one store's sales (a till).
    store: Option<String>,
}

/// Creates an API key; its secret is in this answer only.
#[utoipa::path(post, path = "/v1/api-keys", tag = "admin", request_body = KeyRequest,
    responses((status = 201, body = CreatedKeyAnswer), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<(StatusCode, Json<CreatedKeyAnswer>), ApiError> {
    caller.require(Permission::Administer)?;
    let request: KeyRequest = parse_json(body_json(&body)?)?;
    let scope = KeyScope::parse(&request.scope)
        .ok_or_else(|| ApiError::invalid("scope", "must be read, write or admin"))?;
    let created = state
        .store
        .create_key(
            caller.0.tenant_id,
            &request.name,
            scope,
            request.store.as_deref(),
            caller.actor(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

/// Revokes an API key at once.
#[utoipa::path(delete, path = "/v1/api-keys/{id}", tag = "admin",
    params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn revoke_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.app.revoke_api_key(&caller.0, &id).await?;
    state.keys.forget(&id);
    Ok(StatusCode::NO_CONTENT)
}

/// The tenant's staff.
#[utoipa::path(get, path = "/v1/users", tag = "admin",
    responses((status = 200, body = Vec<UserAnswer>), (status = 403, body = ErrorBody)))]
async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<UserAnswer>>, ApiError> {
    caller.require(Permission::Administer)?;
    Ok(Json(all(state.store.users(caller.0.tenant_id).await?)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UserRequest {
    email: String,
    name: String,
    /// owner, manager, marketer, cashier or viewer.
    role: String,
    /// 10 to 256 characters.
    password: String,
}

fn parse_role(text: &str) -> Result<Role, ApiError> {
    Role::parse_staff(text).ok_or_else(|| {
        ApiError::invalid(
            "role",
            "must be owner, manager, marketer, cashier or viewer",
        )
    })
}

/// Adds a staff user.
#[utoipa::path(post, path = "/v1/users", tag = "admin", request_body = UserRequest,
    responses((status = 201, body = UserAnswer), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<(StatusCode, Json<UserAnswer>), ApiError> {
    caller.require(Permission::Administer)?;
    let request: UserRequest = parse_json(body_json(&body)?)?;
    let role = parse_role(&request.role)?;
    let user = state
        .store
        .create_user(
            caller.0.tenant_id,
            &request.email,
            &request.name,
            role,
            &request.password,
            caller.actor(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(user.into())))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UserUpdate {
    role: Option<String>,
    disabled: Option<bool>,
}

/// Changes a user's role or disables them; their sessions end.
#[utoipa::path(patch, path = "/v1/users/{id}", tag = "admin", request_body = UserUpdate,
    params(("id" = String, Path)),
    responses((status = 200, body = UserAnswer), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<UserAnswer>, ApiError> {
    caller.require(Permission::Administer)?;
    let request: UserUpdate = parse_json(body_json(&body)?)?;
    let role = request.role.as_deref().map(parse_role).transpose()?;
    let user = state
        .store
        .update_user(
            caller.0.tenant_id,
            &id,
            role,
            request.disabled,
            caller.actor(),
        )
        .await?;
    Ok(Json(user.into()))
}

#[derive(Serialize, ToSchema)]
struct SessionView {
    tenant_id: String,
    role: Role,
    actor: String,
}

/// Who the caller is (a session or a key).
#[utoipa::path(get, path = "/v1/session", tag = "admin",
    responses((status = 200, body = SessionView), (status = 401, body = ErrorBody)))]
async fn current_session(caller: Caller) -> Json<SessionView> {
    Json(SessionView {
        tenant_id: caller.0.tenant_id.to_string(),
        role: caller.0.role,
        actor: caller.0.actor.0.clone(),
    })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SignInRequest {
    email: String,
    password: String,
    /// Needed only when the e-mail and password open accounts at several tenants (the answer
    /// is then 422 `tenant_required`, listing them).
    tenant_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct SignedIn {
    user: UserAnswer,
    /// Send in `X-CSRF-Token` with every change made with this session.
    csrf_token: String,
}

/// Signs a staff user in: sets the session cookie (HttpOnly, Secure, SameSite=Lax). An e-mail
/// may be staff at several tenants, each account with its own password; when the password is
/// right at several, `tenant_id` must name one (422 `tenant_required` lists them). After
/// `ACCOUNT_FAILURES_FREE` (5) failures for an e-mail, or `ADDRESS_FAILURES_FREE` (20) from one
/// address, sign-ins are refused (429 `sign_in_throttled`, `Retry-After`) for a lock-out that
/// doubles with each further failure.
#[utoipa::path(post, path = "/v1/session", tag = "admin", request_body = SignInRequest,
    security(()),
    responses((status = 200, body = SignedIn), (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn sign_in(
    State(state): State<AppState>,
    client: crate::auth::ClientInfo,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: SignInRequest = parse_json(body_json(&body)?)?;
    let tenant_id = request
        .tenant_id
        .as_deref()
        .map(TenantId::parse)
        .transpose()
        .map_err(|_| ApiError::invalid("tenant_id", "not a tenant id"))?;
    let answer =
        crate::auth::sign_in(&state, client, tenant_id, &request.email, &request.password).await?;
    let (user, session) = match answer {
        SignInAnswer::SignedIn(user, session) => (user, session),
        SignInAnswer::Refused => {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "sign_in_failed",
                "wrong e-mail or password",
                None,
            ))
        }
        SignInAnswer::ChooseTenant(choices) => {
            let named: Vec<String> = choices
                .iter()
                .map(|choice| format!("{} ({})", choice.tenant_id, choice.name))
                .collect();
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "tenant_required",
                format!(
                    "this e-mail and password are staff at several tenants; name one in tenant_id: {}",
                    named.join(", ")
                ),
                Some("tenant_id"),
            ));
        }
        SignInAnswer::Throttled(wait) => {
            let mut error = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "sign_in_throttled",
                "too many failed sign-ins for this e-mail or from this address; retry after the given seconds",
                None,
            );
            error.retry_after_seconds = Some(crate::auth::retry_after_seconds(wait));
            return Err(error);
        }
    };
    let cookie = session_cookie(Some(&session.token));
    let mut response = Json(SignedIn {
        user: user.into(),
        csrf_token: session.csrf_token,
    })
    .into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        cookie.parse().map_err(ApiError::internal)?,
    );
    Ok(response)
}

/// Signs out: ends the session and clears the cookie.
#[utoipa::path(delete, path = "/v1/session", tag = "admin", security(()),
    responses((status = 204)))]
async fn sign_out(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(token) = cookie_value(&headers, SESSION_COOKIE) {
        state.store.sign_out(token).await?;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie(None).parse().map_err(ApiError::internal)?,
    );
    Ok(response)
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct AuditQuery {
    /// 1 to 200; 50 when absent.
    limit: Option<i64>,
    /// `next_before` of the previous page.
    before: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct AuditPage {
    entries: Vec<AuditEntryAnswer>,
    next_before: Option<String>,
}

/// The audit log, newest first: who changed what, when, before and after (owners only).
#[utoipa::path(get, path = "/v1/audit", tag = "admin", params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn audit_log(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<AuditPage>, ApiError> {
    caller.require(Permission::Administer)?;
    let Query(query) = query.map_err(|error| ApiError::invalid("query", error.body_text()))?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=AUDIT_PAGE_MAX).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("must be 1 to {AUDIT_PAGE_MAX}"),
        ));
    }
    let entries = state
        .store
        .audit_log(caller.0.tenant_id, limit, query.before.as_deref())
        .await?;
    let next_before = (entries.len() as i64 == limit)
        .then(|| entries.last().map(|entry| entry.id.clone()))
        .flatten();
    Ok(Json(AuditPage {
        entries: all(entries),
        next_before,
    }))
}
