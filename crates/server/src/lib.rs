//! Patron's HTTP face: a thin shell over the store. Handlers parse the request into domain
//! types, call the store or the journal, and map the answer to JSON.

mod admin;
pub mod auth;
mod error;
pub mod events;
pub mod exports;
mod home;
pub mod imports;
mod members;
mod metrics;
mod openapi;
mod programme;
mod rate;
mod rewards;
mod webhooks;

pub use error::ApiError;
pub use events::{
    parse_page_event, AMOUNT_MAX, ATTRIBUTES_BYTES_MAX, ATTRIBUTES_MAX, POINTS_MAX, QUANTITY_MAX,
};
pub use programme::{dry_run_purchase, DryRun};
pub use rate::RateLimit;
pub use webhooks::{signature as webhook_signature, Dispatcher, DispatcherConfig};

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
    /// The platform operator's token, for `/v1/tenants`; none turns those endpoints off.
    pub platform_token: Option<Arc<str>>,
}

/// Compares secrets in time that does not depend on where they differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// How the server behaves beyond its store and journal.
#[derive(Clone, Default)]
pub struct ServerOptions {
    pub rate_limit: RateLimit,
    pub platform_token: Option<String>,
    /// The web pages (admin, cashier, member page), served beside the API.
    pub pages: Option<Router<AppState>>,
}

/// The whole router: the API, and the web pages when given.
pub fn router(state: AppState, pages: Option<Router<AppState>>) -> Router {
    let (documented, document) =
        utoipa_axum::router::OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
            .merge(events::router())
            .merge(members::router())
            .merge(admin::router())
            .merge(programme::router())
            .merge(rewards::router())
            .merge(imports::router())
            .merge(webhooks::router())
            .split_for_parts();
    Router::new()
        .merge(documented)
        .merge(openapi::router(document))
        .merge(home::router())
        .merge(metrics::router())
        .merge(pages.unwrap_or_default())
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .layer(axum::middleware::from_fn(error::json_payload_too_large))
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
        let options = ServerOptions {
            rate_limit: limit,
            ..ServerOptions::default()
        };
        Application::build_with(store, journal, listen, options).await
    }

    /// As `build`, with every option.
    pub async fn build_with(
        store: Store,
        journal: Journal,
        listen: SocketAddr,
        options: ServerOptions,
    ) -> std::io::Result<Application> {
        let listener = TcpListener::bind(listen).await?;
        let state = AppState {
            store,
            journal,
            keys: Arc::new(auth::KeyCache::default()),
            limiter: Arc::new(rate::RateLimiter::new(options.rate_limit)),
            http: Arc::new(metrics::HttpMetrics::default()),
            platform_token: options.platform_token.map(Arc::from),
        };
        Ok(Application {
            listener,
            router: router(state, options.pages),
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
