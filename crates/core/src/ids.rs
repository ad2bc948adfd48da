//! Identifiers. Ids we mint are UUIDv7 (time-ordered, made by the application so the SQL stays
//! portable); the sender's event id is its own string.

use std::fmt;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub uuid::Uuid);

        impl $name {
            /// A new, time-ordered id.
            pub fn new() -> Self {
                Self(uuid::Uuid::now_v7())
            }

            /// Parses the textual form.
            pub fn parse(text: &str) -> Result<Self, uuid::Error> {
                uuid::Uuid::parse_str(text).map(Self)
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

uuid_id!(
    /// A business using Patron; every row belongs to exactly one.
    TenantId
);
uuid_id!(
    /// A member of a tenant's programme.
    MemberId
);
uuid_id!(
    /// A lot of points earned together, with one maturity and one expiry.
    LotId
);
uuid_id!(
    /// A double-entry ledger transaction.
    TransactionId
);
uuid_id!(
    /// A reward in a tenant's catalogue.
    RewardId
);

/// The sender's id of an event (a POS receipt number, an order id). Unique per tenant forever.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId(String);

/// Longest event id accepted, in bytes.
pub const EVENT_ID_LENGTH_MAX: usize = 128;

/// Why an event id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventIdError {
    #[error("event id is empty")]
    Empty,
    #[error("event id is longer than {EVENT_ID_LENGTH_MAX} bytes")]
    TooLong,
    #[error("event id may hold only printable ASCII")]
    NotPrintable,
}

impl EventId {
    /// Accepts 1..=128 bytes of printable ASCII.
    pub fn parse(text: &str) -> Result<Self, EventIdError> {
        if text.is_empty() {
            return Err(EventIdError::Empty);
        }
        if text.len() > EVENT_ID_LENGTH_MAX {
            return Err(EventIdError::TooLong);
        }
        if !text.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(EventIdError::NotPrintable);
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_id_limits() {
        assert!(EventId::parse("").is_err());
        assert!(EventId::parse(&"a".repeat(EVENT_ID_LENGTH_MAX)).is_ok());
        assert_eq!(
            EventId::parse(&"a".repeat(EVENT_ID_LENGTH_MAX + 1)),
            Err(EventIdError::TooLong)
        );
        assert_eq!(EventId::parse("a b"), Err(EventIdError::NotPrintable));
        assert_eq!(EventId::parse("HD-0001/23").unwrap().as_str(), "HD-0001/23");
    }
}
