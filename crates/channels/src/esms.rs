//! eSMS.vn brandname SMS: customer care and OTP through `SendMultipleMessage_V4_post_json`
//! (SmsType "2"), advertising through `SendMultipleSMSBrandname_json` (SmsType "1").
//!
//! eSMS de-duplicates on `RequestId` for 24 hours; we send the tracking id there. A repeat is
//! answered with code 124, which this adapter takes as "already sent": `Ok` with the SMSID
//! when eSMS gives one, else a `duplicate` failure that is not retryable (the first copy went
//! out; sending again cannot help). eSMS accepts advertising only in campaigns of at least 30
//! numbers (code 107); a single advertising message is still sent, and that refusal reported.

use std::time::Duration;

use serde_json::{json, Value};

use crate::channel::{
    e164_from_provider, international_digits, Body, Channel, ChannelKind, Delivery, DeliveryStatus,
    FailureReason, Outgoing, SendFailure, SendFuture, Sent,
};
use crate::{http, sms};

/// eSMS's limit on `RequestId`.
pub const REQUEST_ID_CHARS_MAX: usize = 50;

pub const CARE_PATH: &str = "/MainService.svc/json/SendMultipleMessage_V4_post_json/";
pub const ADVERTISING_PATH: &str = "/MainService.svc/json/SendMultipleSMSBrandname_json/";

#[derive(Clone)]
pub struct EsmsConfig {
    pub api_key: String,
    pub secret_key: String,
    pub brandname: String,
    /// Default `https://rest.esms.vn`.
    pub base_url: String,
    /// Where eSMS reports delivery (a GET with query parameters; see [`parse_callback`]).
    pub callback_url: Option<String>,
    /// eSMS's test mode: accepted, not delivered, not charged.
    pub sandbox: bool,
    pub timeout: Duration,
}

impl EsmsConfig {
    pub fn new(
        api_key: impl Into<String>,
        secret_key: impl Into<String>,
        brandname: impl Into<String>,
    ) -> Self {
        EsmsConfig {
            api_key: api_key.into(),
            secret_key: secret_key.into(),
            brandname: brandname.into(),
            base_url: "https://rest.esms.vn".to_owned(),
            callback_url: None,
            sandbox: false,
            timeout: http::TIMEOUT_DEFAULT,
        }
    }
}

impl std::fmt::Debug for EsmsConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("EsmsConfig")
            .field("api_key", &"<hidden>")
            .field("secret_key", &"<hidden>")
            .field("brandname", &self.brandname)
            .field("base_url", &self.base_url)
            .field("callback_url", &self.callback_url)
            .field("sandbox", &self.sandbox)
            .field("timeout", &self.timeout)
            .finish()
    }
}

pub struct EsmsChannel {
    config: EsmsConfig,
    client: reqwest::Client,
}

impl EsmsChannel {
    pub fn new(config: EsmsConfig) -> Self {
        let client = http::client(config.timeout);
        EsmsChannel { config, client }
    }

    async fn send_text(&self, message: &Outgoing) -> Result<Sent, SendFailure> {
        let Body::Text(text) = &message.body else {
            return Err(SendFailure::unsendable("eSMS sends Body::Text only"));
        };
        if message.tracking_id.is_empty()
            || message.tracking_id.chars().count() > REQUEST_ID_CHARS_MAX
        {
            return Err(SendFailure::unsendable(format!(
                "eSMS RequestId must have 1 to {REQUEST_ID_CHARS_MAX} characters"
            )));
        }
        let phone = international_digits(&message.to)?;
        let content = if message.advertising {
            sms::advertising_text(text)
        } else {
            text.clone()
        };
        let parts = sms::parts(&content);
        let (path, payload) = self.payload(&phone, &content, message);
        let request = self
            .client
            .post(format!("{}{path}", self.config.base_url))
            .json(&payload);
        let reply = http::exchange(request).await?;
        parse_send_reply(&reply.body, parts).unwrap_or_else(|| Err(http::unexpected_reply(&reply)))
    }

    fn payload(&self, phone: &str, content: &str, message: &Outgoing) -> (&'static str, Value) {
        let flag = |on: bool| if on { "1" } else { "0" };
        let mut payload = json!({
            "ApiKey": self.config.api_key,
            "SecretKey": self.config.secret_key,
            "Content": content,
            "Brandname": self.config.brandname,
            "IsUnicode": flag(!sms::is_gsm7(content)),
            "Sandbox": flag(self.config.sandbox),
            "RequestId": message.tracking_id,
        });
        if let Some(callback_url) = &self.config.callback_url {
            payload["CallbackUrl"] = json!(callback_url);
        }
        if message.advertising {
            payload["Phones"] = json!([phone]);
            payload["SmsType"] = json!("1");
            (ADVERTISING_PATH, payload)
        } else {
            payload["Phone"] = json!(phone);
            payload["SmsType"] = json!("2");
            (CARE_PATH, payload)
        }
    }
}

