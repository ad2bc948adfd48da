//! One error for every command: a stable `code`, a message for people, the field at fault and
//! what kind of failure it is. The API turns the kind into an HTTP status, the web into a
//! form's message; neither decides again what went wrong.

use patron_store::{EventError, StoreError};

/// What kind of failure: the API's status follows from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The caller may not do this (403).
    Forbidden,
    /// What it names does not exist for the caller's tenant (404).
    NotFound,
    /// A value is wrong or a rule refuses it (422).
    Invalid,
    /// It clashes with what is already recorded (409).
    Conflict,
    /// The journal is stopping; try again (503).
    Unavailable,
    /// Our fault; the detail is logged, never shown (500).
    Internal,
}

/// Why a command was refused.
#[derive(Clone, Debug, PartialEq)]
pub struct AppError {
    pub kind: ErrorKind,
    /// Stable, for machines: `forbidden`, `invalid_field`, `points_exceed_bill`, …
    pub code: String,
    pub message: String,
    /// The field at fault, in the API's spelling (`amount`, `member.phone`).
    pub field: Option<String>,
    /// The journal's own answer, when the journal refused the event.
    pub event: Option<EventError>,
}

impl AppError {
    pub fn new(
        kind: ErrorKind,
        code: &str,
        message: impl Into<String>,
        field: Option<&str>,
    ) -> AppError {
        AppError {
            kind,
            code: code.to_owned(),
            message: message.into(),
            field: field.map(str::to_owned),
            event: None,
        }
    }

    pub fn forbidden(message: impl Into<String>, field: Option<&str>) -> AppError {
        AppError::new(ErrorKind::Forbidden, "forbidden", message, field)
    }

    /// A value is wrong.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> AppError {
        AppError {
            kind: ErrorKind::Invalid,
            code: "invalid_field".to_owned(),
            message: message.into(),
            field: Some(field.into()),
            event: None,
        }
    }

    pub fn not_found(what: &str) -> AppError {
        AppError::new(
            ErrorKind::NotFound,
            "not_found",
            format!("{what} not found"),
            None,
        )
    }

    /// Logs `detail` and shows none of it.
    pub fn internal(detail: impl std::fmt::Display) -> AppError {
        tracing::error!(%detail, "internal error");
        AppError::new(ErrorKind::Internal, "internal", "internal error", None)
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.field {
            Some(field) => write!(formatter, "{} ({field}): {}", self.code, self.message),
            None => write!(formatter, "{}: {}", self.code, self.message),
        }
    }
}

impl std::error::Error for AppError {}

impl From<StoreError> for AppError {
    fn from(error: StoreError) -> AppError {
        match error {
            StoreError::NotFound { what } => AppError::not_found(what),
            StoreError::Invalid { field, message } => AppError::invalid(field, message),
            StoreError::Conflict { what } => AppError::new(
                ErrorKind::Conflict,
                "conflict",
                format!("{what} already exists"),
                None,
            ),
            other if other.is_unique_violation() => {
                AppError::new(ErrorKind::Conflict, "conflict", "already exists", None)
            }
            other => AppError::internal(other),
        }
    }
}

impl From<EventError> for AppError {
    fn from(error: EventError) -> AppError {
        let kind = match &error {
            EventError::Rejected(_)
            | EventError::UnknownStore
            | EventError::NoProgramme
            | EventError::AmountAboveMaximum { .. }
            | EventError::OriginalNotPurchase
            | EventError::RefusedWithItsGroup => ErrorKind::Invalid,
            EventError::OtherStore { .. } => ErrorKind::Forbidden,
            EventError::ExistsWithDifferentBody
            | EventError::PhoneTaken
            | EventError::MemberQuarantined => ErrorKind::Conflict,
            EventError::MemberNotFound
            | EventError::OriginalNotFound
            | EventError::RewardNotFound
            | EventError::VoucherNotFound
            | EventError::TenantNotFound => ErrorKind::NotFound,
            EventError::Unavailable => ErrorKind::Unavailable,
            EventError::Database(detail) => {
                let mut internal = AppError::internal(detail);
                internal.event = Some(error);
                return internal;
            }
        };
        AppError {
            kind,
            code: error.code().to_owned(),
            message: error.to_string(),
            field: error.field().map(str::to_owned),
            event: Some(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_refusals_keep_their_code_field_and_kind() {
        let error = AppError::from(EventError::AmountAboveMaximum { maximum: 10 });
        assert_eq!(error.kind, ErrorKind::Invalid);
        assert_eq!(error.code, "amount_above_maximum");
        assert_eq!(error.field.as_deref(), Some("amount"));
        assert_eq!(
            error.event,
            Some(EventError::AmountAboveMaximum { maximum: 10 })
        );
        let other_store = AppError::from(EventError::OtherStore { field: "store" });
        assert_eq!(other_store.kind, ErrorKind::Forbidden);
        assert_eq!(
            AppError::from(EventError::PhoneTaken).kind,
            ErrorKind::Conflict
        );
        assert_eq!(
            AppError::from(EventError::VoucherNotFound).kind,
            ErrorKind::NotFound
        );
        let hidden = AppError::from(EventError::Database("password=secret".into()));
        assert_eq!(hidden.kind, ErrorKind::Internal);
        assert!(!hidden.message.contains("secret"));
    }

    #[test]
    fn store_errors_become_kinds() {
        let missing = AppError::from(StoreError::NotFound { what: "member" });
        assert_eq!(
            (
                missing.kind,
                missing.code.as_str(),
                missing.message.as_str()
            ),
            (ErrorKind::NotFound, "not_found", "member not found")
        );
        let invalid = AppError::from(StoreError::invalid("phone", "taken"));
        assert_eq!(invalid.kind, ErrorKind::Invalid);
        assert_eq!(invalid.field.as_deref(), Some("phone"));
        let clash = AppError::from(StoreError::Conflict { what: "store" });
        assert_eq!(clash.kind, ErrorKind::Conflict);
        assert_eq!(
            AppError::from(StoreError::Config("boom".into())).kind,
            ErrorKind::Internal
        );
    }
}
