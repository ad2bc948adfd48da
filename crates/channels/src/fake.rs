//! Local fakes of every provider, for tests here and in other crates (feature `fake`).
//!
//! [`FakeProviders`] serves ZNS (send and token refresh), eSMS (both send endpoints) and
//! SpeedSMS on one `127.0.0.1` port, speaking the shapes of the provider notes; it records
//! every request, fails the next sends on command, holds Zalo's token rules (a refresh token
//! works once, access tokens expire on command), de-duplicates eSMS `RequestId`, and fires the
//! providers' delivery callbacks. [`FakeSmtp`] is a minimal SMTP server that keeps each
//! message's raw data.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::Utc;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::esms::{EsmsConfig, ADVERTISING_PATH, CARE_PATH};
use crate::speedsms::{SpeedSmsConfig, SEND_PATH};
use crate::zns::{self, ZnsConfig, ZnsTokens};
use crate::{http, sms};

/// The fake's Zalo application id.
pub const ZNS_APP_ID: &str = "fake-zalo-app";
/// The fake's Zalo application secret key (sent with token refreshes).
pub const ZNS_SECRET_KEY: &str = "fake-zalo-secret-key";
/// The fake's OA secret key (signs delivery webhooks).
pub const ZNS_OA_SECRET_KEY: &str = "fake-zalo-oa-secret";
/// What the fake SpeedSMS charges a segment, in đồng.
pub const SPEEDSMS_PRICE_VND_PER_PART: i64 = 650;

/// Zalo's answer to an access token it does not know, and to one that expired.
const ZNS_TOKEN_INVALID: i64 = -124;
const ZNS_TOKEN_EXPIRED: i64 = -220;
/// What the fake's OAuth endpoint answers a refresh token it will not take.
const ZNS_REFRESH_REFUSED: i64 = -14014;

/// Which provider a fake request was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FakeProvider {
    Zns,
    Esms,
    SpeedSms,
}

/// One send request the fake received, whatever it answered.
#[derive(Debug, Clone)]
pub struct Received {
    pub provider: FakeProvider,
    /// The endpoint's path (eSMS has two).
    pub path: String,
    /// The phone number as the adapter sent it ("84…").
    pub recipient: String,
    pub text: Option<String>,
    pub template_id: Option<String>,
    /// ZNS `tracking_id` or eSMS `RequestId`.
    pub tracking_id: Option<String>,
    /// ZNS access token, eSMS ApiKey, or SpeedSMS Basic user.
    pub credential: String,
    /// The id the fake gave back when it accepted the message.
    pub provider_id: Option<String>,
    /// The whole JSON body.
    pub body: Value,
}

/// How the fake fails a send it was told to fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FakeFailure {
    /// The provider's own error code in its usual answer (ZNS "-108", eSMS "146", SpeedSMS "300").
    Code(String),
    /// An HTTP status with an empty body, and `Retry-After` when given.
    Http {
        status: u16,
        retry_after: Option<String>,
    },
}

#[derive(Default)]
struct ProvidersState {
    received: Vec<Received>,
    failures: HashMap<FakeProvider, VecDeque<FakeFailure>>,
    /// Access tokens issued, and whether each has expired.
    zns_access_tokens: HashMap<String, bool>,
    zns_refresh_tokens_unused: HashSet<String>,
    zns_refresh_tokens_spent: HashSet<String>,
    zns_refresh_presented: Vec<String>,
    zns_refresh_reuses: usize,
    esms_request_ids: HashMap<String, String>,
    esms_duplicate_echoes_sms_id: bool,
    next_id: u64,
}

impl ProvidersState {
    fn next_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}{:06}", self.next_id)
    }

    fn take_failure(&mut self, provider: FakeProvider) -> Option<FakeFailure> {
        self.failures.get_mut(&provider)?.pop_front()
    }

    fn issue_zns_pair(&mut self) -> (String, String) {
        let access_token = self.next_id("zns-access-");
        let refresh_token = self.next_id("zns-refresh-");
        self.zns_access_tokens.insert(access_token.clone(), false);
        self.zns_refresh_tokens_unused.insert(refresh_token.clone());
        (access_token, refresh_token)
    }
}

type Shared<T> = Arc<Mutex<T>>;

fn lock<T>(shared: &Shared<T>) -> MutexGuard<'_, T> {
    // A test that panicked mid-request leaves the state as it was; keep serving.
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// ZNS, eSMS and SpeedSMS on one local port. Dropping it stops the server.
pub struct FakeProviders {
    base_url: String,
    state: Shared<ProvidersState>,
    client: reqwest::Client,
    server: JoinHandle<()>,
}