impl Channel for EsmsChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Sms
    }

    fn send<'a>(&'a self, message: &'a Outgoing) -> SendFuture<'a> {
        Box::pin(self.send_text(message))
    }
}

/// The code eSMS answers a repeated `RequestId` with.
pub const DUPLICATE_REQUEST_CODE: &str = "124";

/// Reads a send answer; `None` when it is not eSMS's shape at all.
fn parse_send_reply(body: &Value, parts: u32) -> Option<Result<Sent, SendFailure>> {
    let code = http::text(body.get("CodeResult")?)?;
    let sms_id = body
        .get("SMSID")
        .and_then(http::text)
        .filter(|sms_id| !sms_id.trim().is_empty());
    let accepted = |provider_id| Sent {
        provider_id,
        cost_vnd: None,
        parts,
    };
    let outcome = match (code.as_str(), sms_id) {
        ("100", Some(sms_id)) => Ok(accepted(sms_id)),
        ("100", None) => Err(SendFailure::new(
            FailureReason::Other,
            false,
            code,
            "eSMS accepted the message without an SMSID",
        )),
        (DUPLICATE_REQUEST_CODE, Some(sms_id)) => Ok(accepted(sms_id)),
        _ => {
            let message = body
                .get("ErrorMessage")
                .and_then(http::text)
                .unwrap_or_default();
            Err(failure(&code, &message))
        }
    };
    Some(outcome)
}

/// eSMS's error codes: (code, reason, retryable, meaning).
pub const ERROR_CODES: &[(&str, FailureReason, bool, &str)] = &[
    (
        "99",
        FailureReason::RecipientRefused,
        false,
        "phone number blocked",
    ),
    (
        "101",
        FailureReason::Unauthorized,
        false,
        "ApiKey or SecretKey incorrect",
    ),
    (
        "102",
        FailureReason::Unauthorized,
        false,
        "no price list for this account",
    ),
    (
        "103",
        FailureReason::QuotaExceeded,
        false,
        "balance too low",
    ),
    (
        "104",
        FailureReason::Unauthorized,
        false,
        "brandname does not exist",
    ),
    (
        "107",
        FailureReason::Other,
        false,
        "advertising needs at least 30 numbers a request",
    ),
    (
        "108",
        FailureReason::InvalidRecipient,
        false,
        "phone number malformed",
    ),
    (
        "118",
        FailureReason::Other,
        false,
        "message type not supported",
    ),
    (
        "120",
        FailureReason::Other,
        false,
        "too many phone numbers in one request",
    ),
    (
        DUPLICATE_REQUEST_CODE,
        FailureReason::Duplicate,
        false,
        "RequestId already used",
    ),
    (
        "140",
        FailureReason::Unauthorized,
        false,
        "IP not whitelisted",
    ),
    (
        "146",
        FailureReason::TemplateInvalid,
        false,
        "content does not match a registered template",
    ),
    (
        "177",
        FailureReason::Other,
        false,
        "brandname not registered on the recipient's carrier",
    ),
    ("201", FailureReason::Other, false, "request refused"),
];

/// The failure an eSMS code stands for.
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
    #[error("the callback has no {0}")]
    Missing(&'static str),
}

/// Reads eSMS's delivery callback (a GET whose query carries `SMSID`, `SendStatus`,
/// `TotalPrice`, `RequestId`, `phonenumber`, …). eSMS calls up to 5 times; the answer is the
/// same each time, so handling it must be idempotent.
pub fn parse_callback<K, V>(
    query: impl IntoIterator<Item = (K, V)>,
) -> Result<Delivery, CallbackError>
where
    K: AsRef<str>,
    V: AsRef<str>,
{
    let mut sms_id = None;
    let mut send_status = None;
    let mut request_id = None;
    let mut phone = None;
    let mut total_price = None;
    for (key, value) in query {
        let value = value.as_ref().trim().to_owned();
        match key.as_ref().to_ascii_lowercase().as_str() {
            "smsid" => sms_id = Some(value),
            "sendstatus" => send_status = Some(value),
            "requestid" => request_id = Some(value),
            "phonenumber" | "phone" => phone = Some(value),
            "totalprice" => total_price = http::integer(&Value::String(value)),
            _ => {}
        }
    }
    let provider_id = sms_id
        .filter(|sms_id| !sms_id.is_empty())
        .ok_or(CallbackError::Missing("SMSID"))?;
    let send_status = send_status.ok_or(CallbackError::Missing("SendStatus"))?;
    Ok(Delivery {
        channel: ChannelKind::Sms,
        provider_id,
        tracking_id: request_id.filter(|id| !id.is_empty()),
        recipient: phone
            .filter(|phone| !phone.is_empty())
            .map(|phone| e164_from_provider(&phone)),
        status: delivery_status(&send_status),
        provider_status: send_status,
        delivered_at: None,
        cost_vnd: total_price,
    })
}

