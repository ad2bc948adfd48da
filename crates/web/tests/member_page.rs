//! The member page over HTTP: sign-in with phone and a one-time code sent through the tenant's
//! webhook (a real local receiver, the real dispatcher), the code's expiry and attempt limit at
//! their edges, signed links (valid, tampered, expired), the card, redeeming a reward, escaping,
//! size, tenant isolation and signing out.

mod common;

use common::{csrf_in, dispatcher, Inbox, Pages, Site};
use patron_core::{MemberId, Phone, TenantId};
use patron_store::admin::NewTenant;
use patron_store::member_access::{
    CodeCheck, MEMBER_LINK_TTL, SIGN_IN_CODES_PER_HOUR_MAX, SIGN_IN_CODE_ATTEMPTS_MAX,
    SIGN_IN_CODE_TTL,
};
use patron_store::users::Role;
use serde_json::json;

/// Largest member page, in bytes, that a phone on a slow network should load.
const MEMBER_PAGE_BYTES_MAX: usize = 50 * 1024;

/// Enrols a member through the API and gives them points with a purchase of `amount`.
async fn member_with_points(site: &Site, phone: &str, name: &str, amount: i64) -> MemberId {
    let (status, body) = site
        .api(
            "POST",
            "/v1/events",
            Some(json!({
                "id": format!("sale-{phone}"), "type": "purchase", "store": "HN01",
                "member": {"phone": phone}, "amount": amount,
                "profile": {"name": name},
            })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    MemberId::parse(body["member_id"].as_str().unwrap()).unwrap()
}

/// A client that does not follow redirects, to see them and their cookies.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Asks for a code for `phone` on `tenant`'s page and signs in with the code the tenant's
/// gateway received; returns the signed-in pages.
async fn sign_in_with_code(site: &Site, inbox: &Inbox, phone: &str) -> Pages {
    let pages = Pages::new(&site.address);
    let base = format!("/m/{}", site.tenant);
    let before = inbox.codes_for_now(phone);
    let (status, html) = pages
        .post_form(&format!("{base}/sign-in"), &[("phone", phone)])
        .await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("id=\"code-form\""), "{html}");
    let e164 = Phone::parse(phone).unwrap();
    let code = inbox
        .codes_for(e164.as_str(), before + 1)
        .await
        .pop()
        .unwrap();
    let (status, html) = pages
        .post_form(
            &format!("{base}/code"),
            &[("phone", e164.as_str()), ("code", &code)],
        )
        .await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("id=\"balance\""), "signed in: {html}");
    pages
}

trait CodesNow {
    fn codes_for_now(&self, phone: &str) -> usize;
}

impl CodesNow for Inbox {
    /// How many codes `phone` (as typed) has had so far.
    fn codes_for_now(&self, phone: &str) -> usize {
        let e164 = Phone::parse(phone).unwrap();
        self.received()
            .iter()
            .filter(|(topic, body)| {
                topic == "member.sign_in_code" && body.contains(&format!("\"{}\"", e164.as_str()))
            })
            .count()
    }
}

