//! Errors of the store: one enum for operations, one for events (which carry the engine's
//! rejections and the store's own, each with a stable code and the field at fault).

use patron_core::engine::Rejection;

/// An error of a store operation other than judging an event.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
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
            StoreError::Postgres(error) => error.code().is_some_and(|code| {
                [
                    &tokio_postgres::error::SqlState::T_R_SERIALIZATION_FAILURE,
                    &tokio_postgres::error::SqlState::T_R_DEADLOCK_DETECTED,
                    &tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE,
                ]
                .contains(&code)
            }),
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(error, _)) => matches!(
                error.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ),
            _ => false,
        }
    }

    /// The database could not be reached or went away (a restart, a network cut): the request
    /// may be tried again later, and nothing was half done.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Postgres(error) => {
                error.is_closed()
                    || error.as_db_error().is_none() && error.code().is_none()
                    || error.code().is_some_and(|code| {
                        code.code().starts_with("08")
                            || [
                                &tokio_postgres::error::SqlState::ADMIN_SHUTDOWN,
                                &tokio_postgres::error::SqlState::CRASH_SHUTDOWN,
                                &tokio_postgres::error::SqlState::CANNOT_CONNECT_NOW,
                            ]
                            .contains(&code)
                    })
            }
            _ => false,
        }
    }

    /// The unique constraint this error violated, if it is one of those Patron relies on.
    pub fn violated(&self) -> Option<Unique> {
        let (postgres, sqlite) = match self {
            StoreError::Postgres(error) => {
                let error = error.as_db_error()?;
                if error.code() != &tokio_postgres::error::SqlState::UNIQUE_VIOLATION {
                    return None;
                }
                (error.constraint(), None)
            }
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(error, Some(message)))
                if error.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    || error.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
            {
                (None, message.strip_prefix("UNIQUE constraint failed: "))
            }
            _ => return None,
        };
        Unique::ALL.into_iter().find(|unique| {
            let (name, columns) = unique.names();
            postgres == Some(name) || sqlite == Some(columns)
        })
    }

    /// A unique-constraint violation: a conflict, not a fault.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            StoreError::Postgres(error) => {
                error.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
            }
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(error, _)) => {
                error.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    || error.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            }
            _ => false,
        }
    }
}

/// The unique constraints whose violation means something to the caller: each is known by its
/// PostgreSQL name and by the columns SQLite's message lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unique {
    /// Another member of the tenant has the phone.
    MemberPhone,
    /// The tenant has an event with the id.
    EventId,
    /// The tenant has a staff account with the e-mail.
    UserEmail,
    /// Another process applied the migration first.
    MigrationVersion,
    /// The member has a card already.
    MemberCard,
    /// The tenant has a store with the code.
    StoreCode,
    /// Another member of the tenant has the card code.
    MemberCardCode,
    /// The tenant has a link-signing secret already.
    MemberLinkSecret,
}

impl Unique {
    const ALL: [Unique; 8] = [
        Unique::MemberPhone,
        Unique::EventId,
        Unique::UserEmail,
        Unique::MigrationVersion,
        Unique::MemberCard,
        Unique::StoreCode,
        Unique::MemberCardCode,
        Unique::MemberLinkSecret,
    ];

    /// (PostgreSQL's constraint or index name, SQLite's column list).
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Unique::MemberPhone => ("members_phone", "members.tenant_id, members.phone"),
            Unique::EventId => ("events_pkey", "events.tenant_id, events.event_id"),
            Unique::UserEmail => ("users_email", "users.tenant_id, users.email"),
            Unique::MigrationVersion => ("schema_migrations_pkey", "schema_migrations.version"),
            Unique::MemberCard => ("member_cards_member", "member_cards.member_id"),
            Unique::StoreCode => ("stores_pkey", "stores.tenant_id, stores.code"),
            Unique::MemberCardCode => (
                "member_cards_pkey",
                "member_cards.tenant_id, member_cards.code",
            ),
            Unique::MemberLinkSecret => {
                ("member_link_secrets_pkey", "member_link_secrets.tenant_id")
            }
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
    #[error("not recorded: another event of the same sale was refused")]
    RefusedWithItsGroup,
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
            EventError::RefusedWithItsGroup => "refused_with_its_group",
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
