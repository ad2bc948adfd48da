//! The programme editor: draft, preview, publish, rewards, over plain HTTP and in a browser.

mod common;

use common::{csrf_in, Browser, Pages, Site, DESKTOP};
use patron_store::users::Role;
use serde_json::json;
use std::time::Duration;

/// The café programme (see `common::programme`) as the editor's form sends it.
fn cafe_form(csrf: &str) -> Vec<(String, String)> {
    [
        ("csrf", csrf),
        ("amount_per_point", "10000"),
        ("point_value", "1000"),
        ("return_window_days", "0"),
        ("expiry.kind", "days"),
        ("expiry.days", "365"),
        ("expiry.months", ""),
        ("cap_per_event", ""),
        ("cap_per_day", ""),
        ("rules[0].id", "cake"),
        ("rules[0].name", "Cake"),
        ("rules[0].when", "'cake' in event.categories"),
        ("rules[0].points", "event.quantity_by_category['cake'] * 10"),
        ("rules[0].once_per", ""),
        ("rules[1].id", ""),
        ("rules[1].name", ""),
        ("rules[1].when", ""),
        ("rules[1].points", ""),
        ("tiers[0].code", "member"),
        ("tiers[0].name", "Member"),
        ("tiers[0].threshold", "0"),
        ("tiers[0].multiplier_percent", "100"),
        ("tiers[1].code", "gold"),
        ("tiers[1].name", "Gold"),
        ("tiers[1].threshold", "5000000"),
        ("tiers[1].multiplier_percent", "150"),
        ("qualification.metric", "spend"),
        ("qualification.window", "rolling_12_months"),
        ("qualification.grace_days", "30"),
    ]
    .iter()
    .map(|(name, value)| (name.to_string(), value.to_string()))
    .collect()
}

fn set(fields: &mut Vec<(String, String)>, name: &str, value: &str) {
    match fields.iter_mut().find(|(field, _)| field == name) {
        Some(field) => field.1 = value.to_owned(),
        None => fields.push((name.to_owned(), value.to_owned())),
    }
}

async fn post(pages: &Pages, path: &str, fields: &[(String, String)]) -> (u16, String) {
    let borrowed: Vec<(&str, &str)> = fields
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    pages.post_form(path, &borrowed).await
}

/// Opens the editor and returns the page's CSRF token.
async fn open_editor(pages: &Pages) -> String {
    let (status, html) = pages.get("/admin/programme").await;
    assert_eq!(status, 200, "{html}");
    csrf_in(&html)
}

/// 320,000đ with two cakes, previewed under the draft.
const SAMPLE: &str =
    "/admin/programme/preview?amount=320.000&items[0].category=cake&items[0].quantity=2&items[0].amount=60000";