async fn subscribed_inbox(site: &Site) -> Inbox {
    let inbox = Inbox::start().await;
    let (status, body) = site
        .api(
            "POST",
            "/v1/webhooks",
            Some(json!({"url": inbox.url, "topics": ["member.sign_in_code"]})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    inbox
}

async fn signing_in_with_a_code_sent_through_the_tenants_webhook(postgres: bool) {
    let site = Site::start(postgres).await;
    let inbox = subscribed_inbox(&site).await;
    let dispatcher = dispatcher(&site);
    member_with_points(&site, "0912345678", "Lan", 150_000).await;
    let base = format!("/m/{}", site.tenant);
    // Not signed in: the card sends the visitor to sign in.
    let (status, html) = Pages::new(&site.address).get(&base).await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"phone-form\""), "{html}");

    let http = no_redirects();
    let response = http
        .post(format!("{}{base}/sign-in", site.address))
        .form(&[("phone", "0912 345 678")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 303);
    let code = inbox.code_for("+84912345678").await;
    assert_eq!(code.len(), 6);
    assert!(code.bytes().all(|b| b.is_ascii_digit()));
    let (topic, body) = inbox.received().pop().unwrap();
    assert_eq!(topic, "member.sign_in_code");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["tenant_id"], site.tenant.to_string());
    // Stored hashed: the code itself is nowhere in its table.
    let hashes = texts(&site, "SELECT code_hash AS value FROM member_sign_in_codes").await;
    assert!(!hashes.is_empty());
    assert!(hashes.iter().all(|hash| !hash.contains(&code)));

    let response = http
        .post(format!("{}{base}/code", site.address))
        .form(&[("phone", "+84912345678"), ("code", code.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 303);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    for attribute in [
        "HttpOnly",
        "Secure",
        "SameSite=Lax",
        &format!("Path={base}"),
    ] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    let token = cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned();
    // The token is stored hashed, too.
    let card = http
        .get(format!("{}{base}", site.address))
        .header("cookie", format!("patron_member={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(card.status().as_u16(), 200);
    let html = card.text().await.unwrap();
    assert!(html.len() < MEMBER_PAGE_BYTES_MAX, "{} bytes", html.len());
    assert!(html.contains("Xin chào, Lan"), "{html}");
    assert!(html.contains("id=\"balance\">15<"), "{html}");
    assert!(html.contains("<svg"), "the QR code: {html}");
    assert!(html.contains("15 điểm hết hạn ngày"), "{html}");
    assert!(
        html.contains("Chi tiêu thêm 4.850.000đ để lên Gold"),
        "{html}"
    );
    assert!(html.contains("<progress"), "{html}");
    assert!(
        html.contains("Theo số tiền mua hàng +15"),
        "history: {html}"
    );
    // The code works once.
    let response = http
        .post(format!("{}{base}/code", site.address))
        .form(&[("phone", "+84912345678"), ("code", code.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 422);
    dispatcher.stop().await;
}

/// The column `value` of every row of `sql`, for checks the pages do not show.
async fn texts(site: &Site, sql: &str) -> Vec<String> {
    site.store
        .db()
        .fetch(sql, vec![])
        .await
        .unwrap()
        .iter()
        .map(|row| row.text("value").unwrap())
        .collect()
}

#[tokio::test]
async fn signing_in_with_a_code_sent_through_the_tenants_webhook_on_sqlite() {
    signing_in_with_a_code_sent_through_the_tenants_webhook(false).await;
}

#[tokio::test]
async fn signing_in_with_a_code_sent_through_the_tenants_webhook_on_postgres() {
    signing_in_with_a_code_sent_through_the_tenants_webhook(true).await;
}

#[tokio::test]
async fn a_code_expires_after_ten_minutes_and_allows_five_tries() {
    let site = Site::start(false).await;
    member_with_points(&site, "0912345678", "Lan", 150_000).await;
    let store = &site.store;
    let phone = Phone::parse("0912345678").unwrap();
    let t0 = chrono::Utc::now() - chrono::Duration::hours(2);
    let just = chrono::Duration::microseconds(1);

    // Expiry: valid until the last microsecond before ten minutes, not at ten minutes.
    let issued = store
        .issue_sign_in_code(site.tenant, &phone, t0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(issued.expires_at, t0 + SIGN_IN_CODE_TTL);
    let at_expiry = store
        .check_sign_in_code(site.tenant, &phone, &issued.code, t0 + SIGN_IN_CODE_TTL)
        .await
        .unwrap();
    assert_eq!(at_expiry, CodeCheck::Expired);
    let before = store
        .check_sign_in_code(
            site.tenant,
            &phone,
            &issued.code,
            t0 + SIGN_IN_CODE_TTL - just,
        )
        .await
        .unwrap();
    assert!(matches!(before, CodeCheck::SignedIn(_)), "{before:?}");

    // Tries: four wrong, then the right one, signs in.
    let t1 = t0 + chrono::Duration::minutes(11);
    let issued = store
        .issue_sign_in_code(site.tenant, &phone, t1)
        .await
        .unwrap()
        .unwrap();
    let wrong = if issued.code == "000000" {
        "111111"
    } else {
        "000000"
    };
    for left in (1..SIGN_IN_CODE_ATTEMPTS_MAX).rev() {
        let check = store
            .check_sign_in_code(site.tenant, &phone, wrong, t1)
            .await
            .unwrap();
        assert_eq!(
            check,
            CodeCheck::Wrong {
                attempts_left: left
            }
        );
    }
    let last = store
        .check_sign_in_code(site.tenant, &phone, &issued.code, t1)
        .await
        .unwrap();
    assert!(matches!(last, CodeCheck::SignedIn(_)), "{last:?}");

    // Five wrong: the right one is refused after.
    let issued = store
        .issue_sign_in_code(site.tenant, &phone, t1)
        .await
        .unwrap()
        .unwrap();
    let wrong = if issued.code == "000000" {
        "111111"
    } else {
        "000000"
    };
    for _ in 1..SIGN_IN_CODE_ATTEMPTS_MAX {
        store
            .check_sign_in_code(site.tenant, &phone, wrong, t1)
            .await
            .unwrap();
    }
    let fifth = store
        .check_sign_in_code(site.tenant, &phone, wrong, t1)
        .await
        .unwrap();
    assert_eq!(fifth, CodeCheck::Locked);
    let right = store
        .check_sign_in_code(site.tenant, &phone, &issued.code, t1)
        .await
        .unwrap();
    assert_eq!(right, CodeCheck::Locked);

    // Codes per hour: the limit's last code is sent, the next refused.
    let t2 = t1 + chrono::Duration::minutes(61);
    for _ in 0..SIGN_IN_CODES_PER_HOUR_MAX {
        assert!(store
            .issue_sign_in_code(site.tenant, &phone, t2)
            .await
            .unwrap()
            .is_some());
    }
    assert!(store
        .issue_sign_in_code(site.tenant, &phone, t2)
        .await
        .is_err());
    // A phone that is no member's gets nothing, and is not told so.
    let stranger = Phone::parse("0988000111").unwrap();
    assert!(store
        .issue_sign_in_code(site.tenant, &stranger, t2)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn wrong_codes_are_refused_on_the_page_until_the_code_is_locked() {
    let site = Site::start(false).await;
    let inbox = subscribed_inbox(&site).await;
    let dispatcher = dispatcher(&site);
    member_with_points(&site, "0912345678", "Lan", 150_000).await;
    let base = format!("/m/{}", site.tenant);
    let pages = Pages::new(&site.address);
    let (status, html) = pages
        .post_form(&format!("{base}/sign-in"), &[("phone", "không phải số")])
        .await;
    assert_eq!(status, 422);
    assert!(html.contains("id=\"phone-error\""), "{html}");
    let (status, _) = pages
        .post_form(&format!("{base}/sign-in"), &[("phone", "0912345678")])
        .await;
    assert_eq!(status, 200);
    let code = inbox.code_for("+84912345678").await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let (status, html) = pages
        .post_form(
            &format!("{base}/code"),
            &[("phone", "+84912345678"), ("code", "12ab")],
        )
        .await;
    assert_eq!(status, 422);
    assert!(html.contains("Nhập mã 6 số."), "{html}");
    for left in (1..SIGN_IN_CODE_ATTEMPTS_MAX).rev() {
        let (status, html) = pages
            .post_form(
                &format!("{base}/code"),
                &[("phone", "+84912345678"), ("code", wrong)],
            )
            .await;
        assert_eq!(status, 422);
        assert!(html.contains("id=\"code-error\""), "{html}");
        assert!(
            html.contains(&format!("Bạn còn {left} lần thử")),
            "{left}: {html}"
        );
    }
    let (status, html) = pages
        .post_form(
            &format!("{base}/code"),
            &[("phone", "+84912345678"), ("code", wrong)],
        )
        .await;
    assert_eq!(status, 422);
    assert!(html.contains("nhập sai quá nhiều lần"), "{html}");
    let (status, html) = pages
        .post_form(
            &format!("{base}/code"),
            &[("phone", "+84912345678"), ("code", &code)],
        )
        .await;
    assert_eq!(status, 422, "the right code after five tries: {html}");
    dispatcher.stop().await;
}

#[tokio::test]
async fn a_signed_link_signs_in_and_a_tampered_or_expired_one_does_not() {
    let site = Site::start(false).await;
    let member = member_with_points(&site, "0912345678", "Lan", 150_000).await;
    // Staff make the link at the till.
    let cashier = site.signed_in(Role::Cashier).await;
    let (_, html) = cashier.get(&format!("/cashier/member/{member}")).await;
    let (status, html) = cashier
        .post_form(
            &format!("/cashier/member/{member}/link"),
            &[("csrf", &csrf_in(&html))],
        )
        .await;
    assert_eq!(status, 200, "{html}");
    let marker = "id=\"member-link\" class=\"till-link\" value=\"";
    let start = html.find(marker).unwrap() + marker.len();
    let link = html[start..start + html[start..].find('"').unwrap()].replace("&#38;", "&");
    assert!(
        link.starts_with(&format!("{}/m/{}/link?", site.address, site.tenant)),
        "{link}"
    );

    let http = no_redirects();
    let response = http.get(&link).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 303, "{link}");
    assert!(response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("HttpOnly"));
    let member_pages = Pages::new(&site.address);
    let (status, html) = member_pages.get(&link[site.address.len()..]).await;
    assert_eq!(status, 200);
    assert!(html.contains("Xin chào, Lan"), "{html}");

    // Tampered: another signature, another member, a later expiry.
    let signature_at = link.find("signature=").unwrap() + "signature=".len();
    let mut flipped = link.clone().into_bytes();
    flipped[signature_at] = if flipped[signature_at] == b'0' {
        b'1'
    } else {
        b'0'
    };
    let flipped = String::from_utf8(flipped).unwrap();
    let other = member_with_points(&site, "0988777666", "Khác", 50_000).await;
    let other_member = link.replace(&member.to_string(), &other.to_string());
    let expires_at = link.find("expires=").unwrap() + "expires=".len();
    let expires: i64 = link[expires_at..expires_at + 10].parse().unwrap();
    let later = link.replace(&expires.to_string(), &(expires + 3600).to_string());
    for bad in [flipped, other_member, later] {
        let response = http.get(&bad).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 403, "{bad}");
        assert!(response.headers().get("set-cookie").is_none());
        let html = response.text().await.unwrap();
        assert!(html.contains("Link không dùng được"), "{html}");
    }
    // Expired: made more than its lifetime ago.
    let old = site
        .store
        .member_link(
            site.tenant,
            member,
            chrono::Utc::now() - MEMBER_LINK_TTL - chrono::Duration::seconds(1),
        )
        .await
        .unwrap();
    let expired = format!(
        "{}/m/{}/link?member={}&expires={}&signature={}",
        site.address, site.tenant, old.member_id, old.expires, old.signature
    );
    assert_eq!(
        http.get(&expired).send().await.unwrap().status().as_u16(),
        403
    );
    // Another tenant's page does not take this tenant's link.
    let other_tenant = second_tenant(&site).await;
    let elsewhere = link.replace(&site.tenant.to_string(), &other_tenant.to_string());
    assert_eq!(
        http.get(&elsewhere).send().await.unwrap().status().as_u16(),
        403
    );
}

async fn second_tenant(site: &Site) -> TenantId {
    let tenant = site
        .store
        .create_tenant(&NewTenant::vietnamese("Trà Sữa Khác"))
        .await
        .unwrap();
    site.store
        .publish_programme(
            tenant,
            common::programme(),
            chrono::Utc::now() - chrono::Duration::days(1),
        )
        .await
        .unwrap();
    tenant
}

#[tokio::test]
async fn a_member_of_one_tenant_sees_nothing_of_another() {
    let site = Site::start(false).await;
    let member = member_with_points(&site, "0912345678", "Lan", 150_000).await;
    let other = second_tenant(&site).await;
    let session = site
        .store
        .start_member_session(site.tenant, member, chrono::Utc::now())
        .await
        .unwrap();
    let http = no_redirects();
    let own = http
        .get(format!("{}/m/{}", site.address, site.tenant))
        .header("cookie", format!("patron_member={}", session.token))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status().as_u16(), 200);
    // The same session presented to the other tenant's page: not signed in there.
    let foreign = http
        .get(format!("{}/m/{other}", site.address))
        .header("cookie", format!("patron_member={}", session.token))
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status().as_u16(), 303);
    assert_eq!(
        foreign.headers()["location"].to_str().unwrap(),
        format!("/m/{other}/sign-in")
    );
    let redeem = http
        .post(format!("{}/m/{other}/redeem", site.address))
        .header("cookie", format!("patron_member={}", session.token))
        .form(&[
            ("csrf", session.csrf_token.as_str()),
            ("event_id", "x-1"),
            ("reward_id", "r"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(redeem.status().as_u16(), 303);
    // A phone of this tenant gets no code from the other's page.
    let phone = Phone::parse("0912345678").unwrap();
    assert!(site
        .store
        .issue_sign_in_code(other, &phone, chrono::Utc::now())
        .await
        .unwrap()
        .is_none());
    // An unknown tenant is a 404.
    let missing = http
        .get(format!("{}/m/{}", site.address, TenantId::new()))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);
}

#[tokio::test]
async fn a_member_redeems_a_reward_once_and_sees_the_voucher() {
    let site = Site::start(false).await;
    let (status, reward) = site
        .api(
            "POST",
            "/v1/rewards",
            Some(json!({"name": "Bánh flan", "cost": 10})),
        )
        .await;
    assert_eq!(status, 201, "{reward}");
    site.api(
        "POST",
        "/v1/rewards",
        Some(json!({"name": "Bánh kem", "cost": 500})),
    )
    .await;
    let inbox = subscribed_inbox(&site).await;
    let dispatcher = dispatcher(&site);
    let member = member_with_points(&site, "0912345678", "Lan", 150_000).await;
    let pages = sign_in_with_code(&site, &inbox, "0912345678").await;
    let base = format!("/m/{}", site.tenant);
    let (_, html) = pages.get(&base).await;
    assert!(html.contains("Đổi 10 điểm"), "{html}");
    assert!(html.contains("500 điểm · cần thêm 485 điểm"), "{html}");
    let marker = "name=\"event_id\" value=\"";
    let start = html.find(marker).unwrap() + marker.len();
    let event_id = html[start..start + html[start..].find('"').unwrap()].to_owned();
    let fields = [
        ("csrf", csrf_in(&html)),
        ("event_id", event_id),
        ("reward_id", reward["id"].as_str().unwrap().to_owned()),
    ];
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, first) = pages.post_form(&format!("{base}/redeem"), &fields).await;
    assert_eq!(status, 200, "{first}");
    assert!(first.contains("id=\"redeemed\""), "{first}");
    assert!(first.contains("Bánh flan"), "{first}");
    let (status, second) = pages.post_form(&format!("{base}/redeem"), &fields).await;
    assert_eq!(status, 200, "{second}");
    let vouchers = site.store.vouchers(site.tenant, member).await.unwrap();
    assert_eq!(vouchers.len(), 1, "a second tap redeems nothing more");
    assert!(second.contains(&vouchers[0].code), "{second}");
    assert!(second.contains("id=\"balance\">5<"), "{second}");
    assert!(second.contains("Đổi quà: Bánh flan"), "history: {second}");
    // A forged form is refused.
    let mut forged = fields.clone();
    forged[0].1 = "forged";
    forged[1].1 = "member-redeem-forged";
    let (status, _) = pages.post_form(&format!("{base}/redeem"), &forged).await;
    assert_eq!(status, 403);
    // Signing out ends the session.
    let (status, html) = pages
        .post_form(&format!("{base}/sign-out"), &[("csrf", &csrf_in(&second))])
        .await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"phone-form\""), "{html}");
    let (_, html) = pages.get(&base).await;
    assert!(html.contains("id=\"phone-form\""), "{html}");
    dispatcher.stop().await;
}

#[tokio::test]
async fn a_member_named_script_shows_as_text_on_their_page() {
    let site = Site::start(false).await;
    let name = "<script>alert(1)</script>";
    let member = member_with_points(&site, "0912345678", name, 150_000).await;
    let session = site
        .store
        .start_member_session(site.tenant, member, chrono::Utc::now())
        .await
        .unwrap();
    let html = no_redirects()
        .get(format!("{}/m/{}", site.address, site.tenant))
        .header("cookie", format!("patron_member={}", session.token))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "{html}"
    );
    assert!(!html.contains(name), "{html}");
}

/// The issue: 40 requests at once got 38 codes past a limit of 5 an hour.
async fn forty_code_requests_at_once_issue_exactly_the_hourly_limit(postgres: bool) {
    let site = Site::start(postgres).await;
    member_with_points(&site, "0912345678", "Lan", 150_000).await;
    let address = format!("{}/m/{}/sign-in", site.address, site.tenant);
    let requests: Vec<_> = (0..40)
        .map(|_| {
            let address = address.clone();
            tokio::spawn(async move {
                no_redirects()
                    .post(address)
                    .form(&[("phone", "0912345678")])
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for request in requests {
        statuses.push(request.await.unwrap());
    }
    let issued = statuses.iter().filter(|status| **status == 303).count();
    let refused = statuses.iter().filter(|status| **status == 422).count();
    assert_eq!(issued, SIGN_IN_CODES_PER_HOUR_MAX as usize, "{statuses:?}");
    assert_eq!(issued + refused, 40, "{statuses:?}");
    let stored = site
        .store
        .db()
        .fetch_one("SELECT COUNT(*) AS n FROM member_sign_in_codes", vec![])
        .await
        .unwrap()
        .int("n")
        .unwrap();
    assert_eq!(stored, SIGN_IN_CODES_PER_HOUR_MAX);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_code_requests_at_once_issue_exactly_the_hourly_limit_on_sqlite() {
    forty_code_requests_at_once_issue_exactly_the_hourly_limit(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_code_requests_at_once_issue_exactly_the_hourly_limit_on_postgres() {
    forty_code_requests_at_once_issue_exactly_the_hourly_limit(true).await;
}

/// The issue: a member sent a future receipt number as the redemption's event id, and the
/// till's purchase with that number was then refused (409).
#[tokio::test]
async fn a_member_cannot_take_a_receipt_number_as_a_redemptions_event_id() {
    let site = Site::start(false).await;
    let (status, reward) = site
        .api(
            "POST",
            "/v1/rewards",
            Some(json!({"name": "Bánh flan", "cost": 10})),
        )
        .await;
    assert_eq!(status, 201, "{reward}");
    let member = member_with_points(&site, "0912345678", "Lan", 150_000).await;
    let session = site
        .store
        .start_member_session(site.tenant, member, chrono::Utc::now())
        .await
        .unwrap();
    let cookie = format!("patron_member={}", session.token);
    let http = no_redirects();
    let card = format!("{}/m/{}", site.address, site.tenant);
    let redeem = |event_id: String| {
        let http = http.clone();
        let cookie = cookie.clone();
        let address = format!("{card}/redeem");
        let fields = [
            ("csrf", session.csrf_token.clone()),
            ("event_id", event_id),
            ("reward_id", reward["id"].as_str().unwrap().to_owned()),
        ];
        async move {
            http.post(address)
                .header("cookie", cookie)
                .form(&fields)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        redeem("R-1001".into()).await,
        422,
        "not a token the page made"
    );
    assert!(site
        .store
        .vouchers(site.tenant, member)
        .await
        .unwrap()
        .is_empty());
    // The page's own token redeems, under an id in the member page's namespace.
    let html = http
        .get(&card)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let marker = "name=\"event_id\" value=\"";
    let start = html.find(marker).unwrap() + marker.len();
    let token = html[start..start + html[start..].find('"').unwrap()].to_owned();
    assert_eq!(redeem(token.clone()).await, 303);
    let ids = texts(
        &site,
        "SELECT event_id AS value FROM events WHERE event_id NOT LIKE 'sale-%'",
    )
    .await;
    assert_eq!(
        ids,
        vec![format!("member-page:{member}:{token}")],
        "prefixed by the server with the member"
    );
    // The till's sale with that receipt number goes through.
    let (status, body) = site
        .api(
            "POST",
            "/v1/events",
            Some(json!({"id": "R-1001", "type": "purchase", "store": "HN01",
                        "member": {"phone": "0912345678"}, "amount": 50_000})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

/// The issue: the till's member link was built from the request's `Host`.
#[tokio::test]
async fn the_member_link_names_the_public_address_not_the_host_header() {
    for public_url in [Some("https://loyalty.example"), None] {
        let site = Site::start_with(
            false,
            patron_server::ServerOptions {
                public_url: public_url.map(str::to_owned),
                ..patron_server::ServerOptions::default()
            },
        )
        .await;
        let member = member_with_points(&site, "0912345678", "Lan", 150_000).await;
        let cashier = site.signed_in(Role::Cashier).await;
        let (_, html) = cashier.get(&format!("/cashier/member/{member}")).await;
        let html = cashier
            .http
            .post(format!("{}/cashier/member/{member}/link", site.address))
            .header("host", "evil.example")
            .header("x-forwarded-proto", "https")
            .form(&[("csrf", csrf_in(&html))])
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let expected = format!(
            "{}/m/{}/link?",
            public_url.unwrap_or(&site.address),
            site.tenant
        );
        assert!(html.contains(&expected), "{expected}: {html}");
        assert!(!html.contains("evil.example"), "{html}");
    }
}

#[tokio::test]
async fn the_sign_in_page_says_why_plain_http_at_a_network_address_cannot_keep_a_session() {
    let site = Site::start(false).await;
    let page = |host: Option<&'static str>| {
        let address = format!("{}/m/{}/sign-in", site.address, site.tenant);
        async move {
            let mut request = reqwest::Client::new().get(address);
            if let Some(host) = host {
                request = request.header("host", host);
            }
            request.send().await.unwrap().text().await.unwrap()
        }
    };
    let html = page(Some("192.168.1.20:8080")).await;
    assert!(html.contains("id=\"member-insecure\""), "{html}");
    assert!(html.contains("địa chỉ https://"), "{html}");
    let html = page(None).await;
    assert!(!html.contains("id=\"member-insecure\""), "{html}");
}

/// Store credit and stamps, beside points: the member's page, the member's profile in the
/// admin, the till and the API show each balance and what each transaction moved.
#[tokio::test]
async fn store_credit_and_stamps_show_wherever_points_do() {
    let site = Site::start(false).await;
    let inbox = subscribed_inbox(&site).await;
    let dispatcher = dispatcher(&site);
    let member = member_with_points(&site, "0912345679", "Hoa", 150_000).await;
    let (status, body) = site
        .api(
            "POST",
            "/v1/events",
            Some(json!({
                "id": "credit-1", "type": "adjustment", "member": {"phone": "0912345679"},
                "asset": "money", "points": 150_000, "reason": "Hoàn tiền đơn lỗi",
            })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["holdings"]["money"], 150_000);
    let stamps = patron_store::IncomingEvent {
        tenant_id: site.tenant,
        id: patron_core::EventId::parse("stamps-1").unwrap(),
        occurred_at: chrono::Utc::now(),
        body_hash: "stamps-1".into(),
        kind: patron_store::IncomingKind::Adjustment {
            member: patron_store::MemberRef::Id(member),
            asset: patron_core::ledger::Asset::Stamps("coffee".into()),
            points: 3,
            reason: "Tem tặng".into(),
            actor: Some("cli".into()),
        },
        actor: Some("cli".into()),
        store_scope: None,
    };
    site.journal.submit(stamps).await.unwrap();
    // The API: holdings on the member, and on each history entry what it moved.
    let (status, view) = site
        .api("GET", &format!("/v1/members/{member}"), None)
        .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(
        view["holdings"],
        json!([
            {"asset": "money", "balance": 150_000, "available": 150_000, "expiring_soon": 0},
            {"asset": "stamps:coffee", "balance": 3, "available": 3, "expiring_soon": 0}
        ])
    );
    assert_eq!(view["balance"], 15, "points untouched");
    let (status, history) = site
        .api("GET", &format!("/v1/members/{member}/history"), None)
        .await;
    assert_eq!(status, 200, "{history}");
    let moved: Vec<(i64, serde_json::Value)> = history["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("{history}"))
        .iter()
        .map(|entry| (entry["points"].as_i64().unwrap(), entry["holdings"].clone()))
        .collect();
    assert!(moved.contains(&(0, json!({"money": 150_000}))), "{history}");
    assert!(
        moved.contains(&(0, json!({"stamps:coffee": 3}))),
        "{history}"
    );
    assert!(moved.contains(&(15, serde_json::Value::Null)), "{history}");
    // The member's page.
    let pages = sign_in_with_code(&site, &inbox, "0912345679").await;
    let (_, html) = pages.get(&format!("/m/{}", site.tenant)).await;
    assert!(html.contains("id=\"holdings\""), "{html}");
    assert!(
        html.contains("Tiền tích luỹ</span> <strong>150.000đ</strong>"),
        "{html}"
    );
    assert!(
        html.contains("Tem trên thẻ coffee</span> <strong>3 tem</strong>"),
        "{html}"
    );
    assert!(html.contains("+150.000đ Tiền tích luỹ"), "history: {html}");
    // The admin's profile of the member, and the till.
    let manager = site.signed_in(Role::Manager).await;
    let (status, html) = manager.get(&format!("/admin/members/{member}")).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("member-holding"), "{html}");
    assert!(html.contains("150.000đ"), "{html}");
    assert!(
        html.contains("<div class=\"history-other\">+3 tem Tem trên thẻ coffee</div>"),
        "{html}"
    );
    let cashier = site.signed_in(Role::Cashier).await;
    let (status, html) = cashier.get(&format!("/cashier/member/{member}")).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("till-holding"), "{html}");
    assert!(
        html.contains("<span class=\"figure\">3 tem</span>"),
        "{html}"
    );
    dispatcher.stop().await;
}
