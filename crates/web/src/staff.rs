//! Staff sign-in for the web: the same sessions as the API (`patron_session` cookie, stored
//! hashed, 12 hours), and the same roles. Every form that changes something carries the
//! session's CSRF token in a hidden `csrf` field, checked by [`Staff::check_csrf`].

use crate::i18n::{Locale, Texts};
use crate::page::{self, local_path, render, render_with};
use askama::Template;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use patron_core::TenantId;
use patron_server::auth::{
    allows, cookie_value, retry_after_seconds, session_cookie, sign_in, ClientInfo, Permission,
    SignInAnswer, SESSION_COOKIE,
};
use patron_server::AppState;
use patron_store::users::{Role, TenantChoice, User};
use patron_store::TenantSettings;
use serde::Deserialize;
use std::sync::Arc;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/login", get(login_page).post(login))
        .route("/admin/logout", post(logout))
}

/// A signed-in member of staff, with what every admin page needs.
pub struct Staff {
    pub user: User,
    pub tenant_id: TenantId,
    pub tenant: Arc<TenantSettings>,
    pub csrf: String,
    pub t: Texts,
}

impl Staff {
    pub fn role(&self) -> Role {
        self.user.role
    }

    /// The message key of the role's name.
    pub fn role_key(&self) -> &'static str {
        match self.user.role {
            Role::Owner => "role.owner",
            Role::Manager => "role.manager",
            Role::Marketer => "role.marketer",
            Role::Cashier => "role.cashier",
            Role::Viewer => "role.viewer",
            Role::Integration => "role.integration",
        }
    }

    /// This member of staff as the app layer's caller: the tenant, the role, named as
    /// `user:<id>`, as the API names a session's user.
    pub fn grant(&self) -> patron_app::Grant {
        patron_app::Grant {
            tenant_id: self.tenant_id,
            role: self.user.role,
            actor: patron_store::audit::Actor::user(&self.user.id),
            store_code: None,
            bucket: format!("user:{}", self.user.id),
        }
    }

    pub fn may(&self, permission: Permission) -> bool {
        allows(self.user.role, permission)
    }

    /// A 403 page unless the role holds `permission`.
    pub fn require(&self, permission: Permission) -> Result<(), Response> {
        if self.may(permission) {
            Ok(())
        } else {
            Err(page::forbidden(self.t))
        }
    }

    /// A 403 page unless a form's `csrf` field is this session's token.
    pub fn check_csrf(&self, presented: &str) -> Result<(), Response> {
        if patron_server::auth::tokens_match(presented, &self.csrf) {
            Ok(())
        } else {
            Err(page::message(
                StatusCode::FORBIDDEN,
                self.t,
                "common.forbidden_title",
                "common.csrf_invalid",
            ))
        }
    }

    /// The navigation for this role: (path, message key), only what the role may open.
    pub fn nav(&self) -> Vec<(&'static str, &'static str)> {
        let mut nav = Vec::new();
        if self.may(Permission::Read) && self.role() != Role::Cashier {
            nav.push(("/admin", "nav.dashboard"));
            nav.push(("/admin/members", "nav.members"));
            nav.push(("/admin/segments", "nav.segments"));
        }
        if self.may(Permission::ManageProgramme) {
            nav.push(("/admin/programme", "nav.programme"));
        }
        if self.may(Permission::RecordEvents) {
            nav.push(("/cashier", "nav.cashier"));
        }
        if self.may(Permission::Administer) {
            nav.push(("/admin/staff", "nav.staff"));
            nav.push(("/admin/keys", "nav.keys"));
            nav.push(("/admin/webhooks", "nav.webhooks"));
            nav.push(("/admin/audit", "nav.audit"));
        }
        nav
    }

    /// Money in this tenant's currency, in the visitor's language.
    pub fn money(&self, minor: i64) -> String {
        crate::format::money(self.t.locale, minor, &self.tenant.currency)
    }

    pub fn points(&self, points: i64) -> String {
        crate::format::points(self.t.locale, points)
    }
}

fn to_login(parts: &Parts) -> Response {
    let next = parts
        .uri
        .path_and_query()
        .map(|value| value.as_str())
        .unwrap_or("/admin");
    let mut target = String::from("/admin/login?next=");
    for byte in next.bytes() {
        if byte.is_ascii_alphanumeric() || b"/-_.~".contains(&byte) {
            target.push(byte as char);
        } else {
            target.push_str(&format!("%{byte:02X}"));
        }
    }
    Redirect::to(&target).into_response()
}

