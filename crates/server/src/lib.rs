//! Patron's HTTP face: a thin shell over the store. Handlers parse the request into domain
//! types, call the store or the journal, and map the answer to JSON.

mod auth;
mod error;
mod events;
mod home;
mod members;
mod metrics;
mod openapi;
mod rate;
mod rewards;

pub use error::ApiError;
pub use events::{ATTRIBUTES_BYTES_MAX, ATTRIBUTES_MAX};
pub use rate::RateLimit;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use patron_store::{Journal, Store};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use utoipa::OpenApi;

/// Largest request body accepted, in bytes.
pub const BODY_BYTES_MAX: usize = 1024 * 1024;
/// Most events in one batch request.
pub const BATCH_EVENTS_MAX: usize = 1000;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub journal: Journal,
    pub keys: Arc<auth::KeyCache>,
    pub limiter: Arc<rate::RateLimiter>,
    pub http: Arc<metrics::HttpMetrics>,
}

/// The whole router.
pub fn router(state: AppState) -> Router {
    let (documented, document) =
        utoipa_axum::router::OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
            .split_for_parts();
    Router::new()
        .merge(documented)
        .merge(openapi::router(document))
        .merge(home::router())
        .merge(events::router())
        .merge(members::router())
        .merge(rewards::router())
        .merge(metrics::router())
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .with_state(state)
}

/// A bound server, ready to run; port 0 picks a free port (tests).
pub struct Application {
    listener: TcpListener,
    router: Router,
}

impl Application {
    pub async fn build(
        store: Store,
        journal: Journal,
        listen: SocketAddr,
    ) -> std::io::Result<Application> {
        Application::build_with_limit(store, journal, listen, RateLimit::default()).await
    }

    /// As `build`, with a rate limit per API key.
    pub async fn build_with_limit(
        store: Store,
        journal: Journal,
        listen: SocketAddr,
        limit: RateLimit,
    ) -> std::io::Result<Application> {
        let listener = TcpListener::bind(listen).await?;
        let state = AppState {
            store,
            journal,
            keys: Arc::new(auth::KeyCache::default()),
            limiter: Arc::new(rate::RateLimiter::new(limit)),
            http: Arc::new(metrics::HttpMetrics::default()),
        };
        Ok(Application {
            listener,
            router: router(state),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
    }
}
