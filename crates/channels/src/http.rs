//! The HTTP plumbing the provider adapters share: one client with timeouts, one way of
//! turning transport trouble, 429 and 5xx into a [`SendFailure`], and lenient JSON reading
//! (providers send numbers as strings and strings as numbers).

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::Value;

use crate::channel::{FailureReason, SendFailure};

/// The default limit on one request, connection included.
pub(crate) const TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);

/// A provider's answer is a few hundred bytes; anything past this is not one.
const RESPONSE_BYTES_MAX: usize = 64 * 1024;

pub(crate) fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .build()
        // Building fails only when the TLS backend cannot start, which no input can cause.
        .expect("the HTTP client builds with rustls")
}

/// An answer that came back with a status the adapter should read itself.
pub(crate) struct Reply {
    pub status: StatusCode,
    pub body: Value,
}

/// Sends the request and reads a JSON answer. Transport errors, 5xx and 429 become failures
/// here; any other status is left to the adapter, with the body as JSON when it is JSON
/// (`Value::Null` when it is not).
pub(crate) async fn exchange(request: reqwest::RequestBuilder) -> Result<Reply, SendFailure> {
    let mut response = request.send().await.map_err(transport_failure)?;
    let status = response.status();
    if status == StatusCode::TOO_MANY_REQUESTS {
        let retry_after_seconds = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| retry_after_seconds(value, Utc::now()));
        return Err(SendFailure::new(
            FailureReason::RateLimited {
                retry_after_seconds,
            },
            true,
            status.as_str(),
            "the provider asks us to slow down",
        ));
    }
    if status.is_server_error() {
        return Err(SendFailure::unavailable(
            status.as_str(),
            format!("the provider answered {status}"),
        ));
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport_failure)? {
        if bytes.len() + chunk.len() > RESPONSE_BYTES_MAX {
            return Err(SendFailure::new(
                FailureReason::Other,
                false,
                status.as_str(),
                format!("the provider's answer is longer than {RESPONSE_BYTES_MAX} bytes"),
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok(Reply { status, body })
}

/// A reply whose body is not the provider's JSON: say what the status says.
pub(crate) fn unexpected_reply(reply: &Reply) -> SendFailure {
    let reason = match reply.status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => FailureReason::Unauthorized,
        _ => FailureReason::Other,
    };
    SendFailure::new(
        reason,
        false,
        reply.status.as_str(),
        format!("unexpected answer ({}): {}", reply.status, reply.body),
    )
}

fn transport_failure(error: reqwest::Error) -> SendFailure {
    // Whether or not the request reached the provider, resending is the caller's call; the
    // tracking id lets providers that de-duplicate drop the second copy.
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "transport error"
    };
    SendFailure::unavailable("", format!("{what}: {error}"))
}

/// `Retry-After` is either seconds or an HTTP date (RFC 9110 §10.2.3).
pub(crate) fn retry_after_seconds(value: &str, now: DateTime<Utc>) -> Option<u64> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(seconds);
    }
    let when = DateTime::parse_from_rfc2822(value).ok()?;
    let seconds = (when.with_timezone(&Utc) - now).num_seconds();
    Some(seconds.max(0).unsigned_abs())
}

/// A field that should be text, given as a string or a number.
pub(crate) fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// A field that should be a whole number, given as a number or a string ("90000", "1.0").
pub(crate) fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number
            .as_i64()
            .or_else(|| number.as_f64().map(|float| float.round() as i64)),
        Value::String(text) => {
            let text = text.trim();
            text.parse::<i64>()
                .ok()
                .or_else(|| text.parse::<f64>().ok().map(|float| float.round() as i64))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(retry_after_seconds("120", now), Some(120));
        assert_eq!(
            retry_after_seconds("Thu, 01 Jan 2026 00:00:30 GMT", now),
            Some(30)
        );
        assert_eq!(
            retry_after_seconds("Wed, 31 Dec 2025 23:00:00 GMT", now),
            Some(0)
        );
        assert_eq!(retry_after_seconds("soon", now), None);
    }

    #[test]
    fn numbers_and_strings_are_read_either_way() {
        assert_eq!(integer(&json!("90000")), Some(90000));
        assert_eq!(integer(&json!(-124)), Some(-124));
        assert_eq!(integer(&json!("1.5e3")), Some(1500));
        assert_eq!(integer(&json!(640.4)), Some(640));
        assert_eq!(integer(&json!(null)), None);
        assert_eq!(text(&json!(123)), Some("123".to_owned()));
        assert_eq!(text(&json!("abc")), Some("abc".to_owned()));
        assert_eq!(text(&json!([])), None);
    }
}