impl FromRequestParts<AppState> for Staff {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Staff, Response> {
        let t = Locale::from_headers(&parts.headers).texts();
        let Some(token) = cookie_value(&parts.headers, SESSION_COOKIE) else {
            return Err(to_login(parts));
        };
        let session = match state.store.session(token).await {
            Ok(Some(session)) => session,
            Ok(None) => return Err(to_login(parts)),
            Err(error) => return Err(page::failed(t, error)),
        };
        let tenant_id = TenantId::parse(&session.user.tenant_id)
            .map_err(|_| page::failed(t, "a session's tenant id"))?;
        let tenant = state
            .store
            .tenant(tenant_id)
            .await
            .map_err(|error| page::failed(t, error))?;
        Ok(Staff {
            user: session.user,
            tenant_id,
            tenant,
            csrf: session.csrf_token,
            t,
        })
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    t: Texts,
    next: String,
    email: String,
    error: Option<String>,
    /// Why a sign-in cannot be kept on this connection, when it cannot.
    insecure: Option<String>,
    /// The tenants to choose from, when the password is right at several.
    choices: Vec<TenantChoice>,
}

#[derive(Deserialize)]
struct LoginQuery {
    next: Option<String>,
}

/// The warning shown when the session cookie (`Secure`, so a session is never sent in clear
/// over the café's Wi-Fi) will not be kept: plain HTTP at a network address. It names the
/// configured address when that is HTTPS.
fn insecure_warning(
    t: Texts,
    state: &AppState,
    client: ClientInfo,
    headers: &HeaderMap,
) -> Option<String> {
    if !page::secure_cookies_dropped(client.https, headers) {
        return None;
    }
    let mut warning = t.get("login.insecure").to_owned();
    if state.public_url.starts_with("https://") {
        warning.push(' ');
        warning.push_str(&t.fill(
            "login.insecure_address",
            &[("address", &format!("{}/admin/login", state.public_url))],
        ));
    }
    Some(warning)
}

async fn login_page(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    Query(query): Query<LoginQuery>,
) -> Response {
    let t = Locale::from_headers(&headers).texts();
    render(&LoginPage {
        t,
        next: query.next.unwrap_or_default(),
        email: String::new(),
        error: None,
        insecure: insecure_warning(t, &state, client, &headers),
        choices: Vec::new(),
    })
}

#[derive(Deserialize)]
struct LoginForm {
    email: String,
    password: String,
    #[serde(default)]
    next: String,
    /// The tenant chosen when the password is right at several.
    #[serde(default)]
    tenant: String,
}

/// Where a role lands after signing in.
fn home_of(role: Role) -> &'static str {
    match role {
        Role::Cashier => "/cashier",
        _ => "/admin",
    }
}

async fn login(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let t = Locale::from_headers(&headers).texts();
    let again = |error: String, choices: Vec<TenantChoice>| LoginPage {
        t,
        next: form.next.clone(),
        email: form.email.clone(),
        error: Some(error),
        insecure: insecure_warning(t, &state, client, &headers),
        choices,
    };
    if form.email.trim().is_empty() || form.password.is_empty() {
        let page = again(t.get("login.missing").to_owned(), Vec::new());
        return render_with(StatusCode::UNPROCESSABLE_ENTITY, &page);
    }
    let tenant = TenantId::parse(form.tenant.trim()).ok();
    let answer = sign_in(&state, client, tenant, &form.email, &form.password).await;
    let (user, session) = match answer {
        Ok(SignInAnswer::SignedIn(user, session)) => (user, session),
        Ok(SignInAnswer::Refused) => {
            let page = again(t.get("login.wrong").to_owned(), Vec::new());
            return render_with(StatusCode::UNAUTHORIZED, &page);
        }
        Ok(SignInAnswer::ChooseTenant(choices)) => {
            return render(&again(t.get("login.choose_tenant").to_owned(), choices));
        }
        Ok(SignInAnswer::Throttled(wait)) => {
            let seconds = retry_after_seconds(wait);
            let message = t.fill("login.throttled", &[("seconds", &seconds.to_string())]);
            let mut response =
                render_with(StatusCode::TOO_MANY_REQUESTS, &again(message, Vec::new()));
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, seconds.into());
            return response;
        }
        Err(error) => return page::failed(t, error),
    };
    let target = local_path(&form.next)
        .filter(|path| path.starts_with("/admin") || path.starts_with("/cashier"))
        .filter(|path| !path.starts_with("/admin/login"))
        .unwrap_or(home_of(user.role));
    let cookie = session_cookie(Some(&session.token));
    ([(header::SET_COOKIE, cookie)], Redirect::to(target)).into_response()
}

#[derive(Deserialize)]
struct LogoutForm {
    csrf: String,
}

async fn logout(
    State(state): State<AppState>,
    staff: Staff,
    headers: HeaderMap,
    Form(form): Form<LogoutForm>,
) -> Response {
    if let Err(refused) = staff.check_csrf(&form.csrf) {
        return refused;
    }
    if let Some(token) = cookie_value(&headers, SESSION_COOKIE) {
        if let Err(error) = state.store.sign_out(token).await {
            return page::failed(staff.t, error);
        }
    }
    let cookie = session_cookie(None);
    ([(header::SET_COOKIE, cookie)], Redirect::to("/admin/login")).into_response()
}
