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