impl Drop for FakeProviders {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeProviders {
    /// Binds `127.0.0.1:0` and serves until dropped.
    pub async fn start() -> Self {
        let state: Shared<ProvidersState> = Arc::default();
        let router = Router::new()
            .route("/message/template", post(zns_send))
            .route("/v4/oa/access_token", post(zns_refresh))
            .route(CARE_PATH, post(esms_send))
            .route(ADVERTISING_PATH, post(esms_send))
            .route(SEND_PATH, post(speedsms_send))
            .with_state(state.clone());
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the fake providers bind a local port");
        let address = listener
            .local_addr()
            .expect("a bound listener has an address");
        let server = tokio::spawn(async move {
            // Serving ends only when the task is aborted.
            let _ = axum::serve(listener, router).await;
        });
        FakeProviders {
            base_url: format!("http://{address}"),
            state,
            client: http::client(Duration::from_secs(5)),
            server,
        }
    }

    /// `http://127.0.0.1:<port>`, the base URL of every provider here.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// A ZNS configuration pointed at this fake.
    pub fn zns_config(&self) -> ZnsConfig {
        let mut config = ZnsConfig::new(ZNS_APP_ID, ZNS_SECRET_KEY);
        config.api_base_url = self.base_url.clone();
        config.oauth_base_url = self.base_url.clone();
        config
    }

    /// An eSMS configuration pointed at this fake.
    pub fn esms_config(&self) -> EsmsConfig {
        let mut config = EsmsConfig::new("fake-api-key", "fake-secret-key", "PATRON");
        config.base_url = self.base_url.clone();
        config
    }

    /// A SpeedSMS configuration pointed at this fake.
    pub fn speedsms_config(&self) -> SpeedSmsConfig {
        let mut config = SpeedSmsConfig::new("fake-speedsms-token", "PATRON");
        config.base_url = self.base_url.clone();
        config
    }

    /// Every send request so far, in order of arrival.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.state).received.clone()
    }

