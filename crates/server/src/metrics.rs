//! `/metrics` in Prometheus' text format (request latency per route, events, journal batch
//! sizes) and `/readyz`. Hand-written: a few counters do not need a metrics framework.

use crate::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use patron_store::journal::BATCH_SIZE_BUCKETS;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::Instant;
use tracing::Instrument;

/// Upper bounds of the latency histogram's buckets, in seconds.
const LATENCY_BUCKETS_SECONDS: [f64; 10] =
    [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

#[derive(Default)]
struct Histogram {
    /// Requests at most `LATENCY_BUCKETS_SECONDS[i]` (not cumulative), and the rest.
    buckets: [u64; LATENCY_BUCKETS_SECONDS.len() + 1],
    sum_seconds: f64,
    count: u64,
}

/// Latency per (method, route), and responses per (method, route, status).
#[derive(Default)]
pub struct HttpMetrics {
    latency: Mutex<BTreeMap<(String, String), Histogram>>,
    responses: Mutex<BTreeMap<(String, String, u16), u64>>,
}

impl HttpMetrics {
    fn record(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let key = (method.to_owned(), route.to_owned());
        {
            let mut latency = self.latency.lock().expect("metrics lock");
            let histogram = latency.entry(key.clone()).or_default();
            let bucket = LATENCY_BUCKETS_SECONDS
                .iter()
                .position(|bound| seconds <= *bound)
                .unwrap_or(LATENCY_BUCKETS_SECONDS.len());
            histogram.buckets[bucket] += 1;
            histogram.sum_seconds += seconds;
            histogram.count += 1;
        }
        *self
            .responses
            .lock()
            .expect("metrics lock")
            .entry((key.0, key.1, status))
            .or_default() += 1;
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/readyz", get(ready))
}

/// The header that carries a request's id, in and out.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Middleware: times every routed request and gives it an id for the logs.
pub async fn track(
    State(state): State<AppState>,
    route: Option<MatchedPath>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    // Every log line of the request carries its id (the caller's `X-Request-Id` if sane) and,
    // once authenticated, its tenant; the id is echoed in the response.
    let request_id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|id| !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %method,
        route = route.as_ref().map(|route| route.as_str()).unwrap_or("-"),
        tenant_id = tracing::field::Empty,
    );
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    span.in_scope(|| {
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        if status >= 500 {
            tracing::error!(status, elapsed_ms, "request failed");
        } else {
            tracing::debug!(status, elapsed_ms, "request");
        }
    });
    if let Ok(value) = axum::http::HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    if let Some(route) = route {
        state.http.record(
            &method,
            route.as_str(),
            response.status().as_u16(),
            started.elapsed().as_secs_f64(),
        );
    }
    response
}

async fn ready(State(state): State<AppState>) -> Response {
    let database = state
        .store
        .db()
        .fetch("SELECT 1 AS one", vec![])
        .await
        .is_ok();
    if database && state.journal.is_running() {
        return (StatusCode::OK, "ready").into_response();
    }
    (StatusCode::SERVICE_UNAVAILABLE, "not ready").into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP patron_http_request_duration_seconds Time to answer a request."
    );
    let _ = writeln!(out, "# TYPE patron_http_request_duration_seconds histogram");
    for ((method, route), histogram) in state.http.latency.lock().expect("metrics lock").iter() {
        let labels = format!("method=\"{method}\",route=\"{route}\"");
        let mut cumulative = 0;
        for (index, bound) in LATENCY_BUCKETS_SECONDS.iter().enumerate() {
            cumulative += histogram.buckets[index];
            let _ = writeln!(out, "patron_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(
            out,
            "patron_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
            histogram.count
        );
        let _ = writeln!(
            out,
            "patron_http_request_duration_seconds_sum{{{labels}}} {}",
            histogram.sum_seconds
        );
        let _ = writeln!(
            out,
            "patron_http_request_duration_seconds_count{{{labels}}} {}",
            histogram.count
        );
    }
    let _ = writeln!(out, "# TYPE patron_http_responses_total counter");
    for ((method, route, status), count) in
        state.http.responses.lock().expect("metrics lock").iter()
    {
        let _ = writeln!(out, "patron_http_responses_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {count}");
    }
    let journal = state.journal.metrics();
    let _ = writeln!(out, "# TYPE patron_events_total counter");
    let accepted = journal.events_accepted.load(Ordering::Relaxed);
    let rejected = journal.events_rejected.load(Ordering::Relaxed);
    let _ = writeln!(
        out,
        "patron_events_total{{outcome=\"accepted\"}} {accepted}"
    );
    let _ = writeln!(
        out,
        "patron_events_total{{outcome=\"rejected\"}} {rejected}"
    );
    let _ = writeln!(out, "# TYPE patron_journal_batch_size histogram");
    let mut cumulative = 0;
    for (index, bound) in BATCH_SIZE_BUCKETS.iter().enumerate() {
        cumulative += journal.batch_sizes[index].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "patron_journal_batch_size_bucket{{le=\"{bound}\"}} {cumulative}"
        );
    }
    let batches = journal.batches.load(Ordering::Relaxed);
    let _ = writeln!(
        out,
        "patron_journal_batch_size_bucket{{le=\"+Inf\"}} {batches}"
    );
    let _ = writeln!(out, "patron_journal_batch_size_sum {}", accepted + rejected);
    let _ = writeln!(out, "patron_journal_batch_size_count {batches}");
    crate::webhooks::render_metrics(&state.store, &mut out).await;
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        out,
    )
        .into_response()
}
