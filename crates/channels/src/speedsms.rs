//! SpeedSMS brandname SMS: `POST /index.php/sms/send` with HTTP Basic `token:x`.
//!
//! SpeedSMS does not de-duplicate: the tracking id is not sent, and a resend is a second
//! message. It allows 60 requests a minute; past that a 429 becomes `rate_limited`.

use std::time::Duration;

use serde_json::{json, Value};

use crate::channel::{
    e164_from_provider, international_digits, Body, Channel, ChannelKind, Delivery, DeliveryStatus,
    FailureReason, Outgoing, SendFailure, SendFuture, Sent,
};
use crate::{http, sms};

pub const SEND_PATH: &str = "/index.php/sms/send";

/// SpeedSMS's `sms_type` for a registered brandname.
pub const SMS_TYPE_BRANDNAME: u8 = 3;

#[derive(Clone)]
pub struct SpeedSmsConfig {
    pub access_token: String,
    /// The registered brandname.
    pub sender: String,
    /// 2 to 5; default [`SMS_TYPE_BRANDNAME`].
    pub sms_type: u8,
    /// Default `https://api.speedsms.vn`.
    pub base_url: String,
    pub timeout: Duration,
}

impl SpeedSmsConfig {
    pub fn new(access_token: impl Into<String>, sender: impl Into<String>) -> Self {
        SpeedSmsConfig {
            access_token: access_token.into(),
            sender: sender.into(),
            sms_type: SMS_TYPE_BRANDNAME,
            base_url: "https://api.speedsms.vn".to_owned(),
            timeout: http::TIMEOUT_DEFAULT,
        }
    }
}

impl std::fmt::Debug for SpeedSmsConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SpeedSmsConfig")
            .field("access_token", &"<hidden>")
            .field("sender", &self.sender)
            .field("sms_type", &self.sms_type)
            .field("base_url", &self.base_url)
            .field("timeout", &self.timeout)
            .finish()
    }
}

pub struct SpeedSmsChannel {
    config: SpeedSmsConfig,
    client: reqwest::Client,
}

impl SpeedSmsChannel {
    pub fn new(config: SpeedSmsConfig) -> Self {
        let client = http::client(config.timeout);
        SpeedSmsChannel { config, client }
    }

    async fn send_text(&self, message: &Outgoing) -> Result<Sent, SendFailure> {
        let Body::Text(text) = &message.body else {
            return Err(SendFailure::unsendable("SpeedSMS sends Body::Text only"));
        };
        let phone = international_digits(&message.to)?;
        let content = if message.advertising {
            sms::advertising_text(text)
        } else {
            text.clone()
        };
        let payload = json!({
            "to": [phone],
            "content": content,
            "sms_type": self.config.sms_type,
            "sender": self.config.sender,
        });
        let request = self
            .client
            .post(format!("{}{SEND_PATH}", self.config.base_url))
            .basic_auth(&self.config.access_token, Some("x"))
            .json(&payload);
        let reply = http::exchange(request).await?;
        parse_send_reply(&reply.body, sms::parts(&content))
            .unwrap_or_else(|| Err(http::unexpected_reply(&reply)))
    }
}

impl Channel for SpeedSmsChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Sms
    }

    fn send<'a>(&'a self, message: &'a Outgoing) -> SendFuture<'a> {
        Box::pin(self.send_text(message))
    }
}

/// Reads a send answer; `None` when it is not SpeedSMS's shape at all.
fn parse_send_reply(body: &Value, parts: u32) -> Option<Result<Sent, SendFailure>> {
    let code = http::text(body.get("code")?)?;
    if code != "00" {
        let message = body.get("message").and_then(http::text).unwrap_or_default();
        return Some(Err(failure(&code, &message)));
    }
    let data = body.get("data").unwrap_or(&Value::Null);
    let rejected_phones = data
        .get("invalidPhone")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if rejected_phones > 0 {
        return Some(Err(SendFailure::new(
            FailureReason::InvalidRecipient,
            false,
            code,
            "SpeedSMS listed the phone number as invalid",
        )));
    }
    let Some(transaction_id) = data.get("tranId").and_then(http::text) else {
        return Some(Err(SendFailure::new(
            FailureReason::Other,
            false,
            code,
            "SpeedSMS answered success without a tranId",
        )));
    };
    Some(Ok(Sent {
        provider_id: transaction_id,
        cost_vnd: data.get("totalPrice").and_then(http::integer),
        parts,
    }))
}