    /// The send requests for one provider.
    pub fn received_by(&self, provider: FakeProvider) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|received| received.provider == provider)
            .collect()
    }

    /// Fails the provider's next `count` sends this way (after any failures queued before).
    pub fn fail_next(&self, provider: FakeProvider, count: usize, failure: FakeFailure) {
        let mut state = lock(&self.state);
        let queue = state.failures.entry(provider).or_default();
        queue.extend(std::iter::repeat_n(failure, count));
    }

    /// A fresh ZNS token pair the fake will honour, expiring after `lifetime` by the clock of
    /// the one who stores it (the fake itself expires access tokens only on command).
    pub fn zns_issue_tokens(&self, lifetime: chrono::Duration) -> ZnsTokens {
        let (access_token, refresh_token) = lock(&self.state).issue_zns_pair();
        ZnsTokens {
            access_token,
            refresh_token,
            expires_at: Utc::now() + lifetime,
        }
    }

    /// Every access token issued so far now answers "expired" (-220).
    pub fn zns_expire_access_tokens(&self) {
        for expired in lock(&self.state).zns_access_tokens.values_mut() {
            *expired = true;
        }
    }

    /// The refresh tokens presented to the token endpoint, in order.
    pub fn zns_refresh_requests(&self) -> Vec<String> {
        lock(&self.state).zns_refresh_presented.clone()
    }

    /// How many times a refresh token was presented again after it had been used.
    pub fn zns_refresh_reuses(&self) -> usize {
        lock(&self.state).zns_refresh_reuses
    }

    /// Whether a repeated eSMS `RequestId` (code 124) also carries the first message's SMSID.
    pub fn esms_duplicate_echoes_sms_id(&self, echoes: bool) {
        lock(&self.state).esms_duplicate_echoes_sms_id = echoes;
    }

    fn accepted(&self, provider: FakeProvider, provider_id: &str) -> Result<Received, String> {
        lock(&self.state)
            .received
            .iter()
            .find(|received| {
                received.provider == provider
                    && received.provider_id.as_deref() == Some(provider_id)
            })
            .cloned()
            .ok_or_else(|| format!("the fake accepted no {provider:?} message {provider_id:?}"))
    }

    /// POSTs a signed ZNS `user_received_message` webhook for an accepted message to `url`,
    /// as Zalo does; returns the receiver's HTTP status.
    pub async fn fire_zns_delivery(&self, url: &str, msg_id: &str) -> Result<u16, String> {
        let received = self.accepted(FakeProvider::Zns, msg_id)?;
        let now_ms = Utc::now().timestamp_millis().to_string();
        let body = json!({
            "app_id": ZNS_APP_ID,
            "sender": {"id": "fake-oa"},
            "recipient": {"id": received.recipient},
            "event_name": "user_received_message",
            "message": {
                "delivery_time": now_ms,
                "msg_id": msg_id,
                "tracking_id": received.tracking_id,
            },
            "timestamp": now_ms,
        })
        .to_string();
        let mac = zns::webhook_signature(ZNS_APP_ID, ZNS_OA_SECRET_KEY, body.as_bytes(), &now_ms);
        let request = self
            .client
            .post(url)
            .header("X-ZEvent-Signature", format!("mac={mac}"))
            .header("Content-Type", "application/json")
            .body(body);
        fire(request).await
    }

    /// GETs eSMS's delivery callback for an accepted message, with `SendStatus` as given
    /// ("5" sent, "4" rejected, …); returns the receiver's HTTP status.
    pub async fn fire_esms_callback(
        &self,
        url: &str,
        sms_id: &str,
        send_status: &str,
    ) -> Result<u16, String> {
        let received = self.accepted(FakeProvider::Esms, sms_id)?;
        let delivered = send_status == "5";
        let text = received.text.unwrap_or_default();
        let price = if delivered {
            i64::from(sms::parts(&text)) * SPEEDSMS_PRICE_VND_PER_PART
        } else {
            0
        };
        let query = [
            ("SMSID", sms_id.to_owned()),
            ("SendStatus", send_status.to_owned()),
            ("SendSuccess", u8::from(delivered).to_string()),
            ("SendFailed", u8::from(!delivered).to_string()),
            ("TotalPrice", price.to_string()),
            ("RequestId", received.tracking_id.unwrap_or_default()),
            ("phonenumber", received.recipient),
        ];
        fire(self.client.get(url).query(&query)).await
    }

    /// POSTs SpeedSMS's JSON delivery report for an accepted message (`status` 0 delivered);
    /// returns the receiver's HTTP status.
    pub async fn fire_speedsms_callback(
        &self,
        url: &str,
        transaction_id: &str,
        status: u8,
    ) -> Result<u16, String> {
        let received = self.accepted(FakeProvider::SpeedSms, transaction_id)?;
        let body = json!({
            "type": "report",
            "tranId": transaction_id.parse::<u64>().map_or(json!(transaction_id), |id| json!(id)),
            "phone": received.recipient,
            "status": status,
        });
        fire(self.client.post(url).json(&body)).await
    }
}

async fn fire(request: reqwest::RequestBuilder) -> Result<u16, String> {
    let response = request.send().await.map_err(|error| error.to_string())?;
    Ok(response.status().as_u16())
}

fn field(body: &Value, name: &str) -> Option<String> {
    body.get(name).and_then(http::text)
}

fn http_failure(status: u16, retry_after: Option<String>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = status.into_response();
    if let Some(value) = retry_after.and_then(|value| HeaderValue::from_str(&value).ok()) {
        response.headers_mut().insert("Retry-After", value);
    }
    response
}

fn plausible_vietnamese_phone(phone: &str) -> bool {
    let national = phone
        .strip_prefix("84")
        .or_else(|| phone.strip_prefix('0'))
        .unwrap_or("");
    national.len() == 9 && national.bytes().all(|byte| byte.is_ascii_digit())
}

fn record(state: &mut ProvidersState, received: Received) -> usize {
    state.received.push(received);
    state.received.len() - 1
}

