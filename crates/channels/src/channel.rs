//! The types every adapter shares: what is sent, what comes back, and how a failure is told.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Utc};

/// The kind of channel a message goes out on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelKind {
    Zns,
    Sms,
    Email,
}

impl ChannelKind {
    /// The stable snake_case name, for storage and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Zns => "zns",
            ChannelKind::Sms => "sms",
            ChannelKind::Email => "email",
        }
    }
}

/// One message to one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// An E.164 phone number ("+84901234567") for ZNS and SMS, an e-mail address for e-mail.
    pub to: String,
    /// The caller's id for this message; providers that de-duplicate do so on it (ZNS
    /// `tracking_id` at most 48 characters, eSMS `RequestId` at most 50).
    pub tracking_id: String,
    pub body: Body,
    /// Advertising content: SMS gets the "[QC] " prefix and eSMS its advertising route.
    pub advertising: bool,
}

/// What a message says; each channel accepts one shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// A provider template filled with named values (ZNS).
    Template {
        template_id: String,
        data: BTreeMap<String, String>,
    },
    /// Plain text (SMS).
    Text(String),
    /// An e-mail with both an HTML and a text part.
    Email {
        subject: String,
        html: String,
        text: String,
        /// Sets `List-Unsubscribe` and one-click `List-Unsubscribe-Post` (RFC 8058).
        unsubscribe_url: Option<String>,
    },
}

/// A message the provider accepted (accepted, not yet delivered: see [`Delivery`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The provider's id of the message, used to match its delivery callbacks.
    pub provider_id: String,
    /// What the provider says it charged, in đồng, when it says so at sending time.
    pub cost_vnd: Option<i64>,
    /// SMS segments the text takes (1 for ZNS and e-mail).
    pub parts: u32,
}

/// Why a send failed, by a stable snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureReason {
    /// The phone number or address is malformed or has no account at the provider.
    InvalidRecipient,
    /// The recipient blocked, rejected or opted out of messages at the provider, or is inactive.
    RecipientRefused,
    /// The template does not exist, is not approved, is not ours, or its data does not fit.
    TemplateInvalid,
    /// A daily quota or the account balance is used up.
    QuotaExceeded,
    /// Credentials, application or sender name are wrong or not allowed.
    Unauthorized,
    /// Too many requests; the provider may say how long to wait.
    RateLimited { retry_after_seconds: Option<u64> },
    /// The provider already has a message with this tracking id.
    Duplicate,
    /// The provider refused the content itself.
    ContentRefused,
    /// The provider could not be reached or failed on its side (5xx, timeout, connection).
    ProviderUnavailable,
    /// Anything else, including codes this crate does not know.
    Other,
}

impl FailureReason {
    /// The stable snake_case name, for storage, metrics and API answers.
    pub fn as_str(&self) -> &'static str {
        match self {
            FailureReason::InvalidRecipient => "invalid_recipient",
            FailureReason::RecipientRefused => "recipient_refused",
            FailureReason::TemplateInvalid => "template_invalid",
            FailureReason::QuotaExceeded => "quota_exceeded",
            FailureReason::Unauthorized => "unauthorized",
            FailureReason::RateLimited { .. } => "rate_limited",
            FailureReason::Duplicate => "duplicate",
            FailureReason::ContentRefused => "content_refused",
            FailureReason::ProviderUnavailable => "provider_unavailable",
            FailureReason::Other => "other",
        }
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A send that did not go through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} (provider code {provider_code:?}): {detail}")]
pub struct SendFailure {
    pub reason: FailureReason,
    /// Whether the same message, sent again later, may succeed.
    pub retryable: bool,
    /// The provider's own code, as it gave it ("-108", "146", "00"), or the HTTP status, or
    /// empty when the request never got an answer.
    pub provider_code: String,
    /// A human explanation, for logs and operators.
    pub detail: String,
}

impl SendFailure {
    pub fn new(
        reason: FailureReason,
        retryable: bool,
        provider_code: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        SendFailure {
            reason,
            retryable,
            provider_code: provider_code.into(),
            detail: detail.into(),
        }
    }

