//! `/healthz`: the process is up (readiness is `/readyz`).

use crate::AppState;
use axum::routing::get;
use axum::Router;

pub fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(health))
}

async fn health() -> &'static str {
    "ok"
}
