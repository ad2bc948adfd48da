//! One error type for the API: every error is a JSON body `{code, message, field?}` with a
//! 4xx status; a 500 logs its detail and shows none of it.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use patron_app::{AppError, ErrorKind};
use patron_store::{EventError, StoreError};
use serde::Serialize;

/// Every error: a stable `code`, a message for people, and the request field at fault.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// An error answered to the client.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
    /// Sent as `Retry-After` (rate limits).
    pub retry_after_seconds: Option<u64>,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: &str,
        message: impl Into<String>,
        field: Option<&str>,
    ) -> ApiError {
        ApiError {
            status,
            body: ErrorBody {
                code: code.to_owned(),
                message: message.into(),
                field: field.map(str::to_owned),
            },
            retry_after_seconds: None,
        }
    }

    /// A request field is wrong.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        let field = field.into();
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body: ErrorBody {
                code: "invalid_field".to_owned(),
                message: message.into(),
                field: Some(field),
            },
            retry_after_seconds: None,
        }
    }

    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
            None,
        )
    }

    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!(%detail, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
            None,
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        if let Some(seconds) = self.retry_after_seconds {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(seconds),
            );
        }
        response
    }
}

impl From<AppError> for ApiError {
    /// The one place an application error becomes an HTTP answer.
    fn from(error: AppError) -> ApiError {
        let status = match error.kind {
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError {
            status,
            body: ErrorBody {
                code: error.code,
                message: error.message,
                field: error.field,
            },
            retry_after_seconds: None,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        ApiError::from(AppError::from(error))
    }
}

impl From<EventError> for ApiError {
    fn from(error: EventError) -> ApiError {
        ApiError::from(AppError::from(error))
    }
}

/// Answers the body limit's plain-text 413 (axum's, when a body passes
/// [`crate::BODY_BYTES_MAX`]) as the JSON error body `payload_too_large`, as every error is.
pub async fn json_payload_too_large(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/json"));
    if response.status() != StatusCode::PAYLOAD_TOO_LARGE || is_json {
        return response;
    }
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the body is larger than {} bytes", crate::BODY_BYTES_MAX),
        None,
    )
    .into_response()
}

/// Parses a JSON body, naming the field at fault when it does not fit.
pub fn parse_json<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let message = error.into_inner().to_string();
        let named = unknown_field_name(&message).or_else(|| missing_field_name(&message));
        let field = match (path.as_str(), named) {
            (".", named) => named,
            (_, Some(named)) if message.starts_with("missing field") => {
                Some(format!("{path}.{named}"))
            }
            _ => Some(path),
        };
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body: ErrorBody {
                code: "invalid_field".to_owned(),
                message,
                field,
            },
            retry_after_seconds: None,
        }
    })
}

/// serde reports an unknown field in its message: "unknown field `x`, expected …".
fn unknown_field_name(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest[..rest.find('`')?].to_owned())
}

/// serde reports a missing field in its message: "missing field `x`".
fn missing_field_name(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    Some(rest[..rest.find('`')?].to_owned())
}

/// Reads a body as JSON, with a clear error when it is not.
pub fn body_json(bytes: &[u8]) -> Result<serde_json::Value, ApiError> {
    serde_json::from_slice(bytes).map_err(|error| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("body is not JSON: {error}"),
            None,
        )
    })
}

/// Parses an optional RFC 3339 instant (with its offset) given in `field`.
pub fn parse_instant(
    value: Option<String>,
    field: &str,
) -> Result<Option<patron_core::time::Timestamp>, ApiError> {
    value
        .map(|text| {
            chrono::DateTime::parse_from_rfc3339(&text)
                .map(|at| at.with_timezone(&chrono::Utc))
                .map_err(|_| {
                    ApiError::invalid(
                        field,
                        "must be RFC 3339 with an offset, e.g. 2026-11-23T09:30:00+07:00",
                    )
                })
        })
        .transpose()
}
