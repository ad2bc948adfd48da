//! Staff sign-in over HTTP: throttling by account and by client address (with lock-outs made
//! short for the test), forwarded headers believed only from a trusted proxy, the tenant picked
//! by the password when an e-mail is staff at several, HTTPS served with a certificate made
//! here, and the security headers of `/docs`.

mod common;

use common::*;
use patron_core::TenantId;
use patron_server::throttle::{SignInLimits, ACCOUNT_FAILURES_FREE, ADDRESS_FAILURES_FREE};
use patron_server::ServerOptions;
use patron_store::audit::Actor;
use patron_store::users::Role;
use patron_store::Store;
use serde_json::{json, Value};
use std::time::Duration;

const PASSWORD: &str = "correct horse battery";
/// Short enough to wait out in a test, long enough that a loaded machine answers within it.
const LOCKOUT: Duration = Duration::from_secs(1);

fn short_lockouts() -> ServerOptions {
    ServerOptions {
        sign_in_limits: SignInLimits {
            lockout_base: LOCKOUT,
            ..SignInLimits::default()
        },
        ..ServerOptions::default()
    }
}

async fn tenant_with_owner(store: &Store, name: &str, email: &str, password: &str) -> TenantId {
    let tenant = store
        .create_tenant(&patron_store::admin::NewTenant::vietnamese(name))
        .await
        .unwrap();
    store
        .create_user(tenant, email, name, Role::Owner, password, &Actor::cli())
        .await
        .unwrap();
    tenant
}

/// `POST /v1/session`, from `forwarded_for` when given; status, body and `Retry-After`.
async fn sign_in(
    address: &str,
    body: Value,
    forwarded_for: Option<&str>,
) -> (u16, Value, Option<String>) {
    let mut request = reqwest::Client::new()
        .post(format!("{address}/v1/session"))
        .json(&body);
    if let Some(client) = forwarded_for {
        request = request.header("x-forwarded-for", client);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|value| value.to_str().unwrap().to_owned());
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body, retry_after)
}

async fn the_right_password_is_refused_until_the_lockout_passes(postgres: bool) {
    let store = fresh_store(postgres).await;
    tenant_with_owner(&store, "Cà phê", "owner@cafe.test", PASSWORD).await;
    let address = serve(store, short_lockouts()).await;
    let wrong = json!({"email": "owner@cafe.test", "password": "not the password"});
    let right = json!({"email": "owner@cafe.test", "password": PASSWORD});
    for _ in 0..ACCOUNT_FAILURES_FREE {
        let (status, body, _) = sign_in(&address, wrong.clone(), None).await;
        assert_eq!(status, 401, "{body}");
    }
    // The attack: many more wrong passwords, then the right one.
    for _ in 0..100 {
        let (status, body, retry_after) = sign_in(&address, wrong.clone(), None).await;
        if status == 429 {
            assert_eq!(body["code"], "sign_in_throttled");
            assert!(retry_after.is_some(), "429 says when to retry");
        } else {
            assert_eq!(status, 401, "a try after a lock-out passed: {body}");
        }
    }
    let (status, body, retry_after) = sign_in(&address, right.clone(), None).await;
    assert_eq!(status, 429, "the right password while locked out: {body}");
    assert!(retry_after.unwrap().parse::<u64>().unwrap() >= 1);
    // Each failure after the free ones doubles the lock-out; wait out the longest there can
    // be from here by trying until the right password gets in (bounded by the ceiling).
    let started = std::time::Instant::now();
    loop {
        tokio::time::sleep(LOCKOUT).await;
        let (status, body, _) = sign_in(&address, right.clone(), None).await;
        if status == 200 {
            assert_eq!(body["user"]["email"], "owner@cafe.test");
            break;
        }
        assert_eq!(status, 429, "{body}");
        assert!(
            started.elapsed() < SignInLimits::default().lockout_max,
            "the lock-out never passed"
        );
    }
}

async fn the_first_lockout_is_short_and_the_right_password_then_works(postgres: bool) {
    let store = fresh_store(postgres).await;
    tenant_with_owner(&store, "Cà phê", "owner@cafe.test", PASSWORD).await;
    let address = serve(store, short_lockouts()).await;
    let wrong = json!({"email": "owner@cafe.test", "password": "not the password"});
    let right = json!({"email": "Owner@Cafe.test", "password": PASSWORD});
    for _ in 0..ACCOUNT_FAILURES_FREE {
        assert_eq!(sign_in(&address, wrong.clone(), None).await.0, 401);
    }
    assert_eq!(sign_in(&address, right.clone(), None).await.0, 429);
    tokio::time::sleep(LOCKOUT + Duration::from_millis(50)).await;
    let (status, body, _) = sign_in(&address, right.clone(), None).await;
    assert_eq!(status, 200, "after the back-off: {body}");
    // Signed in, the account starts afresh: a typo is a 401 again, not a lock-out.
    assert_eq!(sign_in(&address, wrong.clone(), None).await.0, 401);
}

