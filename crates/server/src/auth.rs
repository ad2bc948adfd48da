//! Who is calling and what they may do. Integrations present an API key
//! (`Authorization: Bearer pk_…`); staff sign in and carry a session cookie, and every change
//! they make must also carry the session's CSRF token in `X-CSRF-Token`. Both become a
//! [`Grant`]: a tenant, a role, and who to name in the audit log. Key grants are cached briefly
//! so a busy till does not hash-and-query on every request.
//!
//! Staff sign-in ([`sign_in`], shared by the API and the web's login page) is throttled by
//! account and client address (`throttle.rs`). The client's address and whether it came over
//! HTTPS are read by [`ClientInfo`]: from the connection, and from `X-Forwarded-For` and
//! `X-Forwarded-Proto` only when the connection comes from a configured trusted proxy.

use crate::error::ApiError;
use crate::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use patron_core::TenantId;
use patron_store::admin::KeyGrant;
use patron_store::audit::Actor;
use patron_store::users::{NewSession, StaffSignIn, TenantChoice, User};
use patron_store::StoreError;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a key's grant is trusted without asking the database again.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(30);
/// Most keys remembered.
const KEY_CACHE_ENTRIES_MAX: usize = 10_000;
/// The staff session cookie.
pub const SESSION_COOKIE: &str = "patron_session";
/// The header that carries a session's CSRF token on changes.
pub const CSRF_HEADER: &str = "x-csrf-token";

#[derive(Default)]
pub struct KeyCache {
    entries: Mutex<HashMap<String, (Instant, KeyGrant)>>,
}

impl KeyCache {
    fn get(&self, secret: &str) -> Option<KeyGrant> {
        let entries = self.entries.lock().expect("key cache lock");
        let (at, grant) = entries.get(secret)?;
        (at.elapsed() < KEY_CACHE_TTL).then(|| grant.clone())
    }

    fn put(&self, secret: &str, grant: KeyGrant) {
        let mut entries = self.entries.lock().expect("key cache lock");
        if entries.len() >= KEY_CACHE_ENTRIES_MAX {
            entries.clear();
        }
        entries.insert(secret.to_owned(), (Instant::now(), grant));
    }

    /// Forgets a revoked key at once.
    pub fn forget(&self, key_id: &str) {
        let mut entries = self.entries.lock().expect("key cache lock");
        entries.retain(|_, (_, grant)| grant.key_id != key_id);
    }
}

pub use patron_app::{allows, Grant, Permission};

/// The caller, authenticated by API key or staff session.
pub struct Caller(pub Grant);

impl Caller {
    /// Refuses a caller without `permission`.
    pub fn require(&self, permission: Permission) -> Result<(), ApiError> {
        Ok(self.0.require(permission)?)
    }

    /// Refuses a caller who may only read.
    pub fn require_write(&self) -> Result<(), ApiError> {
        self.require(Permission::RecordEvents)
    }

    pub fn actor(&self) -> &Actor {
        &self.0.actor
    }
}

fn unauthorized() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "a valid API key or staff session is required",
        None,
    )
}

/// The `Set-Cookie` value that starts a staff session (HttpOnly, Secure, SameSite=Lax, for
/// the session's lifetime); with `None`, the one that clears it. `Secure` always, even over
/// plain HTTP: a session must never cross a café's Wi-Fi in clear, and browsers keep `Secure`
/// cookies over plain HTTP at `localhost` (the demo) anyway. Elsewhere the login page says why
/// signing in cannot work and what to open instead.
pub fn session_cookie(token: Option<&str>) -> String {
    let (value, max_age) = match token {
        Some(token) => (token, patron_store::users::SESSION_TTL.num_seconds()),
        None => ("", 0),
    };
    format!("{SESSION_COOKIE}={value}; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age={max_age}")
}

/// Whether a presented secret (a CSRF token) is the expected one, compared in constant time.
pub fn tokens_match(presented: &str, expected: &str) -> bool {
    crate::constant_time_eq(presented.as_bytes(), expected.as_bytes())
}

/// The value of cookie `name` in the request's headers.
pub fn cookie_value<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

async fn key_grant(state: &AppState, secret: &str) -> Result<Grant, ApiError> {
    let grant = match state.keys.get(secret) {
        Some(grant) => grant,
        None => {
            let grant = state
                .store
                .authenticate_key(secret)
                .await?
                .ok_or_else(unauthorized)?;
            state.keys.put(secret, grant.clone());
            grant
        }
    };
    Ok(Grant {
        tenant_id: grant.tenant_id,
        role: grant.scope.role(),
        actor: Actor::key(&grant.key_id),
        store_code: grant.store_code,
        bucket: grant.key_id,
    })
}

/// The grant of a staff session; changes must carry its CSRF token.
async fn session_grant(state: &AppState, parts: &Parts, token: &str) -> Result<Grant, ApiError> {
    let session = state.store.session(token).await?.ok_or_else(unauthorized)?;
    let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    let presented = parts
        .headers
        .get(CSRF_HEADER)
        .and_then(|value| value.to_str().ok());
    if !safe && !presented.is_some_and(|token| tokens_match(token, &session.csrf_token)) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "csrf_token_invalid",
            "changes made with a session need its CSRF token in X-CSRF-Token",
            None,
        ));
    }
    let tenant_id = TenantId::parse(&session.user.tenant_id)
        .map_err(|_| ApiError::internal("a session's tenant id"))?;
    Ok(Grant {
        tenant_id,
        role: session.user.role,
        actor: Actor::user(&session.user.id),
        store_code: None,
        bucket: format!("user:{}", session.user.id),
    })
}

