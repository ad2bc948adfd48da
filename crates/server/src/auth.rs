//! API keys: `Authorization: Bearer pk_…`. Grants are cached briefly so a busy till does not
//! hash-and-query on every request.

use crate::error::ApiError;
use crate::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use patron_store::admin::{KeyGrant, KeyScope};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a key's grant is trusted without asking the database again.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(30);
/// Most keys remembered.
const KEY_CACHE_ENTRIES_MAX: usize = 10_000;

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
}

/// The caller, authenticated by API key.
pub struct Caller(pub KeyGrant);

impl Caller {
    /// Refuses a read-only key.
    pub fn require_write(&self) -> Result<(), ApiError> {
        if self.0.scope != KeyScope::Write {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this key may only read",
                None,
            ));
        }
        Ok(())
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
        let unauthorized = || {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid API key is required",
                None,
            )
        };
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .ok_or_else(unauthorized)?;
        let secret = header
            .strip_prefix("Bearer ")
            .ok_or_else(unauthorized)?
            .trim();
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
        if let Err(wait) = state.limiter.take(&grant.key_id, std::time::Instant::now()) {
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