async fn draft_preview_publish(postgres: bool) {
    let site = Site::start(postgres).await;
    let owner = site.signed_in(Role::Owner).await;
    let csrf = open_editor(&owner).await;
    let mut fields = cafe_form(&csrf);
    set(&mut fields, "amount_per_point", "8.000");
    let (status, html) = post(&owner, "/admin/programme/draft", &fields).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Đã lưu bản nháp"), "{html}");
    assert!(
        html.contains("value=\"8000\""),
        "the draft is shown: {html}"
    );

    // 320,000 / 8,000 = 40 base points, and 2 cakes × 10 = 20: 60.
    let (status, html) = owner.get(SAMPLE).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Giao dịch này được 60 điểm vì:"), "{html}");
    assert!(
        html.contains("1 điểm mỗi 8.000đ trên 320.000đ → <span class=\"points\">40</span>"),
        "{html}"
    );
    assert!(
        html.contains("Quy tắc Cake (cake)</strong>: 20 → <span class=\"points\">20</span>"),
        "{html}"
    );
    assert!(html.contains("Theo bản nháp"), "{html}");

    // The version in force still gives 32 + 20.
    let (_, body) = site
        .api(
            "POST",
            "/v1/programme/dry-run",
            Some(json!({"programme": "current", "purchase": {"member": {"phone": "0912345678"},
                "amount": 320000, "items": [{"category": "cake", "quantity": 2, "amount": 60000}]}})),
        )
        .await;
    assert_eq!(body["points_earned"], 52, "{body}");

    let (status, html) = owner
        .post_form(
            "/admin/programme/publish",
            &[("csrf", &csrf), ("effective_from", "")],
        )
        .await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Đã công bố phiên bản 2"), "{html}");
    let (status, versions) = site.api("GET", "/v1/programme/versions", None).await;
    assert_eq!(status, 200);
    let versions = versions.as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[1]["current"], true);
    assert_eq!(versions[1]["definition"]["amount_per_point"], 8000);
    // The draft is gone; the form now shows the published version.
    let (status, _) = site.api("GET", "/v1/programme/draft", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn an_owner_saves_previews_and_publishes_on_sqlite() {
    draft_preview_publish(false).await;
}

#[tokio::test]
async fn an_owner_saves_previews_and_publishes_on_postgres() {
    draft_preview_publish(true).await;
}

async fn purchase(site: &Site, id: &str, phone: &str, amount: i64) {
    let (status, body) = site
        .api(
            "POST",
            "/v1/events",
            Some(
                json!({"id": id, "type": "purchase", "member": {"phone": phone},
                        "store": "HN01", "amount": amount}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

/// Four members: A gold (6,000,000đ), B 3,000,000đ, C 1,000,000đ, D 10,000đ. A draft with
/// Silver at 2,000,000đ and Gold at 7,000,000đ moves B up and A down: 2 of 4.
async fn tier_impact(postgres: bool) {
    let site = Site::start(postgres).await;
    purchase(&site, "A-1", "0900000001", 6_000_000).await;
    purchase(&site, "B-1", "0900000002", 2_000_000).await;
    purchase(&site, "B-2", "0900000002", 1_000_000).await;
    purchase(&site, "C-1", "0900000003", 1_000_000).await;
    purchase(&site, "D-1", "0900000004", 10_000).await;

    let mut definition = common::programme();
    definition.tiers = serde_json::from_value(json!([
        {"code": "member", "name": "Member", "threshold": 0},
        {"code": "silver", "name": "Silver", "threshold": 2000000, "multiplier_percent": 120},
        {"code": "gold", "name": "Gold", "threshold": 7000000, "multiplier_percent": 150}
    ]))
    .unwrap();
    let impact = site
        .store
        .tier_impact(site.tenant, &definition, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(
        (impact.members, impact.changed, impact.up, impact.down),
        (4, 2, 1, 1)
    );
    // The programme in force moves nobody: everyone already holds the tier their spend gives.
    let unchanged = site
        .store
        .tier_impact(site.tenant, &common::programme(), chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!((unchanged.members, unchanged.changed), (4, 0));
    // Counted on lifetime points instead, with Silver at 150 points: A (600) and B (300) are
    // Silver or better; A falls from Gold, B rises.
    definition.qualification.metric = patron_core::programme::QualificationMetric::Points;
    definition.qualification.window = patron_core::programme::QualificationWindow::Lifetime;
    definition.tiers[1].threshold = 150;
    definition.tiers[2].threshold = 1000;
    let by_points = site
        .store
        .tier_impact(site.tenant, &definition, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!((by_points.changed, by_points.up, by_points.down), (2, 1, 1));

    // The same count, through the editor's preview.
    let owner = site.signed_in(Role::Owner).await;
    let csrf = open_editor(&owner).await;
    let mut fields = cafe_form(&csrf);
    set(&mut fields, "tiers[1].code", "silver");
    set(&mut fields, "tiers[1].name", "Silver");
    set(&mut fields, "tiers[1].threshold", "2000000");
    set(&mut fields, "tiers[1].multiplier_percent", "120");
    set(&mut fields, "tiers[2].code", "gold");
    set(&mut fields, "tiers[2].name", "Gold");
    set(&mut fields, "tiers[2].threshold", "7000000");
    set(&mut fields, "tiers[2].multiplier_percent", "150");
    let (status, html) = post(&owner, "/admin/programme/draft", &fields).await;
    assert_eq!(status, 200, "{html}");
    let (status, html) = owner
        .get("/admin/programme/preview?amount=100000&phone=0900000002")
        .await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("2 trên 4 thành viên sẽ đổi hạng (1 lên, 1 xuống)"),
        "{html}"
    );
    assert!(html.contains("Thành viên có thật"), "{html}");
}

async fn refund(site: &Site, id: &str, original: &str, amount: i64) {
    let (status, body) = site
        .api(
            "POST",
            "/v1/events",
            Some(json!({"id": id, "type": "refund", "original_id": original, "amount": amount})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

/// The preview once said "175 of 9,979 members will change tier" for a draft identical to the
/// version in force: it compared each member's tier held with the tier their value reaches,
/// so members in a grace period (below their tier, not yet lowered by a review) counted as
/// moving. A: Gold on 6,000,000đ. E and F: Gold, then a refund leaves 4,000,000đ and the review
/// starts their grace period (still Gold). B: 3,000,000đ, C: 10,000đ, Member.
async fn tier_impact_counts_grace_alike(postgres: bool) {
    let site = Site::start(postgres).await;
    purchase(&site, "A-1", "0900000001", 6_000_000).await;
    purchase(&site, "B-1", "0900000002", 3_000_000).await;
    purchase(&site, "C-1", "0900000003", 10_000).await;
    purchase(&site, "E-1", "0900000005", 6_000_000).await;
    refund(&site, "E-R", "E-1", 2_000_000).await;
    purchase(&site, "F-1", "0900000006", 6_000_000).await;
    refund(&site, "F-R", "F-1", 2_000_000).await;
    site.journal
        .run_job(patron_store::jobs::JobKind::ReviewTiers, chrono::Utc::now())
        .await
        .unwrap();
    let (_, member) = site
        .api("GET", "/v1/members/by-phone/0900000005", None)
        .await;
    assert_eq!(member["tier"]["tier"], "gold", "E is still Gold: {member}");
    assert!(
        member["tier"]["grace_ends_at"].is_string(),
        "in grace: {member}"
    );

    // A draft identical to the version in force moves nobody.
    let identical = site
        .store
        .tier_impact(site.tenant, &common::programme(), chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(
        (
            identical.members,
            identical.changed,
            identical.up,
            identical.down
        ),
        (5, 0, 0, 0)
    );
    // Gold raised to 6,500,000đ: only A would hold another tier (E and F land in Member
    // under either programme).
    let mut raised = common::programme();
    raised.tiers[1].threshold = 6_500_000;
    let impact = site
        .store
        .tier_impact(site.tenant, &raised, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(
        (impact.members, impact.changed, impact.up, impact.down),
        (5, 1, 0, 1)
    );
    // Gold lowered to 3,000,000đ: B rises, and E and F keep Gold instead of losing it.
    let mut lowered = common::programme();
    lowered.tiers[1].threshold = 3_000_000;
    let impact = site
        .store
        .tier_impact(site.tenant, &lowered, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!((impact.changed, impact.up, impact.down), (3, 3, 0));

    // Through the editor: the draft as saved from the version in force changes no one.
    let owner = site.signed_in(Role::Owner).await;
    let csrf = open_editor(&owner).await;
    let (status, html) = post(&owner, "/admin/programme/draft", &cafe_form(&csrf)).await;
    assert_eq!(status, 200, "{html}");
    let (status, html) = owner
        .get("/admin/programme/preview?amount=100000&phone=0900000002")
        .await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("0 trên 5 thành viên sẽ đổi hạng (0 lên, 0 xuống)"),
        "{html}"
    );
}

#[tokio::test]
async fn tier_impact_of_an_identical_draft_is_zero_on_sqlite() {
    tier_impact_counts_grace_alike(false).await;
}

#[tokio::test]
async fn tier_impact_of_an_identical_draft_is_zero_on_postgres() {
    tier_impact_counts_grace_alike(true).await;
}

#[tokio::test]
async fn tier_impact_is_exact_on_sqlite() {
    tier_impact(false).await;
}

#[tokio::test]
async fn tier_impact_is_exact_on_postgres() {
    tier_impact(true).await;
}

#[tokio::test]
async fn a_bad_rule_is_refused_next_to_its_field_and_the_input_kept() {
    let site = Site::start(false).await;
    let owner = site.signed_in(Role::Owner).await;
    let csrf = open_editor(&owner).await;
    let mut fields = cafe_form(&csrf);
    set(
        &mut fields,
        "rules[0].when",
        "'cake' in event.categories &&",
    );
    let (status, html) = post(&owner, "/admin/programme/draft", &fields).await;
    assert_eq!(status, 422, "{html}");
    assert!(html.contains("id=\"rules-0-when-error\""), "{html}");
    assert!(html.contains("Điều kiện CEL không hợp lệ"), "{html}");
    assert!(
        html.contains("aria-invalid=\"true\" aria-describedby=\"rules-0-when-error\""),
        "{html}"
    );
    assert!(
        html.contains("&#39;cake&#39; in event.categories &#38;&#38;"),
        "what was typed is kept, escaped: {html}"
    );

    // A threshold that is not a number, and one below the tier under it.
    let mut fields = cafe_form(&csrf);
    set(&mut fields, "tiers[1].threshold", "nhiều");
    let (status, html) = post(&owner, "/admin/programme/draft", &fields).await;
    assert_eq!(status, 422);
    assert!(html.contains("id=\"tiers-1-threshold-error\""), "{html}");
    assert!(html.contains("Nhập một số nguyên"), "{html}");
    assert!(html.contains("value=\"nhiều\""), "{html}");
    set(&mut fields, "tiers[1].threshold", "0");
    let (status, html) = post(&owner, "/admin/programme/draft", &fields).await;
    assert_eq!(status, 422);
    assert!(
        html.contains("Ngưỡng phải lớn hơn ngưỡng của hạng bên dưới"),
        "{html}"
    );

    // A rule row ticked for removal goes; nothing was saved before.
    let (status, _) = site.api("GET", "/v1/programme/draft", None).await;
    assert_eq!(status, 404);
    let mut fields = cafe_form(&csrf);
    set(&mut fields, "rules[0].remove", "on");
    let (status, _) = post(&owner, "/admin/programme/draft", &fields).await;
    assert_eq!(status, 200);
    let (_, draft) = site.api("GET", "/v1/programme/draft", None).await;
    assert_eq!(draft["definition"]["rules"], json!([]));

    // A malformed preview amount is named too.
    let (status, html) = owner.get("/admin/programme/preview?amount=abc").await;
    assert_eq!(status, 422);
    assert!(html.contains("id=\"preview-amount-error\""), "{html}");
}

#[tokio::test]
async fn rewards_are_added_through_the_catalogue() {
    let site = Site::start(false).await;
    let marketer = site.signed_in(Role::Marketer).await;
    let csrf = open_editor(&marketer).await;
    let (status, html) = marketer
        .post_form(
            "/admin/programme/rewards",
            &[
                ("csrf", &csrf),
                ("name", "Bánh <ngọt>"),
                ("cost", "abc"),
                ("stock", ""),
                ("per_member_limit", ""),
                ("voucher_valid_days", "30"),
            ],
        )
        .await;
    assert_eq!(status, 422);
    assert!(html.contains("id=\"reward-cost-error\""), "{html}");
    assert!(html.contains("value=\"Bánh &#60;ngọt&#62;\""), "{html}");
    let (status, html) = marketer
        .post_form(
            "/admin/programme/rewards",
            &[
                ("csrf", &csrf),
                ("name", "Bánh <ngọt>"),
                ("cost", "50"),
                ("stock", "10"),
                ("per_member_limit", "0"),
                ("voucher_valid_days", "30"),
            ],
        )
        .await;
    assert_eq!(status, 422, "the store's own check: {html}");
    assert!(
        html.contains("id=\"reward-per_member_limit-error\""),
        "{html}"
    );
    let (status, html) = marketer
        .post_form(
            "/admin/programme/rewards",
            &[
                ("csrf", &csrf),
                ("name", "Bánh <ngọt>"),
                ("cost", "50"),
                ("stock", "10"),
                ("per_member_limit", "2"),
                ("voucher_valid_days", "30"),
            ],
        )
        .await;
    assert_eq!(status, 200);
    assert!(html.contains("Đã thêm phần thưởng"), "{html}");
    assert!(html.contains("<td>Bánh &#60;ngọt&#62;</td>"), "{html}");
    let (_, rewards) = site.api("GET", "/v1/rewards", None).await;
    assert_eq!(rewards[0]["name"], "Bánh <ngọt>");
    assert_eq!(rewards[0]["cost"], 50);
    assert_eq!(rewards[0]["per_member_limit"], 2);
}

#[tokio::test]
async fn a_marketer_edits_the_programme_and_a_cashier_may_not() {
    let site = Site::start(false).await;
    let marketer = site.signed_in(Role::Marketer).await;
    let csrf = open_editor(&marketer).await;
    let (status, html) = post(&marketer, "/admin/programme/draft", &cafe_form(&csrf)).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Đã lưu bản nháp"));
    let (status, _) = marketer.get("/admin/staff").await;
    assert_eq!(status, 403);

    let cashier = site.signed_in(Role::Cashier).await;
    let (status, html) = cashier.get("/admin/programme").await;
    assert_eq!(status, 403);
    assert!(html.contains("Không có quyền"), "{html}");
    let (status, _) = cashier.get(SAMPLE).await;
    assert_eq!(status, 403);
    let (status, _) = post(&cashier, "/admin/programme/draft", &cafe_form("x")).await;
    assert_eq!(status, 403);
    let viewer = site.signed_in(Role::Viewer).await;
    let (status, _) = viewer.get("/admin/programme").await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn changes_without_the_csrf_token_are_refused() {
    let site = Site::start(false).await;
    let owner = site.signed_in(Role::Owner).await;
    open_editor(&owner).await;
    let mut fields = cafe_form("");
    fields.retain(|(name, _)| name != "csrf");
    let (status, html) = post(&owner, "/admin/programme/draft", &fields).await;
    assert_eq!(status, 403);
    assert!(html.contains("Phiên làm việc đã thay đổi"), "{html}");
    let (status, _) = post(&owner, "/admin/programme/draft", &cafe_form("forged")).await;
    assert_eq!(status, 403);
    let (status, _) = owner
        .post_form("/admin/programme/publish", &[("effective_from", "")])
        .await;
    assert_eq!(status, 403);
    let (status, _) = owner
        .post_form("/admin/programme/rewards", &[("name", "x"), ("cost", "1")])
        .await;
    assert_eq!(status, 403);
    let (status, _) = site.api("GET", "/v1/programme/draft", None).await;
    assert_eq!(status, 404, "nothing was saved");
}

#[tokio::test]
async fn publishing_at_a_chosen_time_and_without_a_draft() {
    let site = Site::start(false).await;
    let owner = site.signed_in(Role::Owner).await;
    let csrf = open_editor(&owner).await;
    let (status, html) = owner
        .post_form(
            "/admin/programme/publish",
            &[("csrf", &csrf), ("effective_from", "")],
        )
        .await;
    assert_eq!(status, 422);
    assert!(html.contains("Chưa có bản nháp để công bố"), "{html}");
    post(&owner, "/admin/programme/draft", &cafe_form(&csrf)).await;
    let (status, html) = owner
        .post_form(
            "/admin/programme/publish",
            &[("csrf", &csrf), ("effective_from", "ngày mai")],
        )
        .await;
    assert_eq!(status, 422);
    assert!(html.contains("id=\"effective_from-error\""), "{html}");
    let (status, html) = owner
        .post_form(
            "/admin/programme/publish",
            &[("csrf", &csrf), ("effective_from", "2099-01-01T08:00")],
        )
        .await;
    assert_eq!(status, 200, "{html}");
    let (_, versions) = site.api("GET", "/v1/programme/versions", None).await;
    assert_eq!(versions[1]["effective_from"], "2099-01-01T08:00:00+07:00");
    assert_eq!(versions[1]["current"], false);
    assert!(html.contains("01/01/2099 08:00"), "{html}");
}

async fn wait_for_alert(browser: &Browser) {
    for _ in 0..50 {
        if browser.client.accept_alert().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no confirmation was asked");
}

#[tokio::test]
async fn an_owner_edits_previews_and_publishes_in_a_browser() {
    let site = Site::start(false).await;
    let browser = Browser::start(DESKTOP).await;
    browser.sign_in(&site, Role::Owner).await;
    browser
        .goto(&format!("{}/admin/programme", site.address))
        .await;
    browser.fill("#amount_per_point", "8000").await;
    browser.fill("#rules-new-id", "big").await;
    browser.fill("#rules-new-name", "Đơn lớn").await;
    browser
        .fill("#rules-new-when", "event.amount >= 300000")
        .await;
    browser.fill("#rules-new-points", "5").await;
    browser.click("#save-draft").await;
    let notice = browser.text(".notice").await;
    assert!(notice.contains("Đã lưu bản nháp"), "{notice}");
    browser.screenshot("programme-editor").await;

    browser.fill("#preview-amount", "320000").await;
    browser.fill("#items-0-category", "cake").await;
    browser.fill("#items-0-quantity", "2").await;
    browser.fill("#items-0-amount", "60000").await;
    browser.click("#run-preview").await;
    // 320,000 / 8,000 = 40, two cakes 20, the big-order rule 5.
    let headline = browser.text("#preview-headline").await;
    assert_eq!(headline, "Giao dịch này được 65 điểm vì:");
    let lines = browser.text("#preview-lines").await;
    assert!(
        lines.contains("Tỷ lệ cơ bản: 1 điểm mỗi 8.000đ trên 320.000đ → 40"),
        "{lines}"
    );
    assert!(lines.contains("Quy tắc Đơn lớn (big): 5 → 5"), "{lines}");
    assert!(lines.contains("Quy tắc Cake (cake): 20 → 20"), "{lines}");
    let impact = browser.text("#preview-impact").await;
    assert!(impact.contains("0 trên 0 thành viên"), "{impact}");
    browser.screenshot("programme-preview").await;

    browser.click("#publish-draft").await;
    wait_for_alert(&browser).await;
    let notice = browser.text(".notice").await;
    assert!(notice.contains("Đã công bố phiên bản 2"), "{notice}");
    let (_, versions) = site.api("GET", "/v1/programme/versions", None).await;
    let live = &versions[1];
    assert_eq!(live["current"], true);
    assert_eq!(live["definition"]["amount_per_point"], 8000);
    assert_eq!(live["definition"]["rules"][1]["id"], "big");
    browser.close().await;
}

#[tokio::test]
async fn a_bad_condition_shows_next_to_its_rule_in_a_browser() {
    let site = Site::start(false).await;
    let browser = Browser::start(DESKTOP).await;
    browser.sign_in(&site, Role::Owner).await;
    browser
        .goto(&format!("{}/admin/programme", site.address))
        .await;
    browser
        .fill("#rules-0-when", "'cake' in event.categories &&")
        .await;
    browser.click("#save-draft").await;
    let error = browser.text("#rules-0-when-error").await;
    assert!(error.contains("Điều kiện CEL không hợp lệ"), "{error}");
    let field = browser
        .client
        .find(fantoccini::Locator::Css("#rules-0-when"))
        .await
        .unwrap();
    assert_eq!(
        field.attr("aria-invalid").await.unwrap().as_deref(),
        Some("true")
    );
    assert_eq!(
        field.prop("value").await.unwrap().as_deref(),
        Some("'cake' in event.categories &&")
    );
    browser.close().await;
}

#[tokio::test]
async fn a_cashier_cannot_open_the_editor_in_a_browser() {
    let site = Site::start(false).await;
    let browser = Browser::start(DESKTOP).await;
    browser.sign_in(&site, Role::Cashier).await;
    browser
        .goto(&format!("{}/admin/programme", site.address))
        .await;
    let title = browser.text("main h1").await;
    assert_eq!(title, "Không có quyền");
    let body = browser.text("main").await;
    assert!(
        body.contains("Vai trò của bạn không được mở trang này"),
        "{body}"
    );
    assert!(!browser.source().await.contains("id=\"save-draft\""));
    browser.close().await;
}

/// Rewards could not be retired from the admin, and a 0-point reward was accepted.
async fn a_marketer_retires_and_offers_again(postgres: bool) {
    let site = Site::start(postgres).await;
    let marketer = site.signed_in(Role::Marketer).await;
    let csrf = open_editor(&marketer).await;
    let (status, html) = marketer
        .post_form(
            "/admin/programme/rewards",
            &[("csrf", &csrf), ("name", "Miễn phí"), ("cost", "0")],
        )
        .await;
    assert_eq!(status, 422, "{html}");
    assert!(html.contains("Phải từ 1 trở lên."), "{html}");
    let (status, html) = marketer
        .post_form(
            "/admin/programme/rewards",
            &[("csrf", &csrf), ("name", "Bánh flan"), ("cost", "20")],
        )
        .await;
    assert_eq!(status, 200, "{html}");
    let (_, rewards) = site.api("GET", "/v1/rewards", None).await;
    let id = rewards[0]["id"].as_str().unwrap().to_owned();
    assert!(
        html.contains(&format!("/admin/programme/rewards/{id}/retire")),
        "{html}"
    );
    assert!(html.contains("Ngừng đổi"), "{html}");

    let path = format!("/admin/programme/rewards/{id}/retire");
    let (status, html) = marketer
        .post_form(&path, &[("csrf", &csrf), ("retired", "true")])
        .await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Đã ngừng phần thưởng"), "{html}");
    assert!(html.contains("Cho đổi lại"), "{html}");
    let (_, rewards) = site.api("GET", "/v1/rewards", None).await;
    assert_eq!(rewards[0]["active"], false);
    let (status, html) = marketer
        .post_form(&path, &[("csrf", &csrf), ("retired", "false")])
        .await;
    assert_eq!(status, 200, "{html}");
    let (_, rewards) = site.api("GET", "/v1/rewards", None).await;
    assert_eq!(rewards[0]["active"], true);
    // Without the session's token nothing changes; the audit log names the user.
    let (status, _) = marketer
        .post_form(&path, &[("csrf", "forged"), ("retired", "true")])
        .await;
    assert_eq!(status, 403);
    let (_, log) = site.api("GET", "/v1/audit", None).await;
    let actions: Vec<&str> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["subject"] == format!("reward:{id}"))
        .map(|entry| entry["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["reward.unretire", "reward.retire", "reward.create"]
    );
}

#[tokio::test]
async fn a_marketer_retires_and_offers_again_on_sqlite() {
    a_marketer_retires_and_offers_again(false).await;
}

#[tokio::test]
async fn a_marketer_retires_and_offers_again_on_postgres() {
    a_marketer_retires_and_offers_again(true).await;
}

/// On the long editor a refusal showed only next to its field, far below the fold: a summary
/// at the top links to the field (a CEL error: a Vietnamese lead sentence, the parser's detail
/// after it).
#[tokio::test]
async fn faults_are_summed_up_at_the_top_with_links() {
    let site = Site::start(false).await;
    let owner = site.signed_in(Role::Owner).await;
    let csrf = open_editor(&owner).await;
    let (status, html) = owner.get("/admin/programme").await;
    assert_eq!(status, 200);
    assert!(!html.contains("id=\"error-summary\""), "{html}");
    let mut fields = cafe_form(&csrf);
    set(
        &mut fields,
        "rules[0].when",
        "'cake' in event.categories &&",
    );
    let (status, html) = post(&owner, "/admin/programme/draft", &fields).await;
    assert_eq!(status, 422, "{html}");
    let summary = html.find("id=\"error-summary\"").expect("a summary");
    assert!(
        summary < html.find("id=\"draft\"").unwrap(),
        "above the form"
    );
    let block = &html[summary..];
    assert!(block.contains("Cần sửa trước khi tiếp tục:"), "{block}");
    assert!(
        block.contains("<a href=\"#rules-0-when\">Điều kiện CEL không hợp lệ"),
        "{block}"
    );
    assert!(
        html.contains("id=\"rules-0-when\""),
        "the link's target: {html}"
    );

    let (status, html) = owner
        .post_form(
            "/admin/programme/rewards",
            &[("csrf", &csrf), ("name", "Bánh"), ("cost", "0")],
        )
        .await;
    assert_eq!(status, 422, "{html}");
    assert!(
        html.contains("<a href=\"#reward-cost\">Phải từ 1 trở lên.</a>"),
        "{html}"
    );
}

/// A reward's own page edits it; the change is refused field by field like the add form.
#[tokio::test]
async fn a_reward_is_edited_on_its_page() {
    let site = Site::start(false).await;
    let marketer = site.signed_in(Role::Marketer).await;
    let csrf = open_editor(&marketer).await;
    let (status, html) = marketer
        .post_form(
            "/admin/programme/rewards",
            &[("csrf", &csrf), ("name", "Bánh flan"), ("cost", "20")],
        )
        .await;
    assert_eq!(status, 200, "{html}");
    let (_, rewards) = site.api("GET", "/v1/rewards", None).await;
    let id = rewards[0]["id"].as_str().unwrap().to_owned();
    let path = format!("/admin/programme/rewards/{id}");
    assert!(html.contains(&format!("href=\"{path}\"")), "{html}");
    let (status, html) = marketer.get(&path).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Sửa phần thưởng"), "{html}");
    assert!(html.contains("value=\"Bánh flan\""), "{html}");

    let (status, html) = marketer
        .post_form(
            &path,
            &[
                ("csrf", &csrf),
                ("name", "Bánh flan caramel"),
                ("cost", "0"),
                ("stock", "3"),
            ],
        )
        .await;
    assert_eq!(status, 422, "{html}");
    assert!(
        html.contains("<a href=\"#reward-cost\">Phải từ 1 trở lên.</a>"),
        "{html}"
    );
    assert!(html.contains("value=\"Bánh flan caramel\""), "kept: {html}");

    let (status, html) = marketer
        .post_form(
            &path,
            &[
                ("csrf", &csrf),
                ("name", "Bánh flan caramel"),
                ("cost", "25"),
                ("stock", "3"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Đã lưu phần thưởng."), "{html}");
    let (_, rewards) = site.api("GET", "/v1/rewards", None).await;
    assert_eq!(
        (
            &rewards[0]["name"],
            &rewards[0]["cost"],
            &rewards[0]["stock"]
        ),
        (&json!("Bánh flan caramel"), &json!(25), &json!(3))
    );
    let (status, _) = marketer
        .post_form(&path, &[("csrf", "forged"), ("name", "x"), ("cost", "5")])
        .await;
    assert_eq!(status, 403);
    let cashier = site.signed_in(Role::Cashier).await;
    let (status, _) = cashier.get(&path).await;
    assert_eq!(status, 403);
}