/// SpeedSMS's error codes: (code, reason, retryable, meaning).
pub const ERROR_CODES: &[(&str, FailureReason, bool, &str)] = &[
    (
        "007",
        FailureReason::Unauthorized,
        false,
        "IP address locked",
    ),
    ("008", FailureReason::Unauthorized, false, "account blocked"),
    (
        "009",
        FailureReason::Unauthorized,
        false,
        "account may not call the API",
    ),
    (
        "101",
        FailureReason::Other,
        false,
        "parameters missing or invalid",
    ),
    (
        "105",
        FailureReason::InvalidRecipient,
        false,
        "phone number invalid",
    ),
    (
        "110",
        FailureReason::ContentRefused,
        false,
        "content encoding not supported",
    ),
    (
        "113",
        FailureReason::Unauthorized,
        false,
        "sender name invalid or not registered",
    ),
    (
        "300",
        FailureReason::QuotaExceeded,
        false,
        "balance too low",
    ),
    (
        "500",
        FailureReason::ProviderUnavailable,
        true,
        "internal error",
    ),
];

/// The failure a SpeedSMS code stands for.
pub fn failure(code: &str, message: &str) -> SendFailure {
    let (reason, retryable, meaning) = ERROR_CODES
        .iter()
        .find(|(known, ..)| *known == code)
        .map_or(
            (FailureReason::Other, false, "unknown code"),
            |(_, reason, retryable, meaning)| (*reason, *retryable, *meaning),
        );
    SendFailure::new(reason, retryable, code, format!("{meaning}: {message}"))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    #[error("the callback body is malformed: {0}")]
    Malformed(String),
    #[error("the callback has no {0}")]
    Missing(&'static str),
}

/// Reads SpeedSMS's delivery callback, a JSON body `{type, tranId, phone, status}` where status
/// 0 means delivered. Other `type`s (incoming messages) are refused as not deliveries.
pub fn parse_callback(raw_body: &[u8]) -> Result<Delivery, CallbackError> {
    let body: Value = serde_json::from_slice(raw_body)
        .map_err(|error| CallbackError::Malformed(error.to_string()))?;
    let kind = body.get("type").and_then(http::text).unwrap_or_default();
    if kind != "report" {
        return Err(CallbackError::Malformed(format!(
            "type {kind:?} is not a report"
        )));
    }
    let provider_id = body
        .get("tranId")
        .and_then(http::text)
        .ok_or(CallbackError::Missing("tranId"))?;
    let status = body
        .get("status")
        .and_then(http::text)
        .ok_or(CallbackError::Missing("status"))?;
    Ok(Delivery {
        channel: ChannelKind::Sms,
        provider_id,
        tracking_id: None,
        recipient: body
            .get("phone")
            .and_then(http::text)
            .map(|phone| e164_from_provider(&phone)),
        status: if status == "0" {
            DeliveryStatus::Delivered
        } else {
            DeliveryStatus::Failed
        },
        provider_status: status,
        delivered_at: None,
        cost_vnd: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_code_has_its_reason() {
        let expectations = [
            ("105", "invalid_recipient", false),
            ("110", "content_refused", false),
            ("113", "unauthorized", false),
            ("300", "quota_exceeded", false),
            ("007", "unauthorized", false),
            ("500", "provider_unavailable", true),
            ("999", "other", false),
        ];
        for (code, reason, retryable) in expectations {
            let failure = failure(code, "x");
            assert_eq!(failure.reason.as_str(), reason, "code {code}");
            assert_eq!(failure.retryable, retryable, "code {code}");
        }
    }

    #[test]
    fn send_replies_give_the_transaction_and_its_price() {
        let body = json!({"status": "success", "code": "00",
            "data": {"tranId": 123456, "totalSMS": 1, "totalPrice": "650", "invalidPhone": []}});
        let sent = parse_send_reply(&body, 1).unwrap().unwrap();
        assert_eq!(sent.provider_id, "123456");
        assert_eq!(sent.cost_vnd, Some(650));

        let invalid = json!({"status": "success", "code": "00",
            "data": {"tranId": 1, "totalSMS": 0, "totalPrice": 0, "invalidPhone": ["8412"]}});
        let failure = parse_send_reply(&invalid, 1).unwrap().unwrap_err();
        assert_eq!(failure.reason, FailureReason::InvalidRecipient);

        let refused = json!({"status": "error", "code": "300", "message": "not enough"});
        let failure = parse_send_reply(&refused, 1).unwrap().unwrap_err();
        assert_eq!(failure.reason, FailureReason::QuotaExceeded);
    }

    #[test]
    fn callbacks_tell_delivered_from_failed() {
        let delivered = parse_callback(
            br#"{"type":"report","tranId":123456,"phone":"84901234567","status":0}"#,
        )
        .unwrap();
        assert_eq!(delivered.provider_id, "123456");
        assert_eq!(delivered.status, DeliveryStatus::Delivered);
        assert_eq!(delivered.recipient.as_deref(), Some("+84901234567"));
        let failed =
            parse_callback(br#"{"type":"report","tranId":"9","phone":"84901234567","status":"7"}"#)
                .unwrap();
        assert_eq!(failed.status, DeliveryStatus::Failed);
        assert!(parse_callback(br#"{"type":"mo","tranId":"9"}"#).is_err());
        assert_eq!(
            parse_callback(br#"{"type":"report","status":0}"#),
            Err(CallbackError::Missing("tranId"))
        );
    }
}
