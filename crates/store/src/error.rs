//! Errors of the store: one enum for operations, one for events (which carry the engine's
//! rejections and the store's own, each with a stable code and the field at fault).

use patron_core::engine::Rejection;

/// An error of a store operation other than judging an event.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("configuration: {0}")]
    Config(String),
    #[error("{what} not found")]
    NotFound { what: &'static str },
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("{what} already exists")]
    Conflict { what: &'static str },
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// Another writer changed what this transaction read; running it again may pass.
    #[error("write conflict: {0}")]
    Retry(String),
    /// A member's state broke an invariant: the event that showed it fails and the member is
    /// quarantined; nothing else stops.
    #[error("member {member_id}: {message}")]
    Invariant { member_id: String, message: String },
}

impl StoreError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> StoreError {
        StoreError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// A failure that another writer's concurrent work explains, so the same transaction run
    /// again may pass: a lost race for row locks, a serialization failure, a deadlock, a busy
    /// SQLite file.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Retry(_) => true,
            StoreError::Database(sqlx::Error::Database(error)) => matches!(
                error.code().as_deref(),
                // serialization_failure, deadlock_detected, lock_not_available
                Some("40001") | Some("40P01") | Some("55P03")
            ),
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(error, _)) => matches!(
                error.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ),
            _ => false,
        }
    }

    /// A unique-constraint violation: a conflict, not a fault.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(error)) => error.is_unique_violation(),
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(error, _)) => {
                error.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    || error.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            }
            _ => false,
        }
    }
}

/// Why one event was not accepted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EventError {
    #[error("{0}")]
    Rejected(Rejection),
    #[error("an event with this id exists with a different body")]
    ExistsWithDifferentBody,
    #[error("member not found")]
    MemberNotFound,
    #[error("original purchase not found")]
    OriginalNotFound,
    #[error("original event is not a purchase")]
    OriginalNotPurchase,
    #[error("reward not found")]
    RewardNotFound,
    #[error("voucher not found")]
    VoucherNotFound,
    #[error("store is not one of the tenant's stores")]
    UnknownStore,
    #[error("the amount is more than the tenant's largest purchase ({maximum})")]
    AmountAboveMaximum { maximum: i64 },
    #[error("this key may only act on its own store's sales and vouchers")]
    OtherStore { field: &'static str },
    #[error("tenant not found")]
    TenantNotFound,
    #[error("the tenant has no published programme")]
    NoProgramme,
    #[error("phone number is already another member's")]
    PhoneTaken,
    #[error("the member's stored points do not add up; its events are refused until an operator checks it")]
    MemberQuarantined,
    #[error("the journal is shutting down")]
    Unavailable,
    #[error("database: {0}")]
    Database(String),
}

impl EventError {
    /// The stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            EventError::Rejected(rejection) => rejection.code(),
            EventError::ExistsWithDifferentBody => "exists_with_different_body",
            EventError::MemberNotFound => "member_not_found",
            EventError::OriginalNotFound => "original_not_found",
            EventError::OriginalNotPurchase => "original_not_purchase",
            EventError::RewardNotFound => "reward_not_found",
            EventError::VoucherNotFound => "voucher_not_found",
            EventError::UnknownStore => "unknown_store",
            EventError::AmountAboveMaximum { .. } => "amount_above_maximum",
            EventError::OtherStore { .. } => "other_store",
            EventError::TenantNotFound => "tenant_not_found",
            EventError::NoProgramme => "no_programme",
            EventError::PhoneTaken => "phone_taken",
            EventError::MemberQuarantined => "member_quarantined",
            EventError::Unavailable => "unavailable",
            EventError::Database(_) => "internal",
        }
    }

    /// The request field at fault, when there is one.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            EventError::Rejected(rejection) => Some(rejection.field()),
            EventError::ExistsWithDifferentBody => Some("id"),
            EventError::MemberNotFound | EventError::PhoneTaken | EventError::MemberQuarantined => {
                Some("member")
            }
            EventError::OriginalNotFound | EventError::OriginalNotPurchase => Some("original_id"),
            EventError::RewardNotFound => Some("reward_id"),
            EventError::VoucherNotFound => Some("code"),
            EventError::UnknownStore => Some("store"),
            EventError::AmountAboveMaximum { .. } => Some("amount"),
            EventError::OtherStore { field } => Some(field),
            _ => None,
        }
    }
}