/// Who is at the other end of the connection: their address (for throttling) and whether the
/// page reached them over HTTPS (so a `Secure` cookie is kept).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientInfo {
    pub address: IpAddr,
    pub https: bool,
}

impl ClientInfo {
    /// Reads the client from the connection's peer and, only when that peer is one of
    /// `trusted_proxies`, from the proxy's `X-Forwarded-For` (the nearest address not itself a
    /// trusted proxy) and `X-Forwarded-Proto` (its last value). `tls`: this server serves
    /// HTTPS itself.
    pub fn from_parts(
        peer: Option<SocketAddr>,
        headers: &axum::http::HeaderMap,
        trusted_proxies: &[IpAddr],
        tls: bool,
    ) -> ClientInfo {
        let peer = peer
            .map(|peer| peer.ip())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let direct = ClientInfo {
            address: peer,
            https: tls,
        };
        if !trusted_proxies.contains(&peer) {
            return direct;
        }
        let header_values = |name: &str| -> Vec<String> {
            headers
                .get_all(name)
                .iter()
                .filter_map(|value| value.to_str().ok())
                .flat_map(|value| value.split(','))
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty())
                .collect()
        };
        let address = header_values("x-forwarded-for")
            .iter()
            .rev()
            .filter_map(|value| value.parse::<IpAddr>().ok())
            .find(|address| !trusted_proxies.contains(address))
            .unwrap_or(peer);
        let https = match header_values("x-forwarded-proto").last() {
            Some(scheme) => scheme.eq_ignore_ascii_case("https"),
            None => tls,
        };
        ClientInfo { address, https }
    }
}

impl FromRequestParts<AppState> for ClientInfo {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<ClientInfo, std::convert::Infallible> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<SocketAddr>>()
            .map(|info| info.0);
        Ok(ClientInfo::from_parts(
            peer,
            &parts.headers,
            &state.trusted_proxies,
            state.tls,
        ))
    }
}

/// The answer to a staff sign-in.
pub enum SignInAnswer {
    SignedIn(User, NewSession),
    /// Wrong e-mail or password.
    Refused,
    /// Right at several tenants: the person chooses one.
    ChooseTenant(Vec<TenantChoice>),
    /// Too many failures for this account or address: try again after this long.
    Throttled(Duration),
}

/// Signs a member of staff in, throttled by account and address (the API's `POST /v1/session`
/// and the web's login page both come here).
pub async fn sign_in(
    state: &AppState,
    client: ClientInfo,
    tenant_id: Option<TenantId>,
    email: &str,
    password: &str,
) -> Result<SignInAnswer, StoreError> {
    let attempt = match state.throttle.begin(email, client.address, Instant::now()) {
        Ok(attempt) => attempt,
        Err(wait) => {
            tracing::warn!(address = %client.address, "staff sign-in throttled");
            return Ok(SignInAnswer::Throttled(wait));
        }
    };
    let answer = state
        .store
        .sign_in_staff(tenant_id, email, password)
        .await?;
    attempt.finish(!matches!(answer, StaffSignIn::Refused), Instant::now());
    Ok(match answer {
        StaffSignIn::SignedIn(user, session) => SignInAnswer::SignedIn(user, session),
        StaffSignIn::Refused => SignInAnswer::Refused,
        StaffSignIn::ChooseTenant(choices) => SignInAnswer::ChooseTenant(choices),
    })
}

/// Whole seconds to send in `Retry-After` for a wait (at least 1).
pub fn retry_after_seconds(wait: Duration) -> u64 {
    (wait.as_millis().div_ceil(1000) as u64).max(1)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
        let bearer = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok());
        let grant = match (bearer, cookie_value(&parts.headers, SESSION_COOKIE)) {
            (Some(header), _) => {
                let secret = header
                    .strip_prefix("Bearer ")
                    .ok_or_else(unauthorized)?
                    .trim();
                key_grant(state, secret).await?
            }
            (None, Some(token)) => session_grant(state, parts, token).await?,
            (None, None) => return Err(unauthorized()),
        };
        tracing::Span::current().record("tenant_id", tracing::field::display(grant.tenant_id));
        if let Err(wait) = state.limiter.take(&grant.bucket, Instant::now()) {
            let mut error = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many requests for this API key; retry after the given seconds",
                None,
            );
            error.retry_after_seconds = Some(wait.as_secs().max(1));
            return Err(error);
        }
        Ok(Caller(grant))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_headers_count_only_from_a_trusted_proxy() {
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let stranger: SocketAddr = "203.0.113.9:5000".parse().unwrap();
        let mut headers = axum::http::HeaderMap::new();
        headers.insert("x-forwarded-proto", "https".parse().unwrap());
        headers.insert(
            "x-forwarded-for",
            "198.51.100.1, 192.0.2.7".parse().unwrap(),
        );
        let direct = ClientInfo::from_parts(Some(stranger), &headers, &[proxy], false);
        assert_eq!(
            direct.address,
            stranger.ip(),
            "an untrusted peer's header is ignored"
        );
        assert!(!direct.https);
        let behind = ClientInfo::from_parts(
            Some(SocketAddr::new(proxy, 4000)),
            &headers,
            &[proxy],
            false,
        );
        assert_eq!(
            behind.address,
            "192.0.2.7".parse::<IpAddr>().unwrap(),
            "the nearest address the proxy saw, not one the client wrote"
        );
        assert!(behind.https);
        let served_tls = ClientInfo::from_parts(Some(stranger), &headers, &[], true);
        assert!(served_tls.https);
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_seconds(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_seconds(Duration::from_secs(30)), 30);
    }
}
