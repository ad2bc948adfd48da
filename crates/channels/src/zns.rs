//! Zalo Notification Service (ZNS): template messages to a phone number's Zalo account.
//!
//! Sending takes an OA access token that lives about 25 hours; a new one comes from a refresh
//! token that works exactly once. The pair lives in the caller's [`TokenStore`]: the channel
//! refreshes a little before expiry, and once more when Zalo calls the token invalid or
//! expired (-124, -220), then resends that one message once. Refreshes go one at a time, so
//! concurrent sends never present the same refresh token twice.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::channel::{
    e164_from_provider, international_digits, Body, Channel, ChannelKind, Delivery, DeliveryStatus,
    FailureReason, Outgoing, SendFailure, SendFuture, Sent,
};
use crate::http;

/// Zalo's limit on `tracking_id`.
pub const TRACKING_ID_CHARS_MAX: usize = 48;

/// Where ZNS sends go and how the channel authenticates.
#[derive(Clone)]
pub struct ZnsConfig {
    pub app_id: String,
    /// The application's secret key, sent when refreshing tokens.
    pub secret_key: String,
    /// Default `https://business.openapi.zalo.me`.
    pub api_base_url: String,
    /// Default `https://oauth.zaloapp.com`.
    pub oauth_base_url: String,
    pub timeout: Duration,
    /// Refresh this long before the access token expires.
    pub refresh_margin: Duration,
}

impl ZnsConfig {
    pub fn new(app_id: impl Into<String>, secret_key: impl Into<String>) -> Self {
        ZnsConfig {
            app_id: app_id.into(),
            secret_key: secret_key.into(),
            api_base_url: "https://business.openapi.zalo.me".to_owned(),
            oauth_base_url: "https://oauth.zaloapp.com".to_owned(),
            timeout: http::TIMEOUT_DEFAULT,
            refresh_margin: Duration::from_secs(10 * 60),
        }
    }
}

impl std::fmt::Debug for ZnsConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ZnsConfig")
            .field("app_id", &self.app_id)
            .field("secret_key", &"<hidden>")
            .field("api_base_url", &self.api_base_url)
            .field("oauth_base_url", &self.oauth_base_url)
            .field("timeout", &self.timeout)
            .field("refresh_margin", &self.refresh_margin)
            .finish()
    }
}