/// SendStatus: 1 pending, 2 waiting for approval, 4 rejected, 5 sent, 7 waiting for the
/// carrier; anything else we do not know is kept pending so a later callback can settle it.
fn delivery_status(send_status: &str) -> DeliveryStatus {
    match send_status {
        "5" => DeliveryStatus::Delivered,
        "4" => DeliveryStatus::Failed,
        _ => DeliveryStatus::Pending,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_code_has_its_reason() {
        let expectations = [
            ("99", "recipient_refused"),
            ("101", "unauthorized"),
            ("103", "quota_exceeded"),
            ("104", "unauthorized"),
            ("107", "other"),
            ("108", "invalid_recipient"),
            ("124", "duplicate"),
            ("140", "unauthorized"),
            ("146", "template_invalid"),
            ("177", "other"),
            ("201", "other"),
            ("555", "other"),
        ];
        for (code, reason) in expectations {
            let failure = failure(code, "x");
            assert_eq!(failure.reason.as_str(), reason, "code {code}");
            assert!(!failure.retryable, "code {code}");
            assert_eq!(failure.provider_code, code);
        }
        assert!(failure("555", "").detail.contains("unknown code"));
    }

    #[test]
    fn send_replies_are_read_with_numbers_or_strings() {
        let sent = parse_send_reply(&json!({"CodeResult": 100, "SMSID": "abc-1"}), 2)
            .unwrap()
            .unwrap();
        assert_eq!(sent.provider_id, "abc-1");
        assert_eq!(sent.parts, 2);
        let refused = parse_send_reply(
            &json!({"CodeResult": "146", "ErrorMessage": "Sai template"}),
            1,
        )
        .unwrap()
        .unwrap_err();
        assert_eq!(refused.reason, FailureReason::TemplateInvalid);
        assert!(refused.detail.contains("Sai template"));
        assert!(parse_send_reply(&json!({"Message": "?"}), 1).is_none());
    }

    #[test]
    fn a_duplicate_with_an_smsid_is_already_sent_and_without_one_a_final_failure() {
        let sent = parse_send_reply(&json!({"CodeResult": "124", "SMSID": "first"}), 1)
            .unwrap()
            .unwrap();
        assert_eq!(sent.provider_id, "first");
        let duplicate = parse_send_reply(&json!({"CodeResult": "124", "SMSID": ""}), 1)
            .unwrap()
            .unwrap_err();
        assert_eq!(duplicate.reason, FailureReason::Duplicate);
        assert!(!duplicate.retryable);
    }

    #[test]
    fn callbacks_are_read_from_query_pairs() {
        let delivery = parse_callback([
            ("SMSID", "abc-1"),
            ("SendStatus", "5"),
            ("SendSuccess", "1"),
            ("SendFailed", "0"),
            ("TotalPrice", "700"),
            ("RequestId", "t-1"),
            ("phonenumber", "0901234567"),
        ])
        .unwrap();
        assert_eq!(delivery.provider_id, "abc-1");
        assert_eq!(delivery.status, DeliveryStatus::Delivered);
        assert_eq!(delivery.cost_vnd, Some(700));
        assert_eq!(delivery.tracking_id.as_deref(), Some("t-1"));
        assert_eq!(delivery.recipient.as_deref(), Some("+84901234567"));

        let rejected = parse_callback([("SMSID", "x"), ("SendStatus", "4")]).unwrap();
        assert_eq!(rejected.status, DeliveryStatus::Failed);
        let waiting = parse_callback([("SMSID", "x"), ("SendStatus", "7")]).unwrap();
        assert_eq!(waiting.status, DeliveryStatus::Pending);
        assert_eq!(
            parse_callback([("SendStatus", "5")]),
            Err(CallbackError::Missing("SMSID"))
        );
    }
}
