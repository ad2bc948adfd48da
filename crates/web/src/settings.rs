//! (to be built)

use axum::Router;
use patron_server::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
}