/// An OA token pair. The refresh token works once: after a refresh only the new pair is good.
#[derive(Clone, PartialEq, Eq)]
pub struct ZnsTokens {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for ZnsTokens {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ZnsTokens")
            .field("access_token", &"<hidden>")
            .field("refresh_token", &"<hidden>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// The future a [`TokenStore`] method returns.
pub type TokenFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, TokenStoreError>> + Send + 'a>>;

/// Where the caller keeps the token pair (sealed, in its database). `save` must be durable
/// before it returns: the old refresh token is already spent.
pub trait TokenStore: Send + Sync {
    fn load(&self) -> TokenFuture<'_, ZnsTokens>;
    fn save<'a>(&'a self, tokens: &'a ZnsTokens) -> TokenFuture<'a, ()>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("token store: {0}")]
pub struct TokenStoreError(pub String);

/// A [`TokenStore`] in memory, for tests and for a single process that re-authorises on start.
#[derive(Debug)]
pub struct MemoryTokenStore {
    tokens: std::sync::Mutex<ZnsTokens>,
    saves: std::sync::atomic::AtomicUsize,
}

impl MemoryTokenStore {
    pub fn new(tokens: ZnsTokens) -> Self {
        MemoryTokenStore {
            tokens: std::sync::Mutex::new(tokens),
            saves: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// The pair held now.
    pub fn current(&self) -> ZnsTokens {
        self.lock().clone()
    }

    /// How many times a pair was saved.
    pub fn saves(&self) -> usize {
        self.saves.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ZnsTokens> {
        // A panic while holding this lock cannot leave a half-written pair: the value is
        // replaced whole, so a poisoned lock still holds a consistent pair.
        self.tokens
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl TokenStore for MemoryTokenStore {
    fn load(&self) -> TokenFuture<'_, ZnsTokens> {
        let tokens = self.current();
        Box::pin(async move { Ok(tokens) })
    }

    fn save<'a>(&'a self, tokens: &'a ZnsTokens) -> TokenFuture<'a, ()> {
        *self.lock() = tokens.clone();
        self.saves.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::pin(async { Ok(()) })
    }
}

/// Zalo's codes for an access token it no longer takes.
const TOKEN_REJECTED_CODES: [&str; 2] = ["-124", "-220"];

/// The ZNS channel. Share it (`Arc`) between tasks: the refresh lock only works within one
/// value.
pub struct ZnsChannel {
    config: ZnsConfig,
    client: reqwest::Client,
    tokens: Arc<dyn TokenStore>,
    refresh_lock: tokio::sync::Mutex<()>,
}

impl ZnsChannel {
    pub fn new(config: ZnsConfig, tokens: Arc<dyn TokenStore>) -> Self {
        let client = http::client(config.timeout);
        ZnsChannel {
            config,
            client,
            tokens,
            refresh_lock: tokio::sync::Mutex::new(()),
        }
    }

    async fn send_template(&self, message: &Outgoing) -> Result<Sent, SendFailure> {
        let Body::Template { template_id, data } = &message.body else {
            return Err(SendFailure::unsendable("ZNS sends Body::Template only"));
        };
        if message.tracking_id.is_empty()
            || message.tracking_id.chars().count() > TRACKING_ID_CHARS_MAX
        {
            return Err(SendFailure::unsendable(format!(
                "ZNS tracking_id must have 1 to {TRACKING_ID_CHARS_MAX} characters"
            )));
        }
        let payload = json!({
            "phone": international_digits(&message.to)?,
            "template_id": template_id,
            "template_data": data,
            "tracking_id": message.tracking_id,
        });
        let tokens = self.usable_tokens().await?;
        match self.post_template(&tokens.access_token, &payload).await {
            Err(failure) if TOKEN_REJECTED_CODES.contains(&failure.provider_code.as_str()) => {
                tracing::info!(code = %failure.provider_code, "ZNS refused the access token; refreshing");
                let tokens = self.refresh(Some(&tokens.access_token)).await?;
                self.post_template(&tokens.access_token, &payload).await
            }
            outcome => outcome,
        }
    }

    async fn post_template(
        &self,
        access_token: &str,
        payload: &Value,
    ) -> Result<Sent, SendFailure> {
        let url = format!("{}/message/template", self.config.api_base_url);
        let request = self
            .client
            .post(url)
            .header("access_token", access_token)
            .json(payload);
        let reply = http::exchange(request).await?;
        parse_send_reply(&reply.body).unwrap_or_else(|| Err(http::unexpected_reply(&reply)))
    }

    /// The stored pair, refreshed first when it expires within the margin.
    async fn usable_tokens(&self) -> Result<ZnsTokens, SendFailure> {
        let tokens = self.tokens.load().await.map_err(store_failure)?;
        if self.expires_soon(&tokens) {
            return self.refresh(None).await;
        }
        Ok(tokens)
    }

    fn expires_soon(&self, tokens: &ZnsTokens) -> bool {
        let margin = chrono::Duration::from_std(self.config.refresh_margin)
            .unwrap_or(chrono::Duration::zero());
        tokens.expires_at - margin <= Utc::now()
    }

    /// Refreshes the pair, one caller at a time. A caller that waited finds the pair already
    /// replaced and takes it, so a refresh token is presented at most once. `rejected` is the
    /// access token Zalo refused, when that is why we refresh.
    async fn refresh(&self, rejected: Option<&str>) -> Result<ZnsTokens, SendFailure> {
        let _one_at_a_time = self.refresh_lock.lock().await;
        let current = self.tokens.load().await.map_err(store_failure)?;
        let still_needed = match rejected {
            Some(rejected) => current.access_token == rejected,
            None => self.expires_soon(&current),
        };
        if !still_needed {
            return Ok(current);
        }
        let renewed = self.exchange_refresh_token(&current.refresh_token).await?;
        if let Err(error) = self.tokens.save(&renewed).await {
            // The old refresh token is spent; without the new pair the OA must be
            // re-authorised by hand. Say so loudly.
            tracing::error!(%error, "ZNS tokens were refreshed but could not be saved");
            return Err(store_failure(error));
        }
        tracing::info!(expires_at = %renewed.expires_at, "ZNS tokens refreshed");
        Ok(renewed)
    }

    async fn exchange_refresh_token(&self, refresh_token: &str) -> Result<ZnsTokens, SendFailure> {
        let url = format!("{}/v4/oa/access_token", self.config.oauth_base_url);
        let request = self
            .client
            .post(url)
            .header("secret_key", &self.config.secret_key)
            .form(&[
                ("refresh_token", refresh_token),
                ("app_id", self.config.app_id.as_str()),
                ("grant_type", "refresh_token"),
            ]);
        let reply = http::exchange(request).await?;
        parse_refresh_reply(&reply.body, Utc::now())
    }
}

impl Channel for ZnsChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Zns
    }

    fn send<'a>(&'a self, message: &'a Outgoing) -> SendFuture<'a> {
        Box::pin(self.send_template(message))
    }
}

fn store_failure(error: TokenStoreError) -> SendFailure {
    SendFailure::new(FailureReason::Unauthorized, false, "", error.to_string())
}

/// Reads a send answer; `None` when it is not ZNS's shape at all.
fn parse_send_reply(body: &Value) -> Option<Result<Sent, SendFailure>> {
    let code = http::integer(body.get("error")?)?;
    if code != 0 {
        let message = body.get("message").and_then(http::text).unwrap_or_default();
        return Some(Err(failure(code, &message)));
    }
    let Some(message_id) = body.pointer("/data/msg_id").and_then(http::text) else {
        return Some(Err(SendFailure::new(
            FailureReason::Other,
            false,
            "0",
            "ZNS answered success without a msg_id",
        )));
    };
    Some(Ok(Sent {
        provider_id: message_id,
        cost_vnd: None,
        parts: 1,
    }))
}

/// Reads a token answer: the new pair, or why there is none.
fn parse_refresh_reply(body: &Value, now: DateTime<Utc>) -> Result<ZnsTokens, SendFailure> {
    let access_token = body.get("access_token").and_then(http::text);
    let refresh_token = body.get("refresh_token").and_then(http::text);
    let expires_in_seconds = body.get("expires_in").and_then(http::integer);
    match (access_token, refresh_token, expires_in_seconds) {
        (Some(access_token), Some(refresh_token), Some(seconds)) if seconds > 0 => Ok(ZnsTokens {
            access_token,
            refresh_token,
            expires_at: now + chrono::Duration::seconds(seconds),
        }),
        _ => {
            let code = body.get("error").and_then(http::text).unwrap_or_default();
            let why = ["error_description", "error_name", "message"]
                .iter()
                .find_map(|field| body.get(*field).and_then(http::text))
                .unwrap_or_else(|| body.to_string());
            Err(SendFailure::new(
                FailureReason::Unauthorized,
                false,
                code,
                format!("ZNS token refresh refused: {why}"),
            ))
        }
    }
}

/// Zalo's error codes: (code, reason, retryable, meaning). Those marked unconfirmed in our
/// provider notes are mapped all the same; an unknown code is `other`.
pub const ERROR_CODES: &[(i64, FailureReason, bool, &str)] = &[
    (-100, FailureReason::Other, true, "unknown error"),
    (
        -101,
        FailureReason::Unauthorized,
        false,
        "application id invalid",
    ),
    (
        -102,
        FailureReason::Unauthorized,
        false,
        "application does not exist",
    ),
    (
        -103,
        FailureReason::Unauthorized,
        false,
        "application not activated",
    ),
    (
        -104,
        FailureReason::Unauthorized,
        false,
        "application secret key invalid",
    ),
    (
        -105,
        FailureReason::Unauthorized,
        false,
        "application not linked to the OA",
    ),
    (-106, FailureReason::Other, false, "method not supported"),
    (-107, FailureReason::Other, false, "message id invalid"),
    (
        -108,
        FailureReason::InvalidRecipient,
        false,
        "phone number invalid",
    ),
    (
        -109,
        FailureReason::TemplateInvalid,
        false,
        "template id invalid",
    ),
    (
        -110,
        FailureReason::RecipientRefused,
        false,
        "recipient's Zalo version cannot show ZNS",
    ),
    (
        -111,
        FailureReason::TemplateInvalid,
        false,
        "template data empty",
    ),
    (
        -114,
        FailureReason::RecipientRefused,
        false,
        "user inactive or rejected the message",
    ),
    (-115, FailureReason::QuotaExceeded, true, "out of quota"),
    (
        -117,
        FailureReason::TemplateInvalid,
        false,
        "no permission for this template",
    ),
    (
        -118,
        FailureReason::InvalidRecipient,
        false,
        "no Zalo account for this phone",
    ),
    (
        -124,
        FailureReason::Unauthorized,
        false,
        "access token invalid",
    ),
    (
        -131,
        FailureReason::TemplateInvalid,
        false,
        "template not approved",
    ),
    (
        -139,
        FailureReason::RecipientRefused,
        false,
        "user refused this kind of message",
    ),
    (
        -141,
        FailureReason::RecipientRefused,
        false,
        "user refused messages from this OA",
    ),
    (
        -144,
        FailureReason::QuotaExceeded,
        true,
        "OA daily quota used up",
    ),
    (
        -147,
        FailureReason::QuotaExceeded,
        true,
        "template daily quota used up",
    ),
    (
        -220,
        FailureReason::Unauthorized,
        false,
        "access token expired",
    ),
];

/// The failure a ZNS error code stands for.
pub fn failure(code: i64, message: &str) -> SendFailure {
    let (reason, retryable, meaning) = ERROR_CODES
        .iter()
        .find(|(known, ..)| *known == code)
        .map_or(
            (FailureReason::Other, false, "unknown code"),
            |(_, reason, retryable, meaning)| (*reason, *retryable, *meaning),
        );
    SendFailure::new(
        reason,
        retryable,
        code.to_string(),
        format!("{meaning}: {message}"),
    )
}

/// Why a delivery webhook was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("the signature does not match the body")]
    BadSignature,
    #[error("the webhook is for app {0:?}, not ours")]
    OtherApp(String),
    #[error("the webhook body is malformed: {0}")]
    Malformed(String),
    #[error("event {0:?} is not a delivery")]
    NotDelivery(String),
}

/// The `X-ZEvent-Signature` a webhook body should carry:
/// hex(sha256(app id + raw body + the body's `timestamp` + OA secret key)).
pub fn webhook_signature(
    app_id: &str,
    oa_secret_key: &str,
    raw_body: &[u8],
    timestamp: &str,
) -> String {
    let mut hasher = Sha256::new();
    hasher.update(app_id.as_bytes());
    hasher.update(raw_body);
    hasher.update(timestamp.as_bytes());
    hasher.update(oa_secret_key.as_bytes());
    hex::encode(hasher.finalize())
}

/// Checks a delivery webhook's signature and reads it. The header may be the bare hex mac or
/// `mac=<hex>`; the comparison takes the same time whatever the mismatch.
pub fn verify_delivery(
    app_id: &str,
    oa_secret_key: &str,
    header_signature: &str,
    raw_body: &[u8],
) -> Result<Delivery, WebhookError> {
    let body: Value = serde_json::from_slice(raw_body)
        .map_err(|error| WebhookError::Malformed(error.to_string()))?;
    let timestamp = body
        .get("timestamp")
        .and_then(http::text)
        .ok_or_else(|| WebhookError::Malformed("no timestamp".to_owned()))?;
    let expected = webhook_signature(app_id, oa_secret_key, raw_body, &timestamp);
    let given = header_signature.trim();
    let given = given.strip_prefix("mac=").unwrap_or(given).trim();
    if !same_hex(&expected, given) {
        return Err(WebhookError::BadSignature);
    }
    let body_app_id = body.get("app_id").and_then(http::text).unwrap_or_default();
    if body_app_id != app_id {
        return Err(WebhookError::OtherApp(body_app_id));
    }
    parse_delivery(&body)
}

fn same_hex(expected: &str, given: &str) -> bool {
    if expected.len() != given.len() {
        return false;
    }
    let difference = expected
        .bytes()
        .zip(given.bytes())
        .fold(0u8, |difference, (left, right)| {
            difference | (left ^ right.to_ascii_lowercase())
        });
    difference == 0
}

fn parse_delivery(body: &Value) -> Result<Delivery, WebhookError> {
    let event_name = body
        .get("event_name")
        .and_then(http::text)
        .unwrap_or_default();
    if event_name != "user_received_message" {
        return Err(WebhookError::NotDelivery(event_name));
    }
    let message = body
        .get("message")
        .ok_or_else(|| WebhookError::Malformed("no message".to_owned()))?;
    let provider_id = message
        .get("msg_id")
        .and_then(http::text)
        .ok_or_else(|| WebhookError::Malformed("no message.msg_id".to_owned()))?;
    let delivered_at = message
        .get("delivery_time")
        .and_then(http::integer)
        .and_then(|milliseconds| Utc.timestamp_millis_opt(milliseconds).single());
    Ok(Delivery {
        channel: ChannelKind::Zns,
        provider_id,
        tracking_id: message.get("tracking_id").and_then(http::text),
        recipient: body
            .pointer("/recipient/id")
            .and_then(http::text)
            .map(|phone| e164_from_provider(&phone)),
        status: DeliveryStatus::Delivered,
        provider_status: event_name,
        delivered_at,
        cost_vnd: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_code_has_its_reason() {
        let expectations = [
            (-108, "invalid_recipient", false),
            (-118, "invalid_recipient", false),
            (-109, "template_invalid", false),
            (-111, "template_invalid", false),
            (-117, "template_invalid", false),
            (-131, "template_invalid", false),
            (-114, "recipient_refused", false),
            (-139, "recipient_refused", false),
            (-141, "recipient_refused", false),
            (-115, "quota_exceeded", true),
            (-144, "quota_exceeded", true),
            (-147, "quota_exceeded", true),
            (-101, "unauthorized", false),
            (-124, "unauthorized", false),
            (-220, "unauthorized", false),
            (-100, "other", true),
            (-106, "other", false),
            (-999, "other", false),
        ];
        for (code, reason, retryable) in expectations {
            let failure = failure(code, "x");
            assert_eq!(failure.reason.as_str(), reason, "code {code}");
            assert_eq!(failure.retryable, retryable, "code {code}");
            assert_eq!(failure.provider_code, code.to_string());
        }
        for code in -105..=-101 {
            assert_eq!(super::failure(code, "").reason, FailureReason::Unauthorized);
        }
    }

    #[test]
    fn send_replies_are_read_with_numbers_as_strings() {
        let success = json!({"error": "0", "message": "Success",
            "data": {"msg_id": 987654321, "sent_time": "1700000000000"}});
        let sent = parse_send_reply(&success).unwrap().unwrap();
        assert_eq!(sent.provider_id, "987654321");
        assert_eq!(sent.parts, 1);

        let refused = json!({"error": "-108", "message": "Phone number is invalid"});
        let failure = parse_send_reply(&refused).unwrap().unwrap_err();
        assert_eq!(failure.reason, FailureReason::InvalidRecipient);
        assert_eq!(failure.provider_code, "-108");
        assert!(failure.detail.contains("Phone number is invalid"));

        assert!(parse_send_reply(&json!({"unexpected": true})).is_none());
        let no_id = parse_send_reply(&json!({"error": 0, "data": {}})).unwrap();
        assert_eq!(no_id.unwrap_err().reason, FailureReason::Other);
    }

    #[test]
    fn refresh_replies_give_a_pair_or_unauthorized() {
        let now = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        let pair = parse_refresh_reply(
            &json!({"access_token": "A2", "refresh_token": "R2", "expires_in": "90000"}),
            now,
        )
        .unwrap();
        assert_eq!(pair.access_token, "A2");
        assert_eq!(pair.refresh_token, "R2");
        assert_eq!(pair.expires_at, now + chrono::Duration::hours(25));

        let refused = parse_refresh_reply(
            &json!({"error": -14014, "error_description": "refresh token invalid"}),
            now,
        )
        .unwrap_err();
        assert_eq!(refused.reason, FailureReason::Unauthorized);
        assert_eq!(refused.provider_code, "-14014");
        assert!(!refused.retryable);
    }

    fn delivery_body(app_id: &str) -> String {
        json!({
            "app_id": app_id,
            "sender": {"id": "oa-1"},
            "recipient": {"id": "84901234567"},
            "event_name": "user_received_message",
            "message": {"delivery_time": "1700000000123", "msg_id": "m-1", "tracking_id": "t-1"},
            "timestamp": "1700000000200"
        })
        .to_string()
    }

    #[test]
    fn a_signed_delivery_is_read_and_a_forged_one_refused() {
        let body = delivery_body("app-1");
        let mac = webhook_signature("app-1", "secret", body.as_bytes(), "1700000000200");
        let delivery = verify_delivery("app-1", "secret", &mac, body.as_bytes()).unwrap();
        assert_eq!(delivery.provider_id, "m-1");
        assert_eq!(delivery.tracking_id.as_deref(), Some("t-1"));
        assert_eq!(delivery.recipient.as_deref(), Some("+84901234567"));
        assert_eq!(delivery.status, DeliveryStatus::Delivered);
        assert_eq!(
            delivery.delivered_at,
            Utc.timestamp_millis_opt(1_700_000_000_123).single()
        );
        let prefixed = format!("mac={}", mac.to_uppercase());
        assert!(verify_delivery("app-1", "secret", &prefixed, body.as_bytes()).is_ok());

        let wrong_secret = webhook_signature("app-1", "guess", body.as_bytes(), "1700000000200");
        assert_eq!(
            verify_delivery("app-1", "secret", &wrong_secret, body.as_bytes()),
            Err(WebhookError::BadSignature)
        );
        let altered = body.replace("m-1", "m-2");
        assert_eq!(
            verify_delivery("app-1", "secret", &mac, altered.as_bytes()),
            Err(WebhookError::BadSignature)
        );

        let other_app = delivery_body("app-2");
        let mac = webhook_signature("app-1", "secret", other_app.as_bytes(), "1700000000200");
        assert_eq!(
            verify_delivery("app-1", "secret", &mac, other_app.as_bytes()),
            Err(WebhookError::OtherApp("app-2".to_owned()))
        );
    }
}
