//! What the HTTP tests share: a fresh database per test (a SQLite file or a PostgreSQL
//! database), a served router on port 0, and a client that speaks as a key or a session.
#![allow(dead_code)]

use patron_store::admin::{KeyScope, NewTenant};
use patron_store::{Journal, JournalConfig, Store};
use serde_json::{json, Value};

pub use patron_testkit::fresh_store;

/// A small café programme: 1 point per 10,000đ, cake bonus, Gold at 5,000,000đ.
pub fn programme() -> Value {
    json!({
        "amount_per_point": 10000, "point_value": 1000, "return_window_days": 0,
        "expiry": {"kind": "days", "days": 365},
        "rules": [{"id": "cake", "name": "Cake", "when": "'cake' in event.categories",
                   "points": "event.quantity_by_category['cake'] * 10"}],
        "tiers": [{"code": "member", "name": "Member", "threshold": 0},
                  {"code": "gold", "name": "Gold", "threshold": 5000000, "multiplier_percent": 150}],
        "qualification": {"metric": "spend", "window": "rolling_12_months", "grace_days": 30}
    })
}

/// Starts the server on port 0 with its own journal; returns its address.
pub async fn serve(store: Store, options: patron_server::ServerOptions) -> String {
    let (journal, _) = Journal::start(store.clone(), JournalConfig::default());
    let application = patron_server::Application::build_with(
        store,
        journal,
        "127.0.0.1:0".parse().unwrap(),
        options,
    )
    .await
    .unwrap();
    let address = format!("http://{}", application.local_addr());
    tokio::spawn(application.run(std::future::pending()));
    address
}

/// A new tenant and an API key of `scope` for it.
pub async fn tenant_with_key(
    store: &Store,
    name: &str,
    scope: KeyScope,
) -> (patron_core::TenantId, String) {
    let tenant = store
        .create_tenant(&NewTenant::vietnamese(name))
        .await
        .unwrap();
    let key = store.create_api_key(tenant, "test", scope).await.unwrap();
    (tenant, key)
}

/// How a request authenticates.
#[derive(Clone, Debug)]
pub enum Auth {
    None,
    Key(String),
    /// A session cookie and its CSRF token (sent unless `None`).
    Session {
        cookie: String,
        csrf: Option<String>,
    },
}

/// A client of one served app.
#[derive(Clone)]
pub struct Client {
    pub address: String,
    pub auth: Auth,
    pub http: reqwest::Client,
}

impl Client {
    pub fn new(address: &str, auth: Auth) -> Client {
        Client {
            address: address.to_owned(),
            auth,
            http: reqwest::Client::new(),
        }
    }

    pub fn with(&self, auth: Auth) -> Client {
        Client {
            auth,
            ..self.clone()
        }
    }

    pub async fn send(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.http.request(method, format!("{}{path}", self.address));
        match &self.auth {
            Auth::None => {}
            Auth::Key(key) => request = request.bearer_auth(key),
            Auth::Session { cookie, csrf } => {
                request = request.header("cookie", cookie);
                if let Some(csrf) = csrf {
                    request = request.header("x-csrf-token", csrf);
                }
            }
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send("POST", path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.send("PATCH", path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.send("PUT", path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.send("DELETE", path, None).await
    }
}

/// A served tenant set up like a café: the programme from 2020, stores HN01 and HCM01, and an
/// admin key.
pub struct Cafe {
    pub store: Store,
    pub tenant: patron_core::TenantId,
    pub admin: Client,
}

pub async fn cafe(postgres: bool, options: patron_server::ServerOptions) -> Cafe {
    let store = fresh_store(postgres).await;
    let (tenant, key) = tenant_with_key(&store, "Cà phê", KeyScope::Admin).await;
    let address = serve(store.clone(), options).await;
    let admin = Client::new(&address, Auth::Key(key));
    let (status, body) = admin
        .post(
            "/v1/programme/versions",
            json!({"definition": programme(), "effective_from": "2020-01-01T00:00:00+07:00"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    for code in ["HN01", "HCM01"] {
        let (status, _) = admin
            .post("/v1/stores", json!({"code": code, "name": code}))
            .await;
        assert_eq!(status, 201);
    }
    Cafe {
        store,
        tenant,
        admin,
    }
}

pub fn purchase(id: &str, phone: &str, amount: i64) -> Value {
    json!({"id": id, "type": "purchase", "occurred_at": "2026-01-10T09:00:00+07:00",
           "member": {"phone": phone}, "store": "HN01", "amount": amount})
}

/// Runs a test body on a fresh SQLite file and on a fresh PostgreSQL database.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident;)*) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() { super::$name(false).await; }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() { super::$name(true).await; }
        }
    )*};
}

/// Adds a staff user of `role` and signs them in: their session's client and their id.
pub async fn signed_in_staff(admin: &Client, email: &str, role: &str) -> (Client, String) {
    let (status, user) = admin
        .post(
            "/v1/users",
            json!({"email": email, "name": role, "role": role, "password": "correct horse battery"}),
        )
        .await;
    assert_eq!(status, 201, "{user}");
    let response = admin
        .http
        .post(format!("{}/v1/session", admin.address))
        .json(&json!({"email": email, "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    let client = admin.with(Auth::Session {
        cookie: cookie.split(';').next().unwrap().to_owned(),
        csrf: Some(body["csrf_token"].as_str().unwrap().to_owned()),
    });
    (client, user["id"].as_str().unwrap().to_owned())
}

/// A key of `scope` (for one store, if given) made over the API: its client and its id.
pub async fn api_key(admin: &Client, scope: &str, store: Option<&str>) -> (Client, String) {
    let (status, body) = admin
        .post(
            "/v1/api-keys",
            json!({"name": format!("{scope} key"), "scope": scope, "store": store}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let key = admin.with(Auth::Key(body["secret"].as_str().unwrap().to_owned()));
    (key, body["id"].as_str().unwrap().to_owned())
}
