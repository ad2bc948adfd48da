//! Outreach: whether and when a campaign message may go to a member, who is held out of a
//! campaign, and what the campaign changed. Pure: the caller loads the member, their consents
//! and what was recently sent to them, and acts on the [`Decision`].
//!
//! # The rules, in the order [`decide`] applies them
//!
//! 1. **Address.** Nothing goes to a channel on which the member has no valid address
//!    ([`SuppressReason::InvalidAddress`]), whatever the purpose.
//! 2. **Consent** ([`Consents::permits`]), the latest record per channel winning:
//!    - an opt-out stops every message on that channel, transactional ones included
//!      ([`SuppressReason::OptedOut`]); a sign-in code must then go another way;
//!    - advertising needs an explicit opt-in on that channel (Decree 91/2020/NĐ-CP art. 13:
//!      advertising only to who registered to receive it), so no record means no
//!      ([`SuppressReason::NoConsent`]);
//!    - care and transactional messages need no record, only the absence of an opt-out;
//!    - a member on the do-not-advertise list gets no advertising on any channel
//!      ([`SuppressReason::DoNotAdvertise`]).
//! 3. **Timing**, never a reason to drop a message, only to hold it ([`Decision::Defer`]) until
//!    the first instant at which every rule below lets it go:
//!    - Decree 91 art. 13, for advertising to a phone number ([`Channel::is_number`]: SMS, and
//!      ZNS whose tag 3 "promotion" is advertising by Zalo's own definition): only within
//!      [`ADVERTISING_HOURS`] local time, and at most [`ADVERTISING_SMS_PER_DAY_MAX`] such
//!      messages per number in any [`ADVERTISING_SMS_WINDOW`] (rolling), counting SMS and ZNS
//!      together; the text carries [`ADVERTISING_PREFIX`] ([`with_advertising_prefix`]);
//!    - the tenant's [`Respect`]: quiet hours in the member's zone and a frequency cap across
//!      channels, both for advertising and care; transactional messages ignore both.
//!
//!    A deferral is given up ([`Decision::Suppress`]) only when waiting cannot help: a frequency
//!    cap of zero ([`SuppressReason::Capped`]), quiet hours that leave no time at which the
//!    message may go ([`SuppressReason::NoAllowedHours`]), or a next allowed instant after the
//!    message's own deadline ([`SuppressReason::TooLate`]).
//!
//! Local time is the member's zone, else the tenant's ([`Respect::zone_default`], by default
//! [`ZONE_DEFAULT`], Asia/Ho_Chi_Minh).
//!
//! # Hold-out and uplift
//!
//! [`in_holdout`] and [`variant`] draw members by a SHA-256 hash of the campaign and member ids,
//! so the same member always lands in the same group with no state kept; [`uplift`] compares
//! the sent group with the held-out one.

mod channel;
mod consent;
mod decide;
mod draw;
mod uplift;

#[cfg(test)]
mod tests;

pub use channel::{
    has_advertising_prefix, with_advertising_prefix, Channel, Purpose, ADVERTISING_PREFIX,
    ADVERTISING_PREFIX_ENGLISH,
};
pub use consent::{Consent, Consents, Standing};
pub use decide::{
    decide, Decision, DeferReason, FrequencyCap, Planned, QuietHours, Recipient, Respect, Sent,
    SuppressReason, ADVERTISING_HOURS, ADVERTISING_SMS_PER_DAY_MAX, ADVERTISING_SMS_WINDOW,
    ZONE_DEFAULT,
};
pub use draw::{in_holdout, variant, BASIS_POINTS_WHOLE, VARIANTS_MAX};
pub use uplift::{
    uplift, GroupOutcome, Interval, Uplift, UpliftError, CONFIDENCE_Z, GROUP_MEMBERS_MAX,
    REVENUE_PER_MEMBER_MAX,
};