async fn zns_send(
    State(state): State<Shared<ProvidersState>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut state = lock(&state);
    let access_token = headers
        .get("access_token")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let recipient = field(&body, "phone").unwrap_or_default();
    let index = record(
        &mut state,
        Received {
            provider: FakeProvider::Zns,
            path: "/message/template".to_owned(),
            recipient: recipient.clone(),
            text: None,
            template_id: field(&body, "template_id"),
            tracking_id: field(&body, "tracking_id"),
            credential: access_token.clone(),
            provider_id: None,
            body: body.clone(),
        },
    );
    let refuse = |code: i64, message: &str| Json(json!({"error": code, "message": message}));
    match state.take_failure(FakeProvider::Zns) {
        Some(FakeFailure::Code(code)) => {
            return refuse(code.parse().unwrap_or(-100), "injected failure").into_response();
        }
        Some(FakeFailure::Http {
            status,
            retry_after,
        }) => return http_failure(status, retry_after),
        None => {}
    }
    match state.zns_access_tokens.get(&access_token) {
        None => return refuse(ZNS_TOKEN_INVALID, "Access token is invalid").into_response(),
        Some(true) => return refuse(ZNS_TOKEN_EXPIRED, "Access token has expired").into_response(),
        Some(false) => {}
    }
    if !recipient.starts_with("84") || !plausible_vietnamese_phone(&recipient) {
        return refuse(-108, "Phone number is invalid").into_response();
    }
    if field(&body, "template_id").unwrap_or_default().is_empty() {
        return refuse(-109, "Template id is invalid").into_response();
    }
    let data_is_empty = body
        .get("template_data")
        .and_then(Value::as_object)
        .is_none_or(|data| data.is_empty());
    if data_is_empty {
        return refuse(-111, "Template data is empty").into_response();
    }
    let message_id = state.next_id("zns-msg-");
    state.received[index].provider_id = Some(message_id.clone());
    Json(json!({
        "error": 0,
        "message": "Success",
        "data": {
            "msg_id": message_id,
            "sent_time": Utc::now().timestamp_millis().to_string(),
            "sending_mode": "1",
            "quota": {"dailyQuota": "500", "remainingQuota": "499"},
        },
    }))
    .into_response()
}

async fn zns_refresh(
    State(state): State<Shared<ProvidersState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    // Long enough for concurrent senders to pile up behind the one refreshing.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut state = lock(&state);
    let refuse = |why: &str| {
        Json(
            json!({"error": ZNS_REFRESH_REFUSED, "error_name": "Invalid refresh token",
            "error_description": why}),
        )
        .into_response()
    };
    let secret_key = headers
        .get("secret_key")
        .and_then(|value| value.to_str().ok());
    if secret_key != Some(ZNS_SECRET_KEY) {
        return refuse("secret_key is wrong");
    }
    if form.get("app_id").map(String::as_str) != Some(ZNS_APP_ID)
        || form.get("grant_type").map(String::as_str) != Some("refresh_token")
    {
        return refuse("app_id or grant_type is wrong");
    }
    let presented = form.get("refresh_token").cloned().unwrap_or_default();
    state.zns_refresh_presented.push(presented.clone());
    if state.zns_refresh_tokens_spent.contains(&presented) {
        state.zns_refresh_reuses += 1;
        return refuse("refresh token was already used");
    }
    if !state.zns_refresh_tokens_unused.remove(&presented) {
        return refuse("refresh token is unknown");
    }
    state.zns_refresh_tokens_spent.insert(presented);
    let (access_token, refresh_token) = state.issue_zns_pair();
    Json(json!({
        "access_token": access_token,
        "refresh_token": refresh_token,
        "expires_in": "90000",
    }))
    .into_response()
}

async fn esms_send(
    State(state): State<Shared<ProvidersState>>,
    uri: axum::http::Uri,
    Json(body): Json<Value>,
) -> Response {
    let mut state = lock(&state);
    let advertising = uri.path() == ADVERTISING_PATH;
    let recipient = if advertising {
        body.pointer("/Phones/0").and_then(http::text)
    } else {
        field(&body, "Phone")
    }
    .unwrap_or_default();
    let request_id = field(&body, "RequestId");
    let index = record(
        &mut state,
        Received {
            provider: FakeProvider::Esms,
            path: uri.path().to_owned(),
            recipient: recipient.clone(),
            text: field(&body, "Content"),
            template_id: None,
            tracking_id: request_id.clone(),
            credential: field(&body, "ApiKey").unwrap_or_default(),
            provider_id: None,
            body: body.clone(),
        },
    );
    let refuse = |code: &str, message: &str| {
        Json(json!({"CodeResult": code, "ErrorMessage": message})).into_response()
    };
    match state.take_failure(FakeProvider::Esms) {
        Some(FakeFailure::Code(code)) => return refuse(&code, "injected failure"),
        Some(FakeFailure::Http {
            status,
            retry_after,
        }) => return http_failure(status, retry_after),
        None => {}
    }
    if field(&body, "ApiKey").unwrap_or_default().is_empty() {
        return refuse("101", "ApiKey or SecretKey is incorrect");
    }
    if !plausible_vietnamese_phone(&recipient) {
        return refuse("108", "Phone number is not in correct format");
    }
    if let Some(request_id) = request_id.as_ref().filter(|id| !id.is_empty()) {
        if let Some(first) = state.esms_request_ids.get(request_id).cloned() {
            let sms_id = if state.esms_duplicate_echoes_sms_id {
                first
            } else {
                String::new()
            };
            return Json(json!({"CodeResult": "124", "SMSID": sms_id,
                "ErrorMessage": "Duplicate RequestId"}))
            .into_response();
        }
    }
    let sms_id = state.next_id("esms-");
    if let Some(request_id) = request_id.filter(|id| !id.is_empty()) {
        state.esms_request_ids.insert(request_id, sms_id.clone());
    }
    state.received[index].provider_id = Some(sms_id.clone());
    Json(json!({"CodeResult": "100", "CountRegenerate": 0, "SMSID": sms_id})).into_response()
}

