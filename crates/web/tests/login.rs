//! Staff sign-in over plain HTTP and in a real browser.

mod common;

use common::{Browser, Pages, Site, DESKTOP};
use patron_store::users::Role;

#[tokio::test]
async fn pages_carry_a_content_security_policy_and_speak_both_languages() {
    let site = Site::start(false).await;
    let response = reqwest::get(format!("{}/admin/login", site.address))
        .await
        .unwrap();
    let policy = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(policy.contains("script-src 'self'"), "{policy}");
    assert!(response.text().await.unwrap().contains("Đăng nhập"));
    let english = reqwest::Client::new()
        .get(format!("{}/admin/login", site.address))
        .header("accept-language", "en-US,en")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(english.contains("Staff sign-in"), "{english}");
}

#[tokio::test]
async fn a_wrong_password_is_refused_and_admin_pages_need_a_session() {
    let site = Site::start(false).await;
    let pages = Pages::new(&site.address);
    let (status, html) = pages
        .post_form(
            "/admin/login",
            &[
                ("email", "owner@cafe.test"),
                ("password", "not the password"),
            ],
        )
        .await;
    assert_eq!(status, 401);
    assert!(html.contains("Sai email hoặc mật khẩu"), "{html}");
    assert!(
        html.contains("value=\"owner@cafe.test\""),
        "the e-mail is kept: {html}"
    );
    let (status, html) = pages.get("/admin").await;
    assert_eq!(status, 200);
    assert!(
        html.contains("name=\"password\""),
        "sent to sign in: {html}"
    );
}

#[tokio::test]
async fn signing_in_and_out_in_a_browser() {
    let site = Site::start(false).await;
    let browser = Browser::start(DESKTOP).await;
    browser.goto(&format!("{}/admin/login", site.address)).await;
    browser.fill("input[name=email]", "owner@cafe.test").await;
    browser
        .fill("input[name=password]", "wrong password!")
        .await;
    browser.click("form button[type=submit]").await;
    let error = browser.text("#login-error").await;
    assert!(error.contains("Sai email"), "{error}");
    browser.sign_in(&site, Role::Cashier).await;
    assert_eq!(browser.path().await, "/cashier");
    browser.close().await;
}

