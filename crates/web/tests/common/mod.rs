//! What the web tests share: a served site on a fresh database with a café tenant and one
//! staff user per role; an HTTP client that keeps cookies (for page tests without a browser);
//! and a real headless Chromium driven over WebDriver (for the flows a person clicks through).
#![allow(dead_code)]

use fantoccini::{Client, ClientBuilder, Locator};
use patron_core::programme::ProgrammeDefinition;
use patron_core::TenantId;
use patron_store::admin::{KeyScope, NewTenant};
use patron_store::audit::Actor;
use patron_store::users::Role;
use patron_store::{Journal, JournalConfig, Store};
use serde_json::json;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Every test user's password.
pub const PASSWORD: &str = "correct horse battery";

pub use patron_testkit::fresh_store;

/// The café's programme: 1 point per 10,000đ, cake bonus, Gold at 5,000,000đ spent.
pub fn programme() -> ProgrammeDefinition {
    serde_json::from_value(json!({
        "amount_per_point": 10000, "point_value": 1000, "return_window_days": 0,
        "expiry": {"kind": "days", "days": 365},
        "rules": [{"id": "cake", "name": "Cake", "when": "'cake' in event.categories",
                   "points": "event.quantity_by_category['cake'] * 10"}],
        "tiers": [{"code": "member", "name": "Member", "threshold": 0},
                  {"code": "gold", "name": "Gold", "threshold": 5000000, "multiplier_percent": 150}],
        "qualification": {"metric": "spend", "window": "rolling_12_months", "grace_days": 30}
    }))
    .unwrap()
}

/// A served site with one café tenant.
pub struct Site {
    pub address: String,
    pub store: Store,
    pub journal: Journal,
    pub tenant: TenantId,
    /// An admin API key of the tenant, for setting things up through the API.
    pub key: String,
}

/// The e-mail of the test user with `role` (each role has one).
pub fn email(role: Role) -> String {
    format!("{}@cafe.test", role.as_str())
}

impl Site {
    /// Starts the API and the pages on port 0, over a fresh database with a tenant, store
    /// `HN01`, the café programme (in force for a year back), and a user per staff role.
    pub async fn start(postgres: bool) -> Site {
        // The tests' webhook receivers (`Inbox`) are on 127.0.0.1.
        Site::start_allowing_private_webhooks(postgres, true).await
    }

    /// As `start`, with the server's `webhooks_allow_private_targets` given.
    pub async fn start_allowing_private_webhooks(postgres: bool, allow: bool) -> Site {
        let options = patron_server::ServerOptions {
            webhooks_allow_private_targets: allow,
            ..patron_server::ServerOptions::default()
        };
        Site::start_with(postgres, options).await
    }

    /// As `start`, with server `options` (the pages are added; webhooks to 127.0.0.1 only if
    /// `options` allow them).
    pub async fn start_with(postgres: bool, options: patron_server::ServerOptions) -> Site {
        let store = fresh_store(postgres).await;
        let tenant = store
            .create_tenant(&NewTenant::vietnamese("Cà Phê Thử"))
            .await
            .unwrap();
        store
            .create_store(tenant, "HN01", "Hà Nội 1")
            .await
            .unwrap();
        store
            .publish_programme(
                tenant,
                programme(),
                chrono::Utc::now() - chrono::Duration::days(365),
            )
            .await
            .unwrap();
        for role in [
            Role::Owner,
            Role::Manager,
            Role::Marketer,
            Role::Cashier,
            Role::Viewer,
        ] {
            store
                .create_user(
                    tenant,
                    &email(role),
                    &format!("Test {}", role.as_str()),
                    role,
                    PASSWORD,
                    &Actor::cli(),
                )
                .await
                .unwrap();
        }
        let key = store
            .create_api_key(tenant, "test", KeyScope::Admin)
            .await
            .unwrap();
        let (journal, _) = Journal::start(store.clone(), JournalConfig::default());
        let options = patron_server::ServerOptions {
            pages: Some(patron_web::router()),
            ..options
        };
        let application = patron_server::Application::build_with(
            store.clone(),
            journal.clone(),
            "127.0.0.1:0".parse().unwrap(),
            options,
        )
        .await
        .unwrap();
        let address = format!("http://{}", application.local_addr());
        tokio::spawn(application.run(std::future::pending()));
        Site {
            address,
            store,
            journal,
            tenant,
            key,
        }
    }

