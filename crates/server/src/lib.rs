//! Patron's HTTP face: a thin shell over the store. Handlers parse the request into domain
//! types, call the store or the journal, and map the answer to JSON.

mod admin;
pub mod answers;
pub mod auth;
mod campaigns;
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
mod segments;
pub mod throttle;
pub mod tls;
mod webhooks;

pub use error::ApiError;
pub use events::{AMOUNT_MAX, ATTRIBUTES_BYTES_MAX, ATTRIBUTES_MAX, POINTS_MAX, QUANTITY_MAX};
pub use programme::{dry_run_purchase, DryRun};
pub use rate::RateLimit;
pub use webhooks::{
    signature as webhook_signature, targets as webhook_targets, Dispatcher, DispatcherConfig,
};

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
    /// The commands and queries every edge shares (over the same store and journal).
    pub app: patron_app::App,
    pub keys: Arc<auth::KeyCache>,
    pub limiter: Arc<rate::RateLimiter>,
    pub http: Arc<metrics::HttpMetrics>,
    /// The platform operator's token, for `/v1/tenants`; none turns those endpoints off.
    pub platform_token: Option<Arc<str>>,
    /// Webhooks may be subscribed to loopback, private and link-local addresses.
    pub webhooks_allow_private_targets: bool,
    /// Staff sign-in throttling by account and address.
    pub throttle: Arc<throttle::SignInThrottle>,
    /// Peers whose `X-Forwarded-For` and `X-Forwarded-Proto` are believed.
    pub trusted_proxies: Arc<[std::net::IpAddr]>,
    /// This server serves HTTPS itself.
    pub tls: bool,
    /// The site's address as visitors reach it (`https://loyalty.example`, no trailing `/`):
    /// links handed to members start with it, never with a request's `Host`.
    pub public_url: Arc<str>,
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
    /// Accept webhook URLs at loopback, private and link-local addresses (tests, closed
    /// networks); the dispatcher has its own switch (`DispatcherConfig`) for sending to them.
    pub webhooks_allow_private_targets: bool,
    /// Staff sign-in throttling.
    pub sign_in_limits: throttle::SignInLimits,
    /// Peers (reverse proxies) whose forwarded client address and scheme are believed.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// The site's public address (see [`parse_public_url`]); none: derived from the bound
    /// address, which suits the demo on one machine.
    pub public_url: Option<String>,
    /// Serve HTTPS with this certificate and key.
    pub tls: Option<tls::TlsFiles>,
    /// The key that seals the tenants' messaging accounts at rest; none: accounts cannot be
    /// kept.
    pub secret_key: Option<[u8; 32]>,
    /// How often the dispatcher starts due campaigns and sends due messages; none: every
    /// second.
    pub dispatch_interval: Option<std::time::Duration>,
}

/// A public address as configured: `http://` or `https://`, a host, maybe a port and a path
/// prefix, no query; answered without its trailing `/`.
pub fn parse_public_url(text: &str) -> Result<String, String> {
    let text = text.trim().trim_end_matches('/');
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
        .ok_or("must start with http:// or https://")?;
    let host = rest.split('/').next().unwrap_or_default();
    let acceptable = |c: char| c.is_ascii_alphanumeric() || "-._:[]/~%".contains(c);
    if host.is_empty() || !rest.chars().all(acceptable) {
        return Err("must be http(s)://host[:port][/path] with no query or fragment".into());
    }
    Ok(text.to_owned())
}

/// The public address of a server bound to `bound` when none is configured: its own address,
/// or the loopback one when bound to every interface (a link to `0.0.0.0` goes nowhere).
fn derived_public_url(bound: SocketAddr, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    let address = if bound.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), bound.port())
    } else {
        bound
    };
    format!("{scheme}://{address}")
}

/// The API's routes and their OpenAPI document.
fn documented() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    utoipa_axum::router::OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(events::router())
        .merge(members::router())
        .merge(admin::router())
        .merge(programme::router())
        .merge(rewards::router())
        .merge(imports::router())
        .merge(webhooks::router())
        .merge(segments::router())
        .merge(campaigns::router())
        .split_for_parts()
}