async fn speedsms_send(
    State(state): State<Shared<ProvidersState>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut state = lock(&state);
    let (user, password) = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Basic "))
        .and_then(decode_base64)
        .and_then(|pair| {
            let (user, password) = pair.split_once(':')?;
            Some((user.to_owned(), password.to_owned()))
        })
        .unwrap_or_default();
    let recipient = body
        .pointer("/to/0")
        .and_then(http::text)
        .unwrap_or_default();
    let text = field(&body, "content").unwrap_or_default();
    let index = record(
        &mut state,
        Received {
            provider: FakeProvider::SpeedSms,
            path: SEND_PATH.to_owned(),
            recipient: recipient.clone(),
            text: Some(text.clone()),
            template_id: None,
            tracking_id: None,
            credential: user.clone(),
            provider_id: None,
            body: body.clone(),
        },
    );
    if user.is_empty() || password != "x" {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let refuse = |code: &str, message: &str| {
        Json(json!({"status": "error", "code": code, "message": message})).into_response()
    };
    match state.take_failure(FakeProvider::SpeedSms) {
        Some(FakeFailure::Code(code)) => return refuse(&code, "injected failure"),
        Some(FakeFailure::Http {
            status,
            retry_after,
        }) => return http_failure(status, retry_after),
        None => {}
    }
    if !plausible_vietnamese_phone(&recipient) {
        return refuse("105", "phone number invalid");
    }
    let transaction_id = state.next_id("7");
    state.received[index].provider_id = Some(transaction_id.clone());
    let parts = sms::parts(&text);
    Json(json!({
        "status": "success",
        "code": "00",
        "data": {
            "tranId": transaction_id.parse::<u64>().unwrap_or_default(),
            "totalSMS": parts,
            "totalPrice": i64::from(parts) * SPEEDSMS_PRICE_VND_PER_PART,
            "invalidPhone": [],
        },
    }))
    .into_response()
}

/// Standard base64 (with or without padding) to text; enough for a Basic header.
fn decode_base64(encoded: &str) -> Option<String> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bytes = Vec::new();
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for symbol in encoded.trim().trim_end_matches('=').bytes() {
        let value = ALPHABET.iter().position(|&letter| letter == symbol)?;
        buffer = (buffer << 6) | u32::try_from(value).ok()?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            bytes.push(u8::try_from((buffer >> bits) & 0xff).ok()?);
        }
    }
    String::from_utf8(bytes).ok()
}

/// A message the fake SMTP server took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpMessage {
    pub mail_from: String,
    pub recipients: Vec<String>,
    /// The raw message (headers and body) as sent after DATA, dot-stuffing undone.
    pub data: String,
    /// The AUTH line, when the client authenticated.
    pub auth: Option<String>,
}

#[derive(Default)]
struct SmtpState {
    messages: Vec<SmtpMessage>,
    recipient_rejections: VecDeque<String>,
}

/// The most a fake SMTP connection reads before it gives up on the client.
const SMTP_BYTES_MAX: usize = 4 * 1024 * 1024;

/// A minimal SMTP server on `127.0.0.1`: EHLO/HELO, AUTH (any), MAIL FROM, RCPT TO, DATA,
/// RSET, NOOP, QUIT. No STARTTLS. Dropping it stops the server.
pub struct FakeSmtp {
    port: u16,
    state: Shared<SmtpState>,
    server: JoinHandle<()>,
}

