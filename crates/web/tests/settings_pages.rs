//! The owner's settings: staff, API keys, webhooks with replay, the audit log; who may open
//! them, and CSRF.

mod common;

use common::{csrf_in, email, Pages, Site, PASSWORD};
use patron_store::audit::{Actor, Change};
use patron_store::users::Role;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The CSRF token of a page the user may open.
async fn csrf_of(pages: &Pages, path: &str) -> String {
    let (status, html) = pages.get(path).await;
    assert_eq!(status, 200, "{path}: {html}");
    csrf_in(&html)
}

/// The text between `start` and the next `end` after it.
fn between<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let from = html
        .find(start)
        .unwrap_or_else(|| panic!("no {start} in {html}"))
        + start.len();
    &html[from..from + html[from..].find(end).unwrap()]
}

#[tokio::test]
async fn staff_are_added_changed_and_disabled() {
    let site = Site::start(false).await;
    let owner = site.signed_in(Role::Owner).await;
    let csrf = csrf_of(&owner, "/admin/staff").await;
    let (_, html) = owner.get("/admin/staff").await;
    for role in [Role::Manager, Role::Cashier, Role::Viewer] {
        assert!(html.contains(&email(role)), "{html}");
    }

    let short = [
        ("csrf", csrf.as_str()),
        ("email", "lan@cafe.test"),
        ("name", "Chị Lan"),
        ("role", "cashier"),
        ("password", "ngắn"),
    ];
    let (status, html) = owner.post_form("/admin/staff", &short).await;
    assert_eq!(status, 422, "{html}");
    assert!(
        html.contains("id=\"staff-password-error\">Mật khẩu phải dài từ 10 đến 256 ký tự."),
        "{html}"
    );
    assert!(html.contains("aria-invalid=\"true\" aria-describedby=\"staff-password-error\""));
    // Summed up above the staff list too, linking down to the field.
    let summary = html
        .find("id=\"error-summary\"")
        .expect("a summary at the top");
    assert!(
        summary < html.find("id=\"staff-password\"").unwrap(),
        "{html}"
    );
    assert!(
        summary < html.find(&email(Role::Manager)).unwrap(),
        "{html}"
    );
    assert!(
        html.contains("<a href=\"#staff-password\">Mật khẩu phải dài"),
        "{html}"
    );
    assert!(html.contains("value=\"lan@cafe.test\""), "kept: {html}");
    assert!(!html.contains("ngắn"), "a password is never sent back");

    let (status, html) = owner
        .post_form(
            "/admin/staff",
            &[
                ("csrf", csrf.as_str()),
                ("email", "not an address"),
                ("name", "Chị Lan"),
                ("role", "cashier"),
                ("password", "một mật khẩu dài"),
            ],
        )
        .await;
    assert_eq!(status, 422);
    assert!(html.contains("id=\"staff-email-error\""), "{html}");

    let good = [
        ("csrf", csrf.as_str()),
        ("email", "lan@cafe.test"),
        ("name", "Chị Lan"),
        ("role", "cashier"),
        ("password", "một mật khẩu dài"),
    ];
    let (status, html) = owner.post_form("/admin/staff", &good).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Đã thêm nhân viên"), "{html}");
    let (status, html) = owner.post_form("/admin/staff", &good).await;
    assert_eq!(status, 422);
    assert!(html.contains("Email này đã có tài khoản"), "{html}");

    let lan = Pages::new(&site.address);
    let (status, _) = lan
        .post_form(
            "/admin/login",
            &[("email", "lan@cafe.test"), ("password", "một mật khẩu dài")],
        )
        .await;
    assert_eq!(status, 200, "the new cashier signs in");

    let (_, users) = site.api("GET", "/v1/users", None).await;
    let id = users
        .as_array()
        .unwrap()
        .iter()
        .find(|user| user["email"] == "lan@cafe.test")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, html) = owner
        .post_form(
            &format!("/admin/staff/{id}/role"),
            &[("csrf", &csrf), ("role", "manager")],
        )
        .await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Đã cập nhật tài khoản"));
    let (status, _) = owner
        .post_form(
            &format!("/admin/staff/{id}/access"),
            &[("csrf", &csrf), ("access", "disable")],
        )
        .await;
    assert_eq!(status, 200);
    let (_, users) = site.api("GET", "/v1/users", None).await;
    let lan_now = users
        .as_array()
        .unwrap()
        .iter()
        .find(|user| user["id"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(
        (lan_now["role"].as_str(), lan_now["disabled"].as_bool()),
        (Some("manager"), Some(true))
    );
    let (status, _) = Pages::new(&site.address)
        .post_form(
            "/admin/login",
            &[("email", "lan@cafe.test"), ("password", "một mật khẩu dài")],
        )
        .await;
    assert_eq!(status, 401, "a disabled account cannot sign in");

    // The owner cannot lock themselves out from here.
    let (_, users) = site.api("GET", "/v1/users", None).await;
    let me = users
        .as_array()
        .unwrap()
        .iter()
        .find(|user| user["email"] == email(Role::Owner).as_str())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, html) = owner
        .post_form(
            &format!("/admin/staff/{me}/access"),
            &[("csrf", &csrf), ("access", "disable")],
        )
        .await;
    assert_eq!(status, 422);
    assert!(
        html.contains("không thể đổi vai trò hoặc khoá chính tài khoản"),
        "{html}"
    );
}