/// The whole router: the API, and the web pages when given.
pub fn router(state: AppState, pages: Option<Router<AppState>>) -> Router {
    let (documented, document) = documented();
    Router::new()
        .merge(documented)
        .merge(openapi::router(document))
        .merge(home::router())
        .merge(metrics::router())
        .merge(campaigns::hooks())
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
    tls: Option<tls::Acceptor>,
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
        let acceptor = options.tls.as_ref().map(tls::acceptor).transpose()?;
        let listener = TcpListener::bind(listen).await?;
        let public_url = match &options.public_url {
            Some(text) => parse_public_url(text)
                .map_err(|error| std::io::Error::other(format!("public_url: {error}")))?,
            None => derived_public_url(listener.local_addr()?, acceptor.is_some()),
        };
        let mut app = patron_app::App::new(store.clone(), journal.clone());
        if let Some(key) = options.secret_key {
            app = app.with_secret_key(key);
        }
        if options.webhooks_allow_private_targets {
            app = app.allowing_local_targets();
        }
        tokio::spawn(app.segments_refresher());
        tokio::spawn(
            app.dispatcher(
                options
                    .dispatch_interval
                    .unwrap_or(std::time::Duration::from_secs(1)),
            ),
        );
        let state = AppState {
            app,
            store,
            journal,
            keys: Arc::new(auth::KeyCache::default()),
            limiter: Arc::new(rate::RateLimiter::new(options.rate_limit)),
            http: Arc::new(metrics::HttpMetrics::default()),
            platform_token: options.platform_token.map(Arc::from),
            webhooks_allow_private_targets: options.webhooks_allow_private_targets,
            throttle: Arc::new(throttle::SignInThrottle::new(options.sign_in_limits)),
            trusted_proxies: options.trusted_proxies.into(),
            tls: acceptor.is_some(),
            public_url: public_url.into(),
        };
        Ok(Application {
            listener,
            router: router(state, options.pages),
            tls: acceptor,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Whether it serves HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        match self.tls {
            Some(acceptor) => tls::serve(self.listener, self.router, acceptor, shutdown).await,
            None => {
                axum::serve(
                    self.listener,
                    self.router
                        .into_make_service_with_connect_info::<SocketAddr>(),
                )
                .with_graceful_shutdown(shutdown)
                .await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_addresses_are_plain_http_or_https_urls() {
        assert_eq!(
            parse_public_url(" https://loyalty.example/ ").as_deref(),
            Ok("https://loyalty.example")
        );
        assert!(parse_public_url("http://192.168.1.20:8080/patron").is_ok());
        assert!(parse_public_url("loyalty.example").is_err());
        assert!(parse_public_url("javascript:alert(1)").is_err());
        assert!(parse_public_url("https://").is_err());
        assert!(parse_public_url("https://user@evil.example").is_err());
        assert!(parse_public_url("https://loyalty.example/?next=x").is_err());
        assert!(parse_public_url("https://loyalty.example/#x").is_err());
    }

    /// Every schema the document names is in it (the answer types are the server's own,
    /// each registered under the name clients know).
    #[test]
    fn every_schema_the_document_refers_to_is_in_it() {
        fn refs(value: &serde_json::Value, found: &mut Vec<String>) {
            match value {
                serde_json::Value::Object(map) => {
                    for (key, value) in map {
                        match (key.as_str(), value.as_str()) {
                            ("$ref", Some(target)) => found.push(target.to_owned()),
                            _ => refs(value, found),
                        }
                    }
                }
                serde_json::Value::Array(items) => items.iter().for_each(|item| refs(item, found)),
                _ => {}
            }
        }
        let document = serde_json::to_value(documented().1).unwrap();
        let mut found = Vec::new();
        refs(&document, &mut found);
        assert!(found.len() > 20, "{found:?}");
        for target in found {
            let name = target
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("{target}"));
            assert!(
                document["components"]["schemas"].get(name).is_some(),
                "{target} is named but not in the document"
            );
        }
        for name in [
            "EventResult",
            "VoucherView",
            "MemberView",
            "HoldingView",
            "HistoryEntry",
        ] {
            assert!(
                document["components"]["schemas"].get(name).is_some(),
                "{name}"
            );
        }
    }

    #[test]
    fn a_derived_public_address_never_names_every_interface() {
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert_eq!(derived_public_url(any, false), "http://127.0.0.1:8080");
        let lan: SocketAddr = "192.168.1.20:8443".parse().unwrap();
        assert_eq!(derived_public_url(lan, true), "https://192.168.1.20:8443");
    }
}