/// The login page as fetched with extra `headers`: status and HTML.
async fn login_page_with(site: &Site, headers: &[(&str, &str)]) -> (u16, String) {
    let mut request = reqwest::Client::new().get(format!("{}/admin/login", site.address));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn the_web_login_is_throttled_with_a_clear_message() {
    let site = Site::start(false).await;
    let pages = Pages::new(&site.address);
    let wrong = [
        ("email", "owner@cafe.test"),
        ("password", "not the password"),
    ];
    for _ in 0..patron_server::throttle::ACCOUNT_FAILURES_FREE {
        assert_eq!(pages.post_form("/admin/login", &wrong).await.0, 401);
    }
    let response = pages
        .http
        .post(format!("{}/admin/login", site.address))
        .form(&[("email", "owner@cafe.test"), ("password", common::PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    let html = response.text().await.unwrap();
    assert!(
        html.contains(&format!(
            "Đăng nhập sai quá nhiều lần. Vui lòng thử lại sau {retry_after} giây."
        )),
        "{html}"
    );
    let (_, html) = pages.get("/admin").await;
    assert!(html.contains("name=\"password\""), "not signed in: {html}");
}

#[tokio::test]
async fn an_email_at_two_tenants_signs_in_to_each_and_chooses_when_one_password_opens_both() {
    let site = Site::start(false).await;
    let add_tenant = |name: &'static str, password: &'static str| {
        let store = site.store.clone();
        async move {
            let tenant = store
                .create_tenant(&patron_store::admin::NewTenant::vietnamese(name))
                .await
                .unwrap();
            store
                .create_user(
                    tenant,
                    "owner@cafe.test",
                    "Chủ khác",
                    Role::Owner,
                    password,
                    &patron_store::audit::Actor::cli(),
                )
                .await
                .unwrap();
            tenant
        }
    };
    // Another tenant takes the same e-mail with its own password: no one is locked out.
    add_tenant("Trà Sữa Hai", "another long password").await;
    let first = Pages::new(&site.address);
    let (status, html) = first
        .post_form(
            "/admin/login",
            &[("email", "owner@cafe.test"), ("password", common::PASSWORD)],
        )
        .await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("Cà Phê Thử"),
        "the first tenant's admin: {html}"
    );
    let second = Pages::new(&site.address);
    let (status, html) = second
        .post_form(
            "/admin/login",
            &[
                ("email", "owner@cafe.test"),
                ("password", "another long password"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("Trà Sữa Hai"),
        "the second tenant's admin: {html}"
    );
    // One password at two tenants: the person chooses, then types it again.
    let third = add_tenant("Bánh Mì Ba", common::PASSWORD).await;
    let pages = Pages::new(&site.address);
    let (status, html) = pages
        .post_form(
            "/admin/login",
            &[("email", "owner@cafe.test"), ("password", common::PASSWORD)],
        )
        .await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("id=\"login-tenant\""), "{html}");
    assert!(
        html.contains("Cà Phê Thử") && html.contains("Bánh Mì Ba"),
        "{html}"
    );
    assert!(!html.contains("Trà Sữa Hai"), "{html}");
    assert!(
        !html.contains(common::PASSWORD),
        "the password is not kept in the page"
    );
    let (status, html) = pages
        .post_form(
            "/admin/login",
            &[
                ("email", "owner@cafe.test"),
                ("password", common::PASSWORD),
                ("tenant", &third.to_string()),
            ],
        )
        .await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("Bánh Mì Ba"),
        "the chosen tenant's admin: {html}"
    );
}

#[tokio::test]
async fn the_login_page_says_why_plain_http_at_a_network_address_cannot_keep_a_sign_in() {
    let site = Site::start(false).await;
    let lan = [("host", "192.168.1.20:8080")];
    let (status, html) = login_page_with(&site, &lan).await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"login-insecure\""), "{html}");
    assert!(html.contains("HTTP thường"), "{html}");
    // A forwarded scheme from a peer that is not a trusted proxy changes nothing.
    let (_, html) = login_page_with(
        &site,
        &[
            ("host", "192.168.1.20:8080"),
            ("x-forwarded-proto", "https"),
        ],
    )
    .await;
    assert!(html.contains("id=\"login-insecure\""), "{html}");
    // At a loopback address the browser keeps the cookie: no warning.
    let (_, html) = login_page_with(&site, &[]).await;
    assert!(!html.contains("id=\"login-insecure\""), "{html}");
    let (_, html) = login_page_with(&site, &[("host", "localhost:8080")]).await;
    assert!(!html.contains("id=\"login-insecure\""), "{html}");
    // Behind a trusted proxy that says HTTPS: no warning.
    let proxied = Site::start_with(
        false,
        patron_server::ServerOptions {
            trusted_proxies: vec!["127.0.0.1".parse().unwrap()],
            public_url: Some("https://loyalty.example".into()),
            ..patron_server::ServerOptions::default()
        },
    )
    .await;
    let (_, html) = login_page_with(
        &proxied,
        &[("host", "loyalty.example"), ("x-forwarded-proto", "https")],
    )
    .await;
    assert!(!html.contains("id=\"login-insecure\""), "{html}");
    // Reached over plain HTTP there, the warning names the address to use.
    let (_, html) = login_page_with(&proxied, &lan).await;
    assert!(
        html.contains("https://loyalty.example/admin/login"),
        "{html}"
    );
}

#[tokio::test]
async fn the_language_switch_goes_back_only_to_a_path_of_this_site() {
    let site = Site::start(false).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let back_to = |referer: &'static str| {
        let http = http.clone();
        let address = site.address.clone();
        async move {
            let response = http
                .get(format!("{address}/lang/en"))
                .header("referer", referer)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), 303, "{referer}");
            response.headers()["location"].to_str().unwrap().to_owned()
        }
    };
    assert_eq!(back_to("/\\evil.example").await, "/");
    assert_eq!(back_to("http://127.0.0.1/\\evil.example/x").await, "/");
    assert_eq!(back_to("//evil.example").await, "/");
    assert_eq!(
        back_to("http://127.0.0.1:8080/admin/members?q=lan").await,
        "/admin/members?q=lan"
    );
}