#[tokio::test]
async fn a_new_key_is_shown_once_works_and_stops_when_revoked() {
    let site = Site::start(false).await;
    let owner = site.signed_in(Role::Owner).await;
    let csrf = csrf_of(&owner, "/admin/keys").await;
    let (status, html) = owner
        .post_form(
            "/admin/keys",
            &[
                ("csrf", &csrf),
                ("name", " "),
                ("scope", "read"),
                ("store", ""),
            ],
        )
        .await;
    assert_eq!(status, 422);
    assert!(html.contains("id=\"key-name-error\""), "{html}");
    let (status, html) = owner
        .post_form(
            "/admin/keys",
            &[
                ("csrf", &csrf),
                ("name", "Máy POS"),
                ("scope", "write"),
                ("store", "HN99"),
            ],
        )
        .await;
    assert_eq!(status, 422);
    assert!(html.contains("Cửa hàng này không có"), "{html}");

    let (status, html) = owner
        .post_form(
            "/admin/keys",
            &[
                ("csrf", &csrf),
                ("name", "Máy POS"),
                ("scope", "write"),
                ("store", "HN01"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{html}");
    let secret = between(&html, "<code id=\"new-key\">", "</code>").to_owned();
    assert!(secret.starts_with("pk_"), "{secret}");
    assert!(html.contains("Khoá chỉ hiện một lần này"), "{html}");

    let (_, list) = owner.get("/admin/keys").await;
    assert!(!list.contains(&secret), "the list never shows a secret");
    assert!(
        list.contains("Máy POS") && list.contains("Chưa dùng"),
        "{list}"
    );

    let http = reqwest::Client::new();
    let call = |secret: String| {
        let http = http.clone();
        let address = site.address.clone();
        async move {
            http.get(format!("{address}/v1/rewards"))
                .bearer_auth(secret)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(call(secret.clone()).await, 200);
    let (_, list) = owner.get("/admin/keys").await;
    let row = between(&list, "Máy POS", "</tr>");
    assert!(!row.contains("Chưa dùng"), "last used is shown: {row}");

    let (_, keys) = site.api("GET", "/v1/api-keys", None).await;
    let id = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|key| key["name"] == "Máy POS")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, html) = owner
        .post_form(&format!("/admin/keys/{id}/revoke"), &[("csrf", &csrf)])
        .await;
    assert_eq!(status, 200);
    assert!(html.contains("Đã thu hồi khoá"), "{html}");
    assert!(
        html.contains("data-confirm="),
        "revoking asks first: {html}"
    );
    assert_eq!(call(secret).await, 401, "a revoked key is refused at once");
}

/// A receiver that answers 500 to everything and counts what it got.
async fn failing_receiver() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                axum::http::StatusCode::INTERNAL_SERVER_ERROR
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (address, hits)
}

async fn wait_until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    for _ in 0..200 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn a_webhook_delivery_is_logged_and_replayed() {
    let site = Site::start(false).await;
    let (url, hits) = failing_receiver().await;
    let owner = site.signed_in(Role::Owner).await;
    let csrf = csrf_of(&owner, "/admin/webhooks").await;
    let (status, html) = owner
        .post_form("/admin/webhooks", &[("csrf", &csrf), ("url", &url)])
        .await;
    assert_eq!(status, 422);
    assert!(html.contains("Chọn ít nhất một sự kiện"), "{html}");
    let (status, html) = owner
        .post_form(
            "/admin/webhooks",
            &[
                ("csrf", &csrf),
                ("url", "ftp://x"),
                ("topics", "points.earned"),
            ],
        )
        .await;
    assert_eq!(status, 422);
    assert!(html.contains("id=\"webhook-url-error\""), "{html}");
    let (status, html) = owner
        .post_form(
            "/admin/webhooks",
            &[("csrf", &csrf), ("url", &url), ("topics", "points.earned")],
        )
        .await;
    assert_eq!(status, 200, "{html}");
    assert!(between(&html, "<code id=\"new-secret\">", "</code>").starts_with("whsec_"));
    let subscription = between(&html, "href=\"/admin/webhooks/", "\"").to_owned();

    // Retries an hour apart: only a replay sends again within the test.
    let dispatcher = patron_server::Dispatcher::start(
        site.store.clone(),
        patron_server::DispatcherConfig {
            base_delay: Duration::from_secs(3600),
            poll_interval: Duration::from_millis(20),
            concurrency: 2,
            request_timeout: Duration::from_secs(2),
            allow_private_targets: true,
            ..patron_server::DispatcherConfig::default()
        },
    );
    let (status, body) = site
        .api(
            "POST",
            "/v1/events",
            Some(
                json!({"id": "HD-1", "type": "purchase", "member": {"phone": "0912345678"},
                        "store": "HN01", "amount": 100000}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let store = site.store.clone();
    let tenant = site.tenant;
    let attempts = |wanted: usize| {
        let store = store.clone();
        let subscription = subscription.clone();
        let hits = hits.clone();
        async move || {
            let deliveries = store
                .webhook_deliveries(tenant, &subscription, 10)
                .await
                .unwrap();
            hits.load(Ordering::SeqCst) == wanted
                && deliveries.len() == 1
                && deliveries[0].attempts == 1
                && deliveries[0].last_status_code == Some(500)
        }
    };
    wait_until("the first attempt", attempts(1)).await;

    let (status, html) = owner.get(&format!("/admin/webhooks/{subscription}")).await;
    assert_eq!(status, 200);
    assert!(html.contains("<code>points.earned</code>"), "{html}");
    assert!(html.contains("HTTP 500"), "{html}");
    assert!(
        html.contains("<td class=\"number attempts\">1</td>"),
        "{html}"
    );
    let delivery = between(&html, "action=\"/admin/webhooks/deliveries/", "/replay\"").to_owned();
    let (status, html) = owner
        .post_form(
            &format!("/admin/webhooks/deliveries/{delivery}/replay"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Đã xếp lượt gửi lại"), "{html}");
    wait_until("the replayed attempt", attempts(2)).await;
    dispatcher.stop().await;

    let (_, audit) = owner.get("/admin/audit").await;
    assert!(audit.contains("webhook_delivery.replay"), "{audit}");
    assert!(audit.contains("webhook.create"), "{audit}");
    // The subscription's fields are named in Vietnamese, not by their JSON keys.
    assert!(audit.contains("Sự kiện: "), "{audit}");
    assert!(audit.contains("Địa chỉ: "), "{audit}");

    // Disabled, it is sent nothing more and cannot be replayed.
    let (status, _) = owner
        .post_form(
            &format!("/admin/webhooks/{subscription}/disable"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = owner
        .post_form(
            &format!("/admin/webhooks/deliveries/{delivery}/replay"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(status, 422);
}

async fn audit_log(postgres: bool) {
    let site = Site::start(postgres).await;
    let owner = site.signed_in(Role::Owner).await;
    let csrf = csrf_of(&owner, "/admin/programme").await;
    let definition = serde_json::to_value(common::programme()).unwrap();
    let (status, _) = site
        .api(
            "PUT",
            "/v1/programme/draft",
            Some(json!({"definition": definition})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, html) = owner
        .post_form(
            "/admin/programme/publish",
            &[("csrf", &csrf), ("effective_from", "")],
        )
        .await;
    assert_eq!(status, 200, "{html}");
    let (status, html) = owner
        .post_form(
            "/admin/staff",
            &[
                ("csrf", &csrf),
                ("email", "x@cafe.test"),
                ("name", "<script>alert(1)</script>"),
                ("role", "viewer"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(status, 200, "{html}");

    let (status, html) = owner.get("/admin/audit").await;
    assert_eq!(status, 200);
    let publish = between(
        &html,
        "<code class=\"action\">programme.publish</code>",
        "</tr>",
    );
    assert!(publish.contains("Phiên bản 2"), "{publish}");
    assert!(
        publish.contains("Phiên bản: — → 2"),
        "what changed, in words, not JSON: {publish}"
    );
    assert!(!publish.contains("&#34;"), "no raw JSON: {publish}");
    assert!(html.contains("Công bố chương trình"), "{html}");
    let row_start = html[..html.find("programme.publish").unwrap()]
        .rfind("<tr>")
        .unwrap();
    let row = &html[row_start..];
    assert!(row.contains("Test owner (owner@cafe.test)"), "{row}");
    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::Asia::Ho_Chi_Minh)
        .format("%d/%m/%Y")
        .to_string();
    assert!(row.contains(&today), "in the tenant's zone: {row}");
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(
        html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "{html}"
    );

    // Fifty entries a page; the older ones one click away.
    for index in 0..60 {
        site.store
            .audit(&Change {
                tenant_id: site.tenant,
                actor: &Actor::cli(),
                action: "test.entry",
                subject: format!("thing:{index}"),
                before: None,
                after: Some(json!({"n": index})),
            })
            .await
            .unwrap();
    }
    let (_, first) = owner.get("/admin/audit").await;
    assert_eq!(first.matches("<code class=\"action\">").count(), 50);
    assert!(
        first.contains("thing:59") && !first.contains("thing:9<"),
        "{first}"
    );
    let older = between(&first, "href=\"/admin/audit?before=", "\"").to_owned();
    let (_, second) = owner.get(&format!("/admin/audit?before={older}")).await;
    assert!(
        second.contains("thing:9<") && second.contains("programme.publish"),
        "{second}"
    );
    assert!(second.contains("Dòng lệnh"), "{second}");
    assert!(!second.contains("thing:10<"), "{second}");
}

/// The audit log showed raw JSON and ids: now the member's and the reward's names, the change
/// field by field, in Vietnamese.
async fn audit_log_names_and_changes(postgres: bool) {
    let site = Site::start(postgres).await;
    let owner = site.signed_in(Role::Owner).await;
    let (status, bought) = site
        .api(
            "POST",
            "/v1/events",
            Some(
                json!({"id": "A-1", "type": "purchase", "member": {"phone": "0912345678"},
                        "store": "HN01", "amount": 100000}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{bought}");
    let member_id = bought["member_id"].as_str().unwrap().to_owned();
    let (status, _) = site
        .api(
            "PATCH",
            &format!("/v1/members/{member_id}"),
            Some(json!({"profile": {"name": "Trần Thị An"}})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, reward) = site
        .api(
            "POST",
            "/v1/rewards",
            Some(json!({"name": "Bánh flan", "cost": 20})),
        )
        .await;
    assert_eq!(status, 201);
    let (status, _) = site
        .api(
            "PATCH",
            &format!("/v1/rewards/{}", reward["id"].as_str().unwrap()),
            Some(json!({"cost": 25})),
        )
        .await;
    assert_eq!(status, 200);

    let (status, html) = owner.get("/admin/audit").await;
    assert_eq!(status, 200, "{html}");
    let member_row = between(
        &html,
        "<code class=\"action\">member.update</code>",
        "</tr>",
    );
    assert!(html.contains("Sửa thành viên"), "{html}");
    assert!(
        member_row.contains("Trần Thị An (+84912345678)"),
        "the member by name, not id: {member_row}"
    );
    assert!(!member_row.contains(&member_id), "{member_row}");
    assert!(member_row.contains("Tên: — → Trần Thị An"), "{member_row}");
    let reward_row = between(
        &html,
        "<code class=\"action\">reward.update</code>",
        "</tr>",
    );
    assert!(html.contains("Sửa phần thưởng"), "{html}");
    assert!(reward_row.contains("Phần thưởng Bánh flan"), "{reward_row}");
    assert!(reward_row.contains("Số điểm: 20 → 25"), "{reward_row}");
    assert!(!html.contains("&#34;cost&#34;"), "no raw JSON: {html}");
}

#[tokio::test]
async fn the_audit_log_names_members_and_rewards_on_sqlite() {
    audit_log_names_and_changes(false).await;
}

#[tokio::test]
async fn the_audit_log_names_members_and_rewards_on_postgres() {
    audit_log_names_and_changes(true).await;
}

#[tokio::test]
async fn the_audit_log_shows_the_programme_publish_on_sqlite() {
    audit_log(false).await;
}

#[tokio::test]
async fn the_audit_log_shows_the_programme_publish_on_postgres() {
    audit_log(true).await;
}

#[tokio::test]
async fn only_owners_open_the_settings() {
    let site = Site::start(false).await;
    let owner = site.signed_in(Role::Owner).await;
    for path in [
        "/admin/staff",
        "/admin/keys",
        "/admin/webhooks",
        "/admin/audit",
    ] {
        let (status, _) = owner.get(path).await;
        assert_eq!(status, 200, "{path}");
    }
    for role in [Role::Manager, Role::Marketer, Role::Cashier, Role::Viewer] {
        let pages = site.signed_in(role).await;
        for path in [
            "/admin/staff",
            "/admin/keys",
            "/admin/webhooks",
            "/admin/audit",
        ] {
            let (status, html) = pages.get(path).await;
            assert_eq!(status, 403, "{} on {path}", role.as_str());
            assert!(html.contains("Không có quyền"));
        }
        let (status, _) = pages
            .post_form(
                "/admin/staff",
                &[
                    ("csrf", "x"),
                    ("email", "y@cafe.test"),
                    ("name", "Y"),
                    ("role", "owner"),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert_eq!(status, 403);
    }
    // A marketer may edit the programme all the same.
    let marketer = site.signed_in(Role::Marketer).await;
    let (status, _) = marketer.get("/admin/programme").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn settings_changes_without_the_csrf_token_are_refused() {
    let site = Site::start(false).await;
    let owner = site.signed_in(Role::Owner).await;
    csrf_of(&owner, "/admin/staff").await;
    let refused = [
        (
            "/admin/staff",
            vec![
                ("email", "z@cafe.test"),
                ("name", "Z"),
                ("role", "viewer"),
                ("password", PASSWORD),
            ],
        ),
        ("/admin/keys", vec![("name", "k"), ("scope", "admin")]),
        (
            "/admin/webhooks",
            vec![
                ("url", "https://example.com/h"),
                ("topics", "points.earned"),
            ],
        ),
        ("/admin/keys/nothing/revoke", vec![]),
        ("/admin/staff/nobody/access", vec![("access", "disable")]),
        ("/admin/webhooks/deliveries/none/replay", vec![]),
    ];
    for (path, fields) in refused {
        let (status, html) = owner.post_form(path, &fields).await;
        assert_eq!(status, 403, "{path}");
        assert!(
            html.contains("Phiên làm việc đã thay đổi"),
            "{path}: {html}"
        );
    }
    let (_, users) = site.api("GET", "/v1/users", None).await;
    assert_eq!(users.as_array().unwrap().len(), 5, "nobody was added");
    let (_, keys) = site.api("GET", "/v1/api-keys", None).await;
    assert_eq!(keys.as_array().unwrap().len(), 1, "no key was made");
}

async fn accept_confirmation(browser: &common::Browser) {
    for _ in 0..50 {
        if browser.client.accept_alert().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no confirmation was asked");
}

#[tokio::test]
async fn an_owner_makes_and_revokes_a_key_in_a_browser() {
    let site = Site::start(false).await;
    let browser = common::Browser::start(common::DESKTOP).await;
    browser.sign_in(&site, Role::Owner).await;
    browser.goto(&format!("{}/admin/keys", site.address)).await;
    browser.fill("#key-name", "Máy POS quầy 1").await;
    browser.click("#create-key button[type=submit]").await;
    let secret = browser.text("#new-key").await;
    assert!(secret.starts_with("pk_"), "{secret}");
    browser.screenshot("settings-key-created").await;
    browser.click("a.button").await;
    let list = browser.text("#key-list").await;
    assert!(list.contains("Máy POS quầy 1"), "{list}");
    assert!(!browser.source().await.contains(&secret));
    browser
        .click("#key-list tbody tr:first-child form button")
        .await;
    accept_confirmation(&browser).await;
    let notice = browser.text(".notice").await;
    assert!(notice.contains("Đã thu hồi khoá"), "{notice}");
    browser.screenshot("settings-keys").await;
    browser.goto(&format!("{}/admin/audit", site.address)).await;
    let log = browser.text("#audit-log").await;
    assert!(log.contains("api_key.revoke"), "{log}");
    browser.screenshot("audit-log").await;
    browser.close().await;
}
