//! Patron's messaging adapters for campaigns: Zalo ZNS, SMS brandname through eSMS.vn or
//! SpeedSMS, and e-mail over SMTP, each behind the one [`Channel`] trait.
//!
//! A caller hands a channel an [`Outgoing`] message and gets back either a [`Sent`] (the
//! provider's id, the cost when the provider tells it, the number of SMS parts) or a
//! [`SendFailure`] whose [`FailureReason`] has a stable snake_case name and whose `retryable`
//! flag says whether sending the same message later may succeed. Provider callbacks and
//! webhooks are parsed into a [`Delivery`].
//!
//! **Architecture Invariant:** this crate knows nothing of Patron's store, members or
//! programmes, and depends on no other Patron crate. Whatever must survive a restart is the
//! caller's to persist: the Zalo token pair through a [`zns::TokenStore`], a member's consent
//! and opt-outs, the sending hours and per-number limits of advertising.
//!
//! **Architecture Invariant:** an adapter sends a message at most once per call, except for
//! one resend after a Zalo access-token refresh. Every other retry (when, how often, with what
//! back-off) belongs to the caller's scheduler, which decides from `retryable` and the
//! tracking id (providers that de-duplicate do so on it).
//!
//! **Architecture Invariant:** every request has a timeout and every provider's base URL is
//! configurable, so tests talk only to the local fakes in [`fake`] (feature `fake`).
//!
//! Credentials are kept sealed at rest with [`secrets::Sealer`].

mod channel;
pub mod email;
pub mod esms;
mod http;
pub mod secrets;
pub mod sms;
pub mod speedsms;
pub mod zns;

#[cfg(any(test, feature = "fake"))]
pub mod fake;

pub use channel::{
    Body, Channel, ChannelKind, Delivery, DeliveryStatus, FailureReason, Outgoing, SendFailure,
    SendFuture, Sent,
};
