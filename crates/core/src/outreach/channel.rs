//! The ways a message reaches a member, and what a message is for.

use serde::{Deserialize, Serialize};

/// The prefix Decree 91/2020 art. 13 requires at the start of an advertising SMS (Vietnamese
/// "quảng cáo").
pub const ADVERTISING_PREFIX: &str = "[QC]";

/// The other prefix the decree accepts, for messages in English.
pub const ADVERTISING_PREFIX_ENGLISH: &str = "[AD]";

/// A way a message reaches a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Zalo Notification Service: a templated message to the member's phone number on Zalo.
    Zns,
    /// SMS under the tenant's brandname.
    Sms,
    Email,
    /// A POST to the tenant's own endpoint, which delivers the message itself.
    Webhook,
    /// The member's inbox in the tenant's app or web page.
    Inbox,
}

impl Channel {
    /// Every channel, in the order of their names.
    pub const ALL: [Channel; 5] = [
        Channel::Email,
        Channel::Inbox,
        Channel::Sms,
        Channel::Webhook,
        Channel::Zns,
    ];

    /// The stable name, as stored and sent over the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Zns => "zns",
            Channel::Sms => "sms",
            Channel::Email => "email",
            Channel::Webhook => "webhook",
            Channel::Inbox => "inbox",
        }
    }

    /// The channel of a stable name.
    pub fn parse(text: &str) -> Option<Channel> {
        match text {
            "zns" => Some(Channel::Zns),
            "sms" => Some(Channel::Sms),
            "email" => Some(Channel::Email),
            "webhook" => Some(Channel::Webhook),
            "inbox" => Some(Channel::Inbox),
            _ => None,
        }
    }

    /// Whether the message goes to the member's phone number, where Decree 91's hours and
    /// daily limit for advertising apply.
    pub fn is_number(self) -> bool {
        matches!(self, Channel::Sms | Channel::Zns)
    }
}

/// What a message is for, which decides the consent it needs and the limits it obeys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// Promotions: offers, new products, double-points days. Needs an opt-in; obeys every limit.
    Advertising,
    /// Looking after the membership: birthday, points about to expire, a tier change, a request
    /// for feedback. Needs no opt-in, only no opt-out; obeys the tenant's quiet hours and cap.
    Care,
    /// A direct answer to what the member did: a sign-in code, a receipt. Needs only no opt-out;
    /// ignores quiet hours and caps.
    Transactional,
}

impl Purpose {
    /// The stable name, as stored and sent over the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Advertising => "advertising",
            Purpose::Care => "care",
            Purpose::Transactional => "transactional",
        }
    }

    /// The purpose of a stable name.
    pub fn parse(text: &str) -> Option<Purpose> {
        match text {
            "advertising" => Some(Purpose::Advertising),
            "care" => Some(Purpose::Care),
            "transactional" => Some(Purpose::Transactional),
            _ => None,
        }
    }

    /// The ZNS template tag of this purpose (since 2024-04-16): 1 transaction, 2 customer care,
    /// 3 promotion.
    pub fn zns_tag(self) -> u8 {
        match self {
            Purpose::Transactional => 1,
            Purpose::Care => 2,
            Purpose::Advertising => 3,
        }
    }

    /// Whether the tenant's quiet hours and frequency cap apply.
    pub fn is_limited(self) -> bool {
        !matches!(self, Purpose::Transactional)
    }
}

/// Whether `text` starts with the advertising prefix, [`ADVERTISING_PREFIX`] or
/// [`ADVERTISING_PREFIX_ENGLISH`], exactly as written (the decree gives the brackets and the
/// capitals).
pub fn has_advertising_prefix(text: &str) -> bool {
    text.starts_with(ADVERTISING_PREFIX) || text.starts_with(ADVERTISING_PREFIX_ENGLISH)
}

/// `text` as an advertising SMS may be sent: unchanged when it already starts with a prefix,
/// else with [`ADVERTISING_PREFIX`] and a space before it. Leading whitespace is dropped so the
/// prefix is the first thing the member reads.
pub fn with_advertising_prefix(text: &str) -> String {
    let text = text.trim_start();
    if has_advertising_prefix(text) {
        return text.to_owned();
    }
    format!("{ADVERTISING_PREFIX} {text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for channel in Channel::ALL {
            assert_eq!(Channel::parse(channel.as_str()), Some(channel));
            let json = serde_json::to_string(&channel).unwrap();
            assert_eq!(json, format!("\"{}\"", channel.as_str()));
        }
        for purpose in [Purpose::Advertising, Purpose::Care, Purpose::Transactional] {
            assert_eq!(Purpose::parse(purpose.as_str()), Some(purpose));
            let json = serde_json::to_string(&purpose).unwrap();
            assert_eq!(json, format!("\"{}\"", purpose.as_str()));
        }
        assert_eq!(Channel::parse("SMS"), None);
        assert_eq!(Purpose::parse(""), None);
    }

    #[test]
    fn the_prefix_is_added_once() {
        assert_eq!(
            with_advertising_prefix("Giảm 20% hôm nay"),
            "[QC] Giảm 20% hôm nay"
        );
        assert_eq!(with_advertising_prefix("[QC] Giảm 20%"), "[QC] Giảm 20%");
        assert_eq!(with_advertising_prefix("[AD] 20% off"), "[AD] 20% off");
        assert_eq!(with_advertising_prefix("  Sale"), "[QC] Sale");
        assert_eq!(with_advertising_prefix(""), "[QC] ");
        // Lower case is not the prefix the decree wrote.
        assert_eq!(with_advertising_prefix("[qc] Sale"), "[QC] [qc] Sale");
        assert!(has_advertising_prefix(&with_advertising_prefix("anything")));
        assert!(!has_advertising_prefix(" [QC] leading space"));
    }
}