    /// Calls the JSON API with the admin key; returns status and body.
    pub async fn api(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let http = reqwest::Client::new();
        let mut request = http
            .request(method.parse().unwrap(), format!("{}{path}", self.address))
            .bearer_auth(&self.key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        )
    }

    /// A cookie-keeping HTTP client signed in as the user with `role`.
    pub async fn signed_in(&self, role: Role) -> Pages {
        let pages = Pages::new(&self.address);
        let (status, _) = pages
            .post_form(
                "/admin/login",
                &[
                    ("email", &email(role)),
                    ("password", PASSWORD),
                    ("next", ""),
                ],
            )
            .await;
        assert_eq!(status, 200, "signing in as {}", role.as_str());
        pages
    }
}

/// Pages fetched over plain HTTP with a cookie jar (redirects followed).
pub struct Pages {
    pub address: String,
    pub http: reqwest::Client,
}

impl Pages {
    pub fn new(address: &str) -> Pages {
        Pages {
            address: address.to_owned(),
            http: reqwest::Client::builder()
                .cookie_store(true)
                .build()
                .unwrap(),
        }
    }

    /// GET: status and HTML.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let response = self
            .http
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// POST a form: status and HTML (after redirects).
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
        let response = self
            .http
            .post(format!("{}{path}", self.address))
            .form(fields)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }
}

/// The value of the hidden `csrf` field in a page.
pub fn csrf_in(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).expect("the page has a csrf field") + marker.len();
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A headless Chromium driven through its own chromedriver, closed when dropped.
pub struct Browser {
    pub client: Client,
    driver: Child,
    profile: std::path::PathBuf,
}

/// A phone's width, the cashier screen and member page's smallest target.
pub const PHONE: (u32, u32) = (375, 812);
/// A laptop.
pub const DESKTOP: (u32, u32) = (1280, 900);