async fn tries_sent_at_once_cannot_pass_the_limit(postgres: bool) {
    let store = fresh_store(postgres).await;
    tenant_with_owner(&store, "Cà phê", "owner@cafe.test", PASSWORD).await;
    let address = serve(store, ServerOptions::default()).await;
    let tries = (0..30).map(|_| {
        let address = address.clone();
        tokio::spawn(async move {
            let wrong = json!({"email": "owner@cafe.test", "password": "not the password"});
            sign_in(&address, wrong, None).await.0
        })
    });
    let mut statuses = Vec::new();
    for try_ in tries {
        statuses.push(try_.await.unwrap());
    }
    let checked = statuses.iter().filter(|status| **status == 401).count();
    let throttled = statuses.iter().filter(|status| **status == 429).count();
    assert_eq!(checked, ACCOUNT_FAILURES_FREE as usize, "{statuses:?}");
    assert_eq!(throttled, 30 - checked, "{statuses:?}");
}

/// Behind a trusted proxy (this test's client, on 127.0.0.1), each `X-Forwarded-For` is a
/// client of its own.
async fn one_address_hammering_does_not_lock_another_out(postgres: bool) {
    let store = fresh_store(postgres).await;
    tenant_with_owner(&store, "Cà phê", "owner@cafe.test", PASSWORD).await;
    let options = ServerOptions {
        trusted_proxies: vec!["127.0.0.1".parse().unwrap()],
        ..short_lockouts()
    };
    let address = serve(store, options).await;
    let attacker = Some("198.51.100.7");
    for index in 0..ADDRESS_FAILURES_FREE {
        let guess = json!({"email": format!("guess{index}@cafe.test"), "password": "guess guess"});
        assert_eq!(sign_in(&address, guess, attacker).await.0, 401);
    }
    let right = json!({"email": "owner@cafe.test", "password": PASSWORD});
    let (status, _, _) = sign_in(&address, right.clone(), attacker).await;
    assert_eq!(status, 429, "the hammering address is locked out");
    let (status, body, _) = sign_in(&address, right, Some("192.0.2.20")).await;
    assert_eq!(status, 200, "another address, another account: {body}");
}

/// Without a trusted proxy, `X-Forwarded-For` is anyone's to write: it must not give an
/// attacker a fresh address per try.
async fn forwarded_for_from_an_untrusted_peer_is_ignored(postgres: bool) {
    let store = fresh_store(postgres).await;
    tenant_with_owner(&store, "Cà phê", "owner@cafe.test", PASSWORD).await;
    let address = serve(store, short_lockouts()).await;
    for index in 0..ADDRESS_FAILURES_FREE {
        let guess = json!({"email": format!("guess{index}@cafe.test"), "password": "guess guess"});
        let forged = format!("203.0.113.{index}");
        assert_eq!(sign_in(&address, guess, Some(&forged)).await.0, 401);
    }
    let guess = json!({"email": "another@cafe.test", "password": "guess guess"});
    let (status, _, _) = sign_in(&address, guess, Some("203.0.113.200")).await;
    assert_eq!(status, 429, "the peer's own address is what counts");
}