    /// The provider could not be reached or failed on its side; worth trying again.
    pub fn unavailable(provider_code: impl Into<String>, detail: impl Into<String>) -> Self {
        SendFailure::new(
            FailureReason::ProviderUnavailable,
            true,
            provider_code,
            detail,
        )
    }

    /// The message is not one this channel can send (wrong body, bad tracking id); resending
    /// it unchanged can never work.
    pub fn unsendable(detail: impl Into<String>) -> Self {
        SendFailure::new(FailureReason::Other, false, "", detail)
    }

    /// The recipient is not a valid address for this channel.
    pub fn invalid_recipient(detail: impl Into<String>) -> Self {
        SendFailure::new(FailureReason::InvalidRecipient, false, "", detail)
    }
}

/// The future a [`Channel::send`] returns; boxed so that `dyn Channel` works.
pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<Sent, SendFailure>> + Send + 'a>>;

/// One way of reaching a member. Implementations are cheap to share (`Arc<dyn Channel>`).
pub trait Channel: Send + Sync {
    fn kind(&self) -> ChannelKind;

    /// Sends one message once (see the crate's invariants for the one exception).
    fn send<'a>(&'a self, message: &'a Outgoing) -> SendFuture<'a>;
}

/// What a provider later reports about a message it accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub channel: ChannelKind,
    /// The provider's id of the message, as in [`Sent::provider_id`].
    pub provider_id: String,
    /// Our tracking id, when the provider echoes it.
    pub tracking_id: Option<String>,
    /// The recipient in E.164 form when the provider gives it.
    pub recipient: Option<String>,
    pub status: DeliveryStatus,
    /// The provider's own status value, kept for operators.
    pub provider_status: String,
    pub delivered_at: Option<DateTime<Utc>>,
    pub cost_vnd: Option<i64>,
}

/// Where a message stands according to its provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    /// Still on its way (queued at the provider or the carrier).
    Pending,
    Delivered,
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }
}

/// A phone number in E.164 form turned into the digits Vietnamese providers take ("84…").
pub(crate) fn international_digits(phone: &str) -> Result<String, SendFailure> {
    let digits = phone.trim().strip_prefix('+').ok_or_else(|| {
        SendFailure::invalid_recipient(format!("{phone:?} is not an E.164 phone number"))
    })?;
    let plausible_length = (8..=15).contains(&digits.len());
    if !plausible_length || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(SendFailure::invalid_recipient(format!(
            "{phone:?} is not an E.164 phone number"
        )));
    }
    Ok(digits.to_owned())
}

/// Providers' digits ("84901234567", or national "0901234567") back to E.164.
pub(crate) fn e164_from_provider(phone: &str) -> String {
    let phone = phone.trim();
    if phone.starts_with('+') {
        return phone.to_owned();
    }
    match phone.strip_prefix('0') {
        Some(national) => format!("+84{national}"),
        None => format!("+{phone}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_reasons_keep_their_stable_names() {
        let names: Vec<&str> = [
            FailureReason::InvalidRecipient,
            FailureReason::RecipientRefused,
            FailureReason::TemplateInvalid,
            FailureReason::QuotaExceeded,
            FailureReason::Unauthorized,
            FailureReason::RateLimited {
                retry_after_seconds: Some(3),
            },
            FailureReason::Duplicate,
            FailureReason::ContentRefused,
            FailureReason::ProviderUnavailable,
            FailureReason::Other,
        ]
        .iter()
        .map(|reason| reason.as_str())
        .collect();
        assert_eq!(
            names,
            [
                "invalid_recipient",
                "recipient_refused",
                "template_invalid",
                "quota_exceeded",
                "unauthorized",
                "rate_limited",
                "duplicate",
                "content_refused",
                "provider_unavailable",
                "other"
            ]
        );
    }

    #[test]
    fn phone_numbers_go_to_provider_digits_and_back() {
        assert_eq!(international_digits("+84901234567").unwrap(), "84901234567");
        assert!(international_digits("0901234567").is_err());
        assert!(international_digits("+84 90").is_err());
        assert!(international_digits("+8490123456a").is_err());
        assert_eq!(e164_from_provider("84901234567"), "+84901234567");
        assert_eq!(e164_from_provider("0901234567"), "+84901234567");
        assert_eq!(e164_from_provider("+84901234567"), "+84901234567");
    }
}