impl Browser {
    /// Starts chromedriver and a fresh headless Chromium of `size` (width, height).
    pub async fn start(size: (u32, u32)) -> Browser {
        let port = free_port();
        let driver = Command::new(
            std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into()),
        )
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver runs (apt-get install chromium chromium-driver)");
        let profile =
            std::env::temp_dir().join(format!("patron-chromium-{}", uuid::Uuid::now_v7()));
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "prefs": {"intl.accept_languages": "vi-VN,vi"},
                "binary": std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update",
                    "--no-first-run", "--lang=vi",
                    format!("--window-size={},{}", size.0, size.1),
                    format!("--user-data-dir={}", profile.display()),
                ]
            }
        });
        let mut capabilities = capabilities.as_object().unwrap().clone();
        // Headless Chromium keeps windows at least 500 px wide; a phone's width is emulated.
        if size.0 < 500 {
            capabilities["goog:chromeOptions"]["mobileEmulation"] = json!({
                "deviceMetrics": {"width": size.0, "height": size.1, "pixelRatio": 1.0}
            });
        }
        let mut last_error = None;
        for _ in 0..100 {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(client) => {
                    return Browser {
                        client,
                        driver,
                        profile,
                    }
                }
                Err(error) => {
                    last_error = Some(error);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        panic!("no WebDriver session: {last_error:?}");
    }

    pub async fn goto(&self, address: &str) {
        self.client.goto(address).await.unwrap();
    }

    /// Signs in on the staff login page as the site's user with `role`.
    pub async fn sign_in(&self, site: &Site, role: Role) {
        self.goto(&format!("{}/admin/login", site.address)).await;
        self.fill("input[name=email]", &email(role)).await;
        self.fill("input[name=password]", PASSWORD).await;
        self.click("form button[type=submit]").await;
        self.wait_for_path_not("/admin/login").await;
    }

    /// Types `text` into the field at `css`, replacing what was there.
    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.client.find(Locator::Css(css)).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    pub async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|error| panic!("{css}: {error}"))
            .click()
            .await
            .unwrap();
    }

    /// The text of the first element at `css`, waiting up to 5 s for it to appear. An element
    /// the page replaced between finding and reading it (a redirect landing) is found again.
    pub async fn text(&self, css: &str) -> String {
        let mut tries = 0;
        loop {
            let element = self
                .client
                .wait()
                .at_most(Duration::from_secs(5))
                .for_element(Locator::Css(css))
                .await
                .unwrap_or_else(|error| panic!("{css}: {error}"));
            match element.text().await {
                Ok(text) => return text,
                Err(error) if tries < 5 => {
                    tries += 1;
                    eprintln!("{css}: {error}; finding it again");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(error) => panic!("{css}: {error}"),
            }
        }
    }

    /// The page's HTML as the browser has it now.
    pub async fn source(&self) -> String {
        self.client.source().await.unwrap()
    }

    pub async fn path(&self) -> String {
        self.client.current_url().await.unwrap().path().to_owned()
    }

    /// Waits (up to 5 s) until the address's path is no longer `path`.
    pub async fn wait_for_path_not(&self, path: &str) {
        for _ in 0..50 {
            if self.path().await != path {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("still on {path}");
    }

    /// Saves a PNG of the window to docs/screenshots/NAME.png.
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// Ends the session and the driver.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}

/// A local webhook receiver subscribed by a test: what a tenant's SMS or Zalo gateway is to
/// Patron. Keeps every request's `Patron-Topic` and body.
#[derive(Clone)]
pub struct Inbox {
    pub url: String,
    received: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
}

impl Inbox {
    pub async fn start() -> Inbox {
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = received.clone();
        let router = axum::Router::new().route(
            "/hooks",
            axum::routing::post(
                move |headers: axum::http::HeaderMap, body: String| async move {
                    let topic = headers
                        .get("patron-topic")
                        .and_then(|value| value.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    kept.lock().unwrap().push((topic, body));
                    axum::http::StatusCode::OK
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Inbox { url, received }
    }

    /// Every (topic, body) received so far.
    pub fn received(&self) -> Vec<(String, String)> {
        self.received.lock().unwrap().clone()
    }

    /// The sign-in codes sent to `phone` (E.164), oldest first, once there are at least
    /// `count` of them (waits up to 10 s).
    pub async fn codes_for(&self, phone: &str, count: usize) -> Vec<String> {
        for _ in 0..200 {
            let codes: Vec<String> = self
                .received()
                .iter()
                .filter(|(topic, _)| topic == "member.sign_in_code")
                .filter_map(|(_, body)| serde_json::from_str::<serde_json::Value>(body).ok())
                .filter(|body| body["data"]["phone"] == phone)
                .filter_map(|body| body["data"]["code"].as_str().map(str::to_owned))
                .collect();
            if codes.len() >= count {
                return codes;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "fewer than {count} sign-in codes for {phone}: {:?}",
            self.received()
        );
    }

    /// The newest sign-in code sent to `phone`.
    pub async fn code_for(&self, phone: &str) -> String {
        self.codes_for(phone, 1).await.pop().unwrap()
    }
}

/// The webhook dispatcher over the site's database, quick enough for tests.
pub fn dispatcher(site: &Site) -> patron_server::Dispatcher {
    patron_server::Dispatcher::start(
        site.store.clone(),
        patron_server::DispatcherConfig {
            base_delay: Duration::from_millis(100),
            poll_interval: Duration::from_millis(20),
            allow_private_targets: true,
            ..patron_server::DispatcherConfig::default()
        },
    )
}
