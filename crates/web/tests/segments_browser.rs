//! The segment builder in a real browser: a marketer picks fields, sees the tests narrowed to
//! the field's kind, counts, saves, and lands on the segment with its members.

mod common;

use common::{Browser, Site, DESKTOP};
use fantoccini::Locator;
use patron_store::users::Role;
use serde_json::json;

#[tokio::test]
async fn a_marketer_builds_a_segment_with_the_field_picker() {
    let site = Site::start(false).await;
    for (id, phone, name, amount) in [
        ("b-1", "0912000201", "Nguyễn Thị Lan", 6_000_000),
        ("b-2", "0912000202", "Trần Văn Minh", 2_500_000),
        ("b-3", "0912000203", "Lê Hoàng Anh", 90_000),
    ] {
        let (status, body) = site
            .api(
                "POST",
                "/v1/events",
                Some(
                    json!({"id": id, "type": "purchase", "member": {"phone": phone},
                            "profile": {"name": name}, "amount": amount, "store": "HN01"}),
                ),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let browser = Browser::start(DESKTOP).await;
    browser.sign_in(&site, Role::Marketer).await;
    browser
        .goto(&format!("{}/admin/segments", site.address))
        .await;
    browser.click("#new-segment").await;
    browser.fill("#segment-name", "Chi tiêu lớn").await;

    // First row: spend, ever ≥ 2.000.000đ. Picking a number field leaves only number tests.
    let field = browser
        .client
        .find(Locator::Css("#rows-0-field"))
        .await
        .unwrap();
    field.select_by_value("total_spend").await.unwrap();
    let offered = browser
        .client
        .execute(
            "return Array.from(document.querySelectorAll('#rows-0-operator option'))\
             .filter(o => !o.disabled).map(o => o.value);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(offered, json!(["eq", "ne", "lt", "le", "gt", "ge"]));
    let help = browser.text("#rows-0-help").await;
    assert!(help.contains("Số nguyên"), "{help}");
    browser
        .client
        .find(Locator::Css("#rows-0-operator"))
        .await
        .unwrap()
        .select_by_value("ge")
        .await
        .unwrap();
    browser.fill("#rows-0-value", "2.000.000").await;

    browser.click("#count-button").await;
    let headline = browser.text("#count-headline").await;
    assert_eq!(headline, "2 trên 3 thành viên");
    let sample = browser.text("#count-sample").await;
    assert!(sample.contains("Nguyễn Thị Lan"), "{sample}");
    assert!(sample.contains("Trần Văn Minh"), "{sample}");
    assert!(!sample.contains("Lê Hoàng Anh"), "{sample}");
    let cel = browser.text("#generated-cel").await;
    assert_eq!(cel, "member.total_spend >= 2000000");

    // Second row (the blank one the count drew): the tier is not Gold.
    browser
        .client
        .find(Locator::Css("#rows-1-field"))
        .await
        .unwrap()
        .select_by_value("tier")
        .await
        .unwrap();
    let operator = browser
        .client
        .execute(
            "return document.querySelector('#rows-1-operator').value;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(operator, json!("is"), "a text field's first test is chosen");
    browser
        .client
        .find(Locator::Css("#rows-1-operator"))
        .await
        .unwrap()
        .select_by_value("is_not")
        .await
        .unwrap();
    browser.fill("#rows-1-value", "gold").await;
    browser.fill("#discount", "5").await;
    browser.fill("#note", "Mời dùng thử bánh mới").await;
    browser.click("#count-button").await;
    assert_eq!(browser.text("#count-headline").await, "1 trên 3 thành viên");

    browser.click("#save-button").await;
    let count = browser.text("#segment-count").await;
    assert_eq!(count, "1");
    let members = browser.text("#segment-members").await;
    assert!(members.contains("Trần Văn Minh"), "{members}");
    assert!(!members.contains("Nguyễn Thị Lan"), "{members}");
    let condition = browser.text("#segment-condition").await;
    assert_eq!(
        condition,
        "member.total_spend >= 2000000 && member.tier != \"gold\""
    );
    browser.click("#segment-members a").await;
    let title = browser.text("h1").await;
    assert!(title.contains("Trần Văn Minh"), "{title}");

    browser
        .goto(&format!("{}/admin/segments", site.address))
        .await;
    let list = browser.text("#segments").await;
    assert!(list.contains("Chi tiêu lớn"), "{list}");
    assert!(list.contains("−5%"), "{list}");
    browser.close().await;
}
