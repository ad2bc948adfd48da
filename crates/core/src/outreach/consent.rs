//! What a member agreed to receive, channel by channel.

use super::channel::{Channel, Purpose};
use super::decide::SuppressReason;
use chrono::{DateTime, Utc};

/// One record of a member granting or withdrawing consent to messages on a channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Consent {
    pub channel: Channel,
    /// `true` for an opt-in, `false` for an opt-out.
    pub granted: bool,
    /// When the member said so.
    pub at: DateTime<Utc>,
    /// Where the member said so, kept as evidence: "registration_sms", "web_form", "till", …
    pub source: String,
}

/// Where a member stands on one channel, by their latest record on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// The latest record is an opt-in.
    Granted,
    /// The latest record is an opt-out.
    OptedOut,
    /// No record on this channel.
    Unknown,
}

/// A member's consent records. The latest record on a channel (by `at`; of two at the same
/// instant, the one recorded last) decides where the member stands on it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Consents {
    records: Vec<Consent>,
}

impl Consents {
    /// The consents of these records, in the order they were recorded.
    pub fn new(records: Vec<Consent>) -> Consents {
        Consents { records }
    }

    /// Adds a record after the others.
    pub fn record(&mut self, consent: Consent) {
        self.records.push(consent);
    }

    /// Every record, in the order they were recorded.
    pub fn records(&self) -> &[Consent] {
        &self.records
    }

    /// The record in force on `channel`.
    pub fn latest(&self, channel: Channel) -> Option<&Consent> {
        // `max_by_key` keeps the last of equal keys: the later recorded wins a tie.
        self.records
            .iter()
            .filter(|consent| consent.channel == channel)
            .max_by_key(|consent| consent.at)
    }

    /// Where the member stands on `channel`.
    pub fn standing(&self, channel: Channel) -> Standing {
        match self.latest(channel) {
            Some(consent) if consent.granted => Standing::Granted,
            Some(_) => Standing::OptedOut,
            None => Standing::Unknown,
        }
    }

    /// Whether a message for `purpose` may go on `channel`, and if not, why. The rule:
    ///
    /// | standing on the channel | advertising  | care      | transactional |
    /// |-------------------------|--------------|-----------|---------------|
    /// | granted                 | yes          | yes       | yes           |
    /// | no record               | `no_consent` | yes       | yes           |
    /// | opted out               | `opted_out`  | `opted_out` | `opted_out` |
    ///
    /// Advertising needs an opt-in (Decree 91/2020 art. 13); an opt-out is honoured for every
    /// purpose, since a member who asked for silence on a channel asked for all of it.
    pub fn permits(&self, channel: Channel, purpose: Purpose) -> Result<(), SuppressReason> {
        match (self.standing(channel), purpose) {
            (Standing::OptedOut, _) => Err(SuppressReason::OptedOut),
            (Standing::Unknown, Purpose::Advertising) => Err(SuppressReason::NoConsent),
            (Standing::Granted, _) | (Standing::Unknown, _) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn consent(channel: Channel, granted: bool, hour: u32) -> Consent {
        Consent {
            channel,
            granted,
            at: Utc.with_ymd_and_hms(2026, 3, 1, hour, 0, 0).unwrap(),
            source: "test".into(),
        }
    }

    #[test]
    fn the_latest_record_per_channel_wins() {
        let consents = Consents::new(vec![
            consent(Channel::Sms, false, 9),
            consent(Channel::Sms, true, 8),
            consent(Channel::Email, true, 7),
            consent(Channel::Email, false, 8),
            consent(Channel::Email, true, 8),
        ]);
        // The opt-out at 09:00 is later than the opt-in at 08:00, though recorded first.
        assert_eq!(consents.standing(Channel::Sms), Standing::OptedOut);
        // Two records at 08:00: the one recorded last wins.
        assert_eq!(consents.standing(Channel::Email), Standing::Granted);
        assert_eq!(consents.standing(Channel::Zns), Standing::Unknown);
    }

    #[test]
    fn the_rule_table() {
        let consents = Consents::new(vec![
            consent(Channel::Sms, true, 8),
            consent(Channel::Email, false, 8),
        ]);
        let cases = [
            (Channel::Sms, Purpose::Advertising, Ok(())),
            (Channel::Sms, Purpose::Care, Ok(())),
            (Channel::Sms, Purpose::Transactional, Ok(())),
            (
                Channel::Zns,
                Purpose::Advertising,
                Err(SuppressReason::NoConsent),
            ),
            (Channel::Zns, Purpose::Care, Ok(())),
            (Channel::Zns, Purpose::Transactional, Ok(())),
            (
                Channel::Email,
                Purpose::Advertising,
                Err(SuppressReason::OptedOut),
            ),
            (Channel::Email, Purpose::Care, Err(SuppressReason::OptedOut)),
            (
                Channel::Email,
                Purpose::Transactional,
                Err(SuppressReason::OptedOut),
            ),
        ];
        for (channel, purpose, expected) in cases {
            assert_eq!(
                consents.permits(channel, purpose),
                expected,
                "{channel:?} {purpose:?}"
            );
        }
    }
}
