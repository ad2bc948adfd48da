//! `/healthz` and a plain front page that says what is running and where the API is.

use crate::AppState;
use axum::extract::State;
use axum::response::Html;
use axum::routing::get;
use axum::Router;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(health))
        .route("/", get(front_page))
}

async fn health() -> &'static str {
    "ok"
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn front_page(State(state): State<AppState>) -> Html<String> {
    let check = state.store.check_ledger().await.ok();
    let (members, events, transactions) = check
        .map(|check| (check.members, check.events, check.transactions))
        .unwrap_or_default();
    let backend = format!("{:?}", state.store.backend());
    Html(format!(
        "<!doctype html><html lang=\"vi\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>Patron</title><style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}}\
         code{{background:#f3f3f3;padding:.1rem .3rem}}</style></head><body>\
         <h1>Patron</h1><p>Chương trình khách hàng thân thiết · loyalty engine</p>\
         <ul><li>Database: {}</li><li>Members: {members}</li><li>Events: {events}</li><li>Ledger transactions: {transactions}</li></ul>\
         <p>API: <code>POST /v1/events</code>, <code>GET /v1/members?phone=…</code>, <code>GET /v1/rewards</code> \
         with <code>Authorization: Bearer &lt;API key&gt;</code>. See README.md.</p></body></html>",
        escape(&backend)
    ))
}
