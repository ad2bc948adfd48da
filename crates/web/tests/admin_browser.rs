//! The owner's dashboard and a member's profile in a real browser, with two months of a
//! café's purchases so the charts have something to draw; saves the screenshots the README
//! shows.

mod common;

use common::{Browser, Site, DESKTOP, PHONE};
use patron_store::users::Role;
use serde_json::json;

const CUSTOMERS: [(&str, &str); 8] = [
    ("0912000101", "Nguyễn Thị Lan"),
    ("0912000102", "Trần Văn Minh"),
    ("0912000103", "Lê Hoàng Anh"),
    ("0912000104", "Phạm Thu Hà"),
    ("0912000105", "Vũ Đức Thắng"),
    ("0912000106", "Đặng Mai Phương"),
    ("0912000107", "Bùi Quốc Huy"),
    ("0912000108", "Hoàng Ngọc Trâm"),
];

/// About sixty purchases over the last two months in two stores, three rewards taken, and
/// one member who reached Gold.
async fn two_months(site: &Site) -> String {
    site.store
        .create_store(site.tenant, "HCM1", "Hồ Chí Minh 1")
        .await
        .unwrap();
    let now = chrono::Utc::now();
    let mut regular = String::new();
    for number in 0..60i64 {
        let (phone, name) = CUSTOMERS[(number * 5 % 8) as usize];
        if number == 40 {
            // Lan's big order: she is Gold from here on.
            let (status, body) = site
            .api(
                "POST",
                "/v1/events",
                Some(
                    json!({"id": "big-order", "type": "purchase", "member": {"phone": CUSTOMERS[0].0},
                            "amount": 5_200_000, "store": "HN01",
                            "occurred_at": (now - chrono::Duration::days(20)).to_rfc3339()}),
                ),
            )
            .await;
            assert_eq!(status, 200, "{body}");
        }
        let days_ago = 59 - number;
        let amount = 35_000 + (number * 37_000) % 420_000;
        let store = if number % 3 == 0 { "HCM1" } else { "HN01" };
        let at = now - chrono::Duration::days(days_ago) - chrono::Duration::hours(1 + number % 7);
        let (status, body) = site
            .api(
                "POST",
                "/v1/events",
                Some(json!({
                    "id": format!("bill-{number}"), "type": "purchase",
                    "member": {"phone": phone}, "profile": {"name": name},
                    "amount": amount, "store": store, "occurred_at": at.to_rfc3339(),
                    "items": [{"category": "cake", "quantity": 1 + number % 2, "amount": 30000}],
                })),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        if phone == CUSTOMERS[0].0 {
            regular = body["member_id"].as_str().unwrap().to_owned();
        }
    }
    let mut rewards = Vec::new();
    for (name, cost) in [
        ("Bánh ngọt", 20),
        ("Cà phê sữa đá", 30),
        ("Túi vải Patron", 60),
    ] {
        let (status, reward) = site
            .api(
                "POST",
                "/v1/rewards",
                Some(json!({"name": name, "cost": cost})),
            )
            .await;
        assert_eq!(status, 201, "{reward}");
        rewards.push(reward["id"].as_str().unwrap().to_owned());
    }
    for (number, (phone, _)) in CUSTOMERS.iter().enumerate().take(5) {
        let (status, body) = site
            .api(
                "POST",
                "/v1/events",
                Some(
                    json!({"id": format!("reward-{number}"), "type": "redemption",
                            "member": {"phone": phone}, "reward_id": rewards[number % 2]}),
                ),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = site
        .api(
            "POST",
            &format!("/v1/members/{regular}/adjustments"),
            Some(json!({"id": "sorry-1", "points": 15, "reason": "Xin lỗi vì đồ uống giao chậm"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    regular
}

#[tokio::test]
async fn the_owner_reads_the_dashboard_and_a_member_in_a_browser() {
    let site = Site::start(false).await;
    let regular = two_months(&site).await;
    let browser = Browser::start(DESKTOP).await;
    browser.sign_in(&site, Role::Owner).await;
    assert_eq!(browser.path().await, "/admin");
    browser
        .goto(&format!("{}/admin?period=90d", site.address))
        .await;
    let period = browser.text(".dash-period").await;
    assert!(period.starts_with("Số liệu từ"), "{period}");
    let source = browser.source().await;
    assert_eq!(source.matches("<svg").count(), 4, "{source}");
    assert!(source.contains("Gold"), "the tier chart names Gold");
    // Tall enough to show the figures and the charts in one picture.
    browser.client.set_window_size(1280, 1500).await.unwrap();
    browser.screenshot("admin-dashboard").await;
    browser
        .client
        .set_window_size(DESKTOP.0, DESKTOP.1)
        .await
        .unwrap();

    browser
        .goto(&format!("{}/admin/members?q=Lan", site.address))
        .await;
    browser
        .click(&format!("a[href='/admin/members/{regular}']"))
        .await;
    let progress = browser.text("#tier-progress").await;
    assert!(progress.contains("cao nhất"), "{progress}");
    let history = browser.text("#history").await;
    assert!(
        history.contains("Xin lỗi vì đồ uống giao chậm"),
        "{history}"
    );
    browser.client.set_window_size(1280, 1500).await.unwrap();
    browser.screenshot("admin-member").await;
    browser.close().await;

    // At a phone's width the charts scale down and the page does not scroll sideways.
    let phone = Browser::start(PHONE).await;
    phone.sign_in(&site, Role::Owner).await;
    phone
        .goto(&format!("{}/admin?period=90d", site.address))
        .await;
    let widths = phone
        .client
        .execute(
            "return [document.documentElement.scrollWidth, window.innerWidth, \
             document.querySelector('.dash-charts svg').getBoundingClientRect().width];",
            vec![],
        )
        .await
        .unwrap();
    let widths: Vec<f64> = serde_json::from_value(widths).unwrap();
    assert!(
        widths[0] <= widths[1] + 1.0,
        "no sideways scroll: {widths:?}"
    );
    assert!(widths[2] > 250.0 && widths[2] <= widths[1], "{widths:?}");
    phone.close().await;
}