/// The issue: a tenant that adds a user with another tenant's staff e-mail locked them out.
async fn two_tenants_with_the_same_email_each_sign_in_to_their_own(postgres: bool) {
    let store = fresh_store(postgres).await;
    let first = tenant_with_owner(&store, "Cà phê Một", "lan@cafe.test", PASSWORD).await;
    let second = tenant_with_owner(
        &store,
        "Trà sữa Hai",
        "lan@cafe.test",
        "another long password",
    )
    .await;
    let address = serve(store.clone(), ServerOptions::default()).await;
    let (status, body, _) = sign_in(
        &address,
        json!({"email": "lan@cafe.test", "password": PASSWORD}),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["tenant_id"], first.to_string());
    let (status, body, _) = sign_in(
        &address,
        json!({"email": "lan@cafe.test", "password": "another long password"}),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["tenant_id"], second.to_string());
    // The same person with one password at both: they choose.
    let third = tenant_with_owner(&store, "Bánh mì Ba", "lan@cafe.test", PASSWORD).await;
    let (status, body, _) = sign_in(
        &address,
        json!({"email": "lan@cafe.test", "password": PASSWORD}),
        None,
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "tenant_required");
    assert_eq!(body["field"], "tenant_id");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains(&first.to_string()) && message.contains(&third.to_string()),
        "{message}"
    );
    assert!(!message.contains(&second.to_string()), "{message}");
    let (status, body, _) = sign_in(
        &address,
        json!({"email": "lan@cafe.test", "password": PASSWORD, "tenant_id": third.to_string()}),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["tenant_id"], third.to_string());
}

on_both_backends! {
    the_right_password_is_refused_until_the_lockout_passes;
    the_first_lockout_is_short_and_the_right_password_then_works;
    tries_sent_at_once_cannot_pass_the_limit;
    one_address_hammering_does_not_lock_another_out;
    forwarded_for_from_an_untrusted_peer_is_ignored;
    two_tenants_with_the_same_email_each_sign_in_to_their_own;
}

/// A self-signed certificate for `localhost`, written as PEM files; the certificate's PEM.
fn self_signed_files() -> (patron_server::tls::TlsFiles, String) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let directory = std::env::temp_dir().join(format!("patron-tls-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&directory).unwrap();
    let cert_path = directory.join("cert.pem");
    let key_path = directory.join("key.pem");
    let certificate = certified.cert.pem();
    std::fs::write(&cert_path, &certificate).unwrap();
    std::fs::write(&key_path, certified.key_pair.serialize_pem()).unwrap();
    (
        patron_server::tls::TlsFiles {
            cert_path,
            key_path,
        },
        certificate,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_sign_in_over_https_with_a_certificate_made_here() {
    let store = fresh_store(false).await;
    let tenant = tenant_with_owner(&store, "Cà phê", "owner@cafe.test", PASSWORD).await;
    let (files, certificate) = self_signed_files();
    let (journal, _) = patron_store::Journal::start(store.clone(), Default::default());
    let application = patron_server::Application::build_with(
        store,
        journal,
        "127.0.0.1:0".parse().unwrap(),
        ServerOptions {
            tls: Some(files),
            ..ServerOptions::default()
        },
    )
    .await
    .unwrap();
    assert!(application.is_tls());
    let bound = application.local_addr();
    tokio::spawn(application.run(std::future::pending()));
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(certificate.as_bytes()).unwrap())
        .resolve("localhost", bound)
        .build()
        .unwrap();
    let base = format!("https://localhost:{}", bound.port());
    let response = http
        .post(format!("{base}/v1/session"))
        .json(&json!({"email": "owner@cafe.test", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.contains("; Secure"), "{cookie}");
    let session = cookie.split(';').next().unwrap().to_owned();
    let me: Value = http
        .get(format!("{base}/v1/session"))
        .header("cookie", session)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["tenant_id"], tenant.to_string());
    // Plain HTTP to the HTTPS port is not served.
    let plain = reqwest::get(format!("http://{bound}/healthz")).await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
}

#[tokio::test]
async fn missing_certificate_files_are_named() {
    let store = fresh_store(false).await;
    let (journal, _) = patron_store::Journal::start(store.clone(), Default::default());
    let missing = std::env::temp_dir().join("patron-no-such-cert.pem");
    let result = patron_server::Application::build_with(
        store,
        journal,
        "127.0.0.1:0".parse().unwrap(),
        ServerOptions {
            tls: Some(patron_server::tls::TlsFiles {
                cert_path: missing.clone(),
                key_path: missing.clone(),
            }),
            ..ServerOptions::default()
        },
    )
    .await;
    let error = result.err().expect("no certificate, no server").to_string();
    assert!(error.contains("patron-no-such-cert.pem"), "{error}");
}

#[tokio::test]
async fn the_api_docs_may_not_be_framed() {
    let store = fresh_store(false).await;
    let address = serve(store, ServerOptions::default()).await;
    for path in ["/docs/", "/openapi.json"] {
        let response = reqwest::get(format!("{address}{path}")).await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers();
        let policy = headers["content-security-policy"].to_str().unwrap();
        assert!(
            policy.contains("frame-ancestors 'none'"),
            "{path}: {policy}"
        );
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
    }
}