impl Drop for FakeSmtp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeSmtp {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the fake SMTP server binds a local port");
        let port = listener
            .local_addr()
            .expect("a bound listener has an address")
            .port();
        let state: Shared<SmtpState> = Arc::default();
        let accepting = state.clone();
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = accepting.clone();
                tokio::spawn(async move {
                    // A client that goes away mid-session is no concern of the fake.
                    let _ = smtp_session(stream, state).await;
                });
            }
        });
        FakeSmtp {
            port,
            state,
            server,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every message taken, in order.
    pub fn messages(&self) -> Vec<SmtpMessage> {
        lock(&self.state).messages.clone()
    }

    /// Answers the next `count` RCPT TO commands with `reply` (say "550 5.1.1 no such user").
    pub fn reject_next_recipients(&self, count: usize, reply: &str) {
        let mut state = lock(&self.state);
        state
            .recipient_rejections
            .extend(std::iter::repeat_n(reply.to_owned(), count));
    }
}

async fn smtp_session(stream: TcpStream, state: Shared<SmtpState>) -> std::io::Result<()> {
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    let mut read_bytes = 0;
    let mut mail_from = String::new();
    let mut recipients = Vec::new();
    let mut auth = None;
    writer.write_all(b"220 fake-smtp ESMTP ready\r\n").await?;
    loop {
        let mut line = String::new();
        let read = reader.read_line(&mut line).await?;
        read_bytes += read;
        if read == 0 || read_bytes > SMTP_BYTES_MAX {
            return Ok(());
        }
        let command = line.trim_end_matches(['\r', '\n']);
        let verb = command
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let reply = match verb.as_str() {
            "EHLO" => "250-fake-smtp\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME".to_owned(),
            "HELO" => "250 fake-smtp".to_owned(),
            "AUTH" => {
                auth = Some(command.to_owned());
                "235 2.7.0 authenticated".to_owned()
            }
            "MAIL" => {
                mail_from = smtp_argument(command);
                recipients.clear();
                "250 2.1.0 ok".to_owned()
            }
            "RCPT" => match lock(&state).recipient_rejections.pop_front() {
                Some(rejection) => rejection,
                None => {
                    recipients.push(smtp_argument(command));
                    "250 2.1.5 ok".to_owned()
                }
            },
            "DATA" => {
                writer
                    .write_all(b"354 end data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let data = smtp_data(&mut reader, &mut read_bytes).await?;
                let mut state = lock(&state);
                state.messages.push(SmtpMessage {
                    mail_from: mail_from.clone(),
                    recipients: std::mem::take(&mut recipients),
                    data,
                    auth: auth.clone(),
                });
                format!("250 2.0.0 queued as fake-{}", state.messages.len())
            }
            "RSET" => {
                recipients.clear();
                "250 2.0.0 ok".to_owned()
            }
            "NOOP" => "250 2.0.0 ok".to_owned(),
            "QUIT" => {
                writer.write_all(b"221 2.0.0 bye\r\n").await?;
                return Ok(());
            }
            _ => "502 5.5.2 command not recognised".to_owned(),
        };
        writer.write_all(format!("{reply}\r\n").as_bytes()).await?;
    }
}

/// The address between the angle brackets of `MAIL FROM:<…>` or `RCPT TO:<…>`.
fn smtp_argument(command: &str) -> String {
    let start = command.find('<').map_or(0, |position| position + 1);
    let end = command.find('>').unwrap_or(command.len());
    command.get(start..end).unwrap_or_default().to_owned()
}

async fn smtp_data(
    reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    read_bytes: &mut usize,
) -> std::io::Result<String> {
    let mut data = String::new();
    loop {
        let mut line = String::new();
        let read = reader.read_line(&mut line).await?;
        *read_bytes += read;
        if read == 0 || *read_bytes > SMTP_BYTES_MAX {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == ".\r\n" || line == ".\n" {
            return Ok(data);
        }
        let unstuffed = line.strip_prefix('.').unwrap_or(&line);
        data.push_str(unstuffed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_decode() {
        // "token:x" and "Aladdin:open sesame" in base64.
        assert_eq!(decode_base64("dG9rZW46eA==").as_deref(), Some("token:x"));
        assert_eq!(
            decode_base64("QWxhZGRpbjpvcGVuIHNlc2FtZQ==").as_deref(),
            Some("Aladdin:open sesame")
        );
        assert_eq!(decode_base64("!!"), None);
    }

    #[test]
    fn smtp_arguments_are_read_between_brackets() {
        assert_eq!(smtp_argument("MAIL FROM:<a@b.vn> SIZE=10"), "a@b.vn");
        assert_eq!(smtp_argument("RCPT TO:<c@d.vn>"), "c@d.vn");
    }
}
