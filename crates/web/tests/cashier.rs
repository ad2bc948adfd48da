//! The cashier screen over HTTP (find, enrol, purchase, duplicate taps, bad input, escaping,
//! roles), and in a real browser at a phone's width, through to the member page.

mod common;

use common::{csrf_in, dispatcher, Browser, Inbox, Pages, Site, PHONE};
use patron_core::MemberId;
use patron_store::users::Role;
use patron_store::MemberRef;
use serde_json::json;

/// The value of the field `name` in a form of `html`.
fn field_in(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no field {name} in {html}"))
        + marker.len();
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

/// GET, following redirects: status, final path and HTML.
async fn get(pages: &Pages, path: &str) -> (u16, String, String) {
    let response = pages
        .http
        .get(format!("{}{path}", pages.address))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let path = response.url().path().to_owned();
    (status, path, response.text().await.unwrap())
}

/// POST a form, following redirects: status, final path and HTML.
async fn post(pages: &Pages, path: &str, fields: &[(&str, &str)]) -> (u16, String, String) {
    let response = pages
        .http
        .post(format!("{}{path}", pages.address))
        .form(fields)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let path = response.url().path().to_owned();
    (status, path, response.text().await.unwrap())
}

/// Enrols a member through the till (find an unknown phone, then the enrolment form); returns
/// the member's till page path and HTML.
async fn enrol(pages: &Pages, phone: &str, name: &str) -> (String, String) {
    let (status, _, html) = get(pages, &format!("/cashier/find?q={phone}")).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("id=\"not-found\""), "{html}");
    let fields = [
        ("csrf", csrf_in(&html)),
        ("event_id", field_in(&html, "event_id")),
        ("phone", phone.to_owned()),
        ("name", name.to_owned()),
    ];
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, path, html) = post(pages, "/cashier/enrol", &fields).await;
    assert_eq!(status, 200, "{html}");
    assert!(path.starts_with("/cashier/member/"), "{path}");
    (path, html)
}

fn member_of(path: &str) -> MemberId {
    MemberId::parse(path.rsplit('/').next().unwrap()).unwrap()
}

/// The purchase form's fields on a member's till page, with `changes` applied.
fn purchase_fields(html: &str, changes: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut fields = vec![
        ("csrf".to_owned(), csrf_in(html)),
        ("event_id".to_owned(), field_in(html, "event_id")),
        ("amount".to_owned(), String::new()),
        ("store".to_owned(), "HN01".to_owned()),
        ("points".to_owned(), String::new()),
        ("voucher".to_owned(), String::new()),
    ];
    for (name, value) in changes {
        let field = fields.iter_mut().find(|(key, _)| key == name).unwrap();
        field.1 = (*value).to_owned();
    }
    fields
}

async fn post_purchase(
    pages: &Pages,
    member_path: &str,
    fields: &[(String, String)],
) -> (u16, String, String) {
    let fields: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    post(pages, &format!("{member_path}/purchase"), &fields).await
}

async fn earn_transactions(site: &Site, member: MemberId) -> usize {
    site.store
        .history(site.tenant, member, 200, None)
        .await
        .unwrap()
        .iter()
        .filter(|entry| entry.kind == "earn")
        .count()
}

async fn duplicate_submit_records_one_purchase(postgres: bool) {
    let site = Site::start(postgres).await;
    let pages = site.signed_in(Role::Cashier).await;
    let (member_path, html) = enrol(&pages, "0912 345 678", "Lan").await;
    let member = member_of(&member_path);
    assert!(html.contains("Lan"), "{html}");
    let fields = purchase_fields(&html, &[("amount", "150.000")]);
    let (status, path, first) = post_purchase(&pages, &member_path, &fields).await;
    assert_eq!(status, 200, "{first}");
    assert!(path.starts_with("/cashier/receipt/"), "{path}");
    assert!(first.contains("+15 điểm"), "{first}");
    // The same form again (a double tap, or a resend after a lost answer).
    let (status, again_path, again) = post_purchase(&pages, &member_path, &fields).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again_path, path);
    assert!(again.contains("+15 điểm"), "{again}");
    assert_eq!(earn_transactions(&site, member).await, 1);
    let view = site
        .store
        .member(site.tenant, &MemberRef::Id(member), chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!((view.balance, view.order_count), (15, 1));
    // Both at once: the journal answers the second with the first's answer.
    let html = get(&pages, &member_path).await.2;
    let fields = purchase_fields(&html, &[("amount", "150,000")]);
    let (one, two) = tokio::join!(
        post_purchase(&pages, &member_path, &fields),
        post_purchase(&pages, &member_path, &fields)
    );
    assert_eq!((one.0, two.0), (200, 200), "{} {}", one.2, two.2);
    assert_eq!(one.1, two.1);
    assert_eq!(earn_transactions(&site, member).await, 2);
    assert!(site.store.check_ledger().await.unwrap().is_sound());
}

#[tokio::test]
async fn a_duplicate_submit_records_one_purchase() {
    duplicate_submit_records_one_purchase(false).await;
}

#[tokio::test]
async fn a_duplicate_submit_records_one_purchase_on_postgres() {
    duplicate_submit_records_one_purchase(true).await;
}

#[tokio::test]
async fn bad_input_is_refused_with_a_message_next_to_the_field() {
    let site = Site::start(false).await;
    let pages = site.signed_in(Role::Cashier).await;
    for (typed, message) in [
        ("", "Nhập số điện thoại hoặc mã thẻ."),
        ("hello", "Không phải số điện thoại hay mã thẻ hợp lệ."),
        ("0123", "Không phải số điện thoại hay mã thẻ hợp lệ."),
        ("ZZZZ-ZZZZ", "Không có thành viên nào có mã thẻ này."),
    ] {
        let (status, _, html) = get(&pages, &format!("/cashier/find?q={typed}")).await;
        assert_eq!(status, 422, "{typed}: {html}");
        assert!(html.contains("id=\"find-error\""), "{html}");
        assert!(html.contains(message), "{typed}: {html}");
        assert!(html.contains("aria-invalid=\"true\""), "{html}");
    }
    let html = get(&pages, "/cashier/find?q=0987654321").await.2;
    let fields = [
        ("csrf", csrf_in(&html)),
        ("event_id", field_in(&html, "event_id")),
        ("phone", "09-not-a-phone".to_owned()),
        ("name", "x".repeat(201)),
    ];
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _, html) = post(&pages, "/cashier/enrol", &fields).await;
    assert_eq!(status, 422, "{html}");
    assert!(html.contains("id=\"phone-error\""), "{html}");
    assert!(html.contains("Số điện thoại không hợp lệ."), "{html}");
    assert!(html.contains("id=\"name-error\""), "{html}");

    let (member_path, html) = enrol(&pages, "0987654321", "").await;
    let member = member_of(&member_path);
    for (changes, field, message) in [
        (vec![("amount", "")], "amount", "Nhập số tiền."),
        (vec![("amount", "0")], "amount", "Số tiền phải lớn hơn 0."),
        (
            vec![("amount", "-5000")],
            "amount",
            "Số tiền phải lớn hơn 0.",
        ),
        (
            vec![("amount", "mười nghìn")],
            "amount",
            "Số tiền chỉ gồm chữ số",
        ),
        (vec![("amount", "1.5")], "amount", "Số tiền chỉ gồm chữ số"),
        (
            vec![("amount", "9999999999999999999999")],
            "amount",
            "Số tiền quá lớn.",
        ),
        // Whether the member has the points, and whether they are worth more than the bill,
        // is the engine's to say (in that order); the till shows its answer by the field.
        (
            vec![("amount", "5000000"), ("points", "999")],
            "points",
            "Khách chỉ có 0 điểm dùng được.",
        ),
        (
            vec![("amount", "50000"), ("points", "999")],
            "points",
            "Số điểm trả vượt quá giá trị hoá đơn.",
        ),
        (
            vec![("amount", "50000"), ("points", "ba")],
            "points",
            "Số điểm chỉ gồm chữ số",
        ),
        (
            vec![("amount", "50000"), ("voucher", "NOPE-1234")],
            "voucher",
            "Khách không có voucher này.",
        ),
        (
            vec![("amount", "50000"), ("store", "XX99")],
            "store",
            "Chọn một cửa hàng trong danh sách.",
        ),
    ] {
        let fields = purchase_fields(&html, &changes);
        let (status, _, page) = post_purchase(&pages, &member_path, &fields).await;
        assert_eq!(status, 422, "{changes:?}: {page}");
        assert!(
            page.contains(&format!("id=\"{field}-error\"")),
            "{changes:?}: {page}"
        );
        assert!(page.contains(message), "{changes:?}: {page}");
        assert!(page.contains("aria-invalid=\"true\""), "{page}");
        // What was typed is kept.
        if let Some((_, typed)) = changes.iter().find(|(name, _)| *name == "amount") {
            assert!(page.contains(&format!("value=\"{typed}\"")), "{page}");
        }
    }
    assert_eq!(earn_transactions(&site, member).await, 0);
    // A wrong CSRF token records nothing either.
    let fields = purchase_fields(&html, &[("amount", "50000"), ("csrf", "forged")]);
    let (status, _, _) = post_purchase(&pages, &member_path, &fields).await;
    assert_eq!(status, 403);
    assert_eq!(earn_transactions(&site, member).await, 0);
}

#[tokio::test]
async fn points_and_a_voucher_are_used_with_a_purchase() {
    let site = Site::start(false).await;
    let (status, reward) = site
        .api(
            "POST",
            "/v1/rewards",
            Some(json!({"name": "Bánh flan", "cost": 10})),
        )
        .await;
    assert_eq!(status, 201, "{reward}");
    let pages = site.signed_in(Role::Cashier).await;
    let (member_path, html) = enrol(&pages, "0911222333", "Minh").await;
    let member = member_of(&member_path);
    let fields = purchase_fields(&html, &[("amount", "300000")]);
    let (status, _, receipt) = post_purchase(&pages, &member_path, &fields).await;
    assert_eq!(status, 200, "{receipt}");
    assert!(receipt.contains("+30 điểm"), "{receipt}");
    let (status, redeemed) = site
        .api(
            "POST",
            "/v1/redemptions",
            Some(json!({"id": "r-1", "member": {"id": member.to_string()}, "reward_id": reward["id"]})),
        )
        .await;
    assert_eq!(status, 200, "{redeemed}");
    let code = redeemed["voucher"]["code"].as_str().unwrap().to_owned();
    let (_, _, html) = get(&pages, &member_path).await;
    assert!(html.contains(&code), "the till lists the voucher: {html}");
    assert!(html.contains("Khách có 20 điểm dùng được."), "{html}");
    let fields = purchase_fields(
        &html,
        &[
            ("amount", "100000"),
            ("points", "5"),
            ("voucher", &code.to_lowercase()),
        ],
    );
    let (status, _, receipt) = post_purchase(&pages, &member_path, &fields).await;
    assert_eq!(status, 200, "{receipt}");
    assert!(receipt.contains("Đã trả 5 điểm"), "{receipt}");
    assert!(
        receipt.contains(&format!("Đã dùng voucher {code}.")),
        "{receipt}"
    );
    let vouchers = site.store.vouchers(site.tenant, member).await.unwrap();
    assert_eq!(vouchers[0].status, "used");
    // The used voucher is refused next time, next to its field.
    let (_, _, html) = get(&pages, &member_path).await;
    let fields = purchase_fields(&html, &[("amount", "100000"), ("voucher", &code)]);
    let (status, _, page) = post_purchase(&pages, &member_path, &fields).await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("id=\"voucher-error\""), "{page}");
}

#[tokio::test]
async fn a_member_named_script_shows_as_text_on_the_till() {
    let site = Site::start(false).await;
    let name = "<script>alert(1)</script>";
    let (status, body) = site
        .api(
            "POST",
            "/v1/members",
            Some(json!({"phone": "0903000111", "profile": {"name": name}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let pages = site.signed_in(Role::Cashier).await;
    let (status, path, html) = get(&pages, "/cashier/find?q=0903%20000%20111").await;
    assert_eq!(status, 200);
    assert!(path.starts_with("/cashier/member/"), "{path}");
    assert!(
        html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "escaped: {html}"
    );
    assert!(!html.contains(name), "{html}");
}

#[tokio::test]
async fn a_card_code_finds_the_member() {
    let site = Site::start(false).await;
    let pages = site.signed_in(Role::Cashier).await;
    let (member_path, html) = enrol(&pages, "0934555666", "Hoa").await;
    let marker = "Mã thẻ <strong>";
    let start = html.find(marker).unwrap() + marker.len();
    let code = &html[start..start + 9];
    for typed in [code.to_owned(), code.to_lowercase().replace('-', "")] {
        let (status, path, _) = get(&pages, &format!("/cashier/find?q={typed}")).await;
        assert_eq!(status, 200);
        assert_eq!(path, member_path, "{typed}");
    }
}

#[tokio::test]
async fn a_viewer_cannot_open_the_till() {
    let site = Site::start(false).await;
    let viewer = site.signed_in(Role::Viewer).await;
    for path in [
        "/cashier",
        "/cashier/find?q=0912345678",
        "/cashier/member/0199a0c2-0000-7000-8000-000000000000",
    ] {
        let (status, _, html) = get(&viewer, path).await;
        assert_eq!(status, 403, "{path}: {html}");
    }
    let (status, _, _) = post(
        &viewer,
        "/cashier/enrol",
        &[("csrf", "x"), ("phone", "0912345678")],
    )
    .await;
    assert_eq!(status, 403);
    let marketer = site.signed_in(Role::Marketer).await;
    let (status, _, _) = get(&marketer, "/cashier").await;
    assert_eq!(status, 403);
    let (status, _, html) = get(&site.signed_in(Role::Manager).await, "/cashier").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("id=\"find-q\""), "{html}");
}

/// The whole flow at a phone's width: the cashier enrols a member by phone and records a
/// purchase; the member signs in on their page with phone and code, and sees the points.
#[tokio::test]
async fn the_cashier_records_a_purchase_and_the_member_sees_it_in_a_browser() {
    let site = Site::start(false).await;
    let inbox = Inbox::start().await;
    let (status, body) = site
        .api(
            "POST",
            "/v1/webhooks",
            Some(json!({"url": inbox.url, "topics": ["member.sign_in_code"]})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let dispatcher = dispatcher(&site);

    let browser = Browser::start(PHONE).await;
    browser.sign_in(&site, Role::Cashier).await;
    assert_eq!(browser.path().await, "/cashier");
    browser.fill("#find-q", "0912 345 678").await;
    browser.click("#find-form button[type=submit]").await;
    let warning = browser.text("#not-found").await;
    assert!(warning.contains("0912345678"), "{warning}");
    browser.fill("#enrol-name", "Nguyễn Thị Lan").await;
    browser.click("#enrol-form button[type=submit]").await;
    let name = browser.text("#member-name").await;
    assert_eq!(name, "Nguyễn Thị Lan");
    browser.fill("#amount", "abc").await;
    browser.click("#purchase-form button[type=submit]").await;
    let error = browser.text("#amount-error").await;
    assert!(error.contains("chỉ gồm chữ số"), "{error}");
    browser.screenshot("cashier-member").await;
    browser.fill("#amount", "150.000").await;
    browser.click("#purchase-form button[type=submit]").await;
    let earned = browser.text("#earned").await;
    assert_eq!(earned, "+15 điểm");
    assert_eq!(browser.text("#new-balance").await, "15");
    browser.screenshot("cashier-purchase-done").await;

    // The member, on their own phone.
    let member_browser = Browser::start(PHONE).await;
    member_browser
        .goto(&format!("{}/m/{}", site.address, site.tenant))
        .await;
    member_browser.fill("#phone", "0912345678").await;
    member_browser
        .click("#phone-form button[type=submit]")
        .await;
    let sent = member_browser.text("#code-form").await;
    assert!(!sent.is_empty());
    let code = inbox.code_for("+84912345678").await;
    member_browser.fill("#code", &code).await;
    member_browser.click("#code-form button[type=submit]").await;
    assert_eq!(member_browser.text("#balance").await, "15");
    let hello = member_browser.text("#hello").await;
    assert!(hello.contains("Nguyễn Thị Lan"), "{hello}");
    let next = member_browser.text("#to-next").await;
    assert!(next.contains("4.850.000đ"), "{next}");
    assert!(next.contains("Gold"), "{next}");
    let expiring = member_browser.text("#expiring").await;
    assert!(expiring.contains("15 điểm hết hạn ngày"), "{expiring}");
    member_browser.screenshot("member-card").await;
    member_browser.close().await;
    browser.close().await;
    dispatcher.stop().await;
}

/// Posts `fields` (as `purchase_fields` made them) plus `extra`.
async fn post_purchase_with(
    pages: &Pages,
    member_path: &str,
    fields: &[(String, String)],
    extra: &[(&str, &str)],
) -> (u16, String, String) {
    let mut all: Vec<(String, String)> = fields.to_vec();
    all.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    post_purchase(pages, member_path, &all).await
}

/// The till's typo: 99,999,999,999,999đ is refused next to the amount; above the confirmation
/// limit (20,000,000đ by default) the sale waits for the cashier to confirm that amount.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_amount_is_refused_and_a_large_one_needs_confirming() {
    let site = Site::start(false).await;
    let pages = site.signed_in(Role::Cashier).await;
    let (member_path, html) = enrol(&pages, "0912 000 040", "Hoa").await;
    let member = member_of(&member_path);
    for typo in ["99.999.999.999.999", "1.000.000.001"] {
        let fields = purchase_fields(&html, &[("amount", typo)]);
        let (status, _, page) = post_purchase(&pages, &member_path, &fields).await;
        assert_eq!(status, 422, "{page}");
        assert!(page.contains("id=\"amount-error\""), "{page}");
        assert!(page.contains("vượt quá mức tối đa"), "{page}");
    }
    // At the confirmation limit: recorded at once.
    let fields = purchase_fields(&html, &[("amount", "20.000.000")]);
    let (status, path, _) = post_purchase(&pages, &member_path, &fields).await;
    assert_eq!(status, 200);
    assert!(path.starts_with("/cashier/receipt/"), "{path}");
    // One past it: asked first, nothing recorded.
    let html = get(&pages, &member_path).await.2;
    let fields = purchase_fields(&html, &[("amount", "20.000.001")]);
    let (status, _, page) = post_purchase(&pages, &member_path, &fields).await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("id=\"amount-confirm\""), "{page}");
    assert_eq!(field_in(&page, "confirmed_amount"), "20000001");
    assert_eq!(earn_transactions(&site, member).await, 1);
    // A confirmation of another amount does not count.
    let (status, _, page) = post_purchase_with(
        &pages,
        &member_path,
        &fields,
        &[("confirmed_amount", "20000000")],
    )
    .await;
    assert_eq!(status, 422);
    assert!(page.contains("id=\"amount-confirm\""), "{page}");
    let (status, path, receipt) = post_purchase_with(
        &pages,
        &member_path,
        &fields,
        &[("confirmed_amount", "20000001")],
    )
    .await;
    assert_eq!(status, 200, "{receipt}");
    assert!(path.starts_with("/cashier/receipt/"), "{path}");
    assert_eq!(earn_transactions(&site, member).await, 2);
    // The largest sale itself is accepted, once confirmed.
    let html = get(&pages, &member_path).await.2;
    let fields = purchase_fields(&html, &[("amount", "1.000.000.000")]);
    let (status, path, _) = post_purchase_with(
        &pages,
        &member_path,
        &fields,
        &[("confirmed_amount", "1000000000")],
    )
    .await;
    assert_eq!(status, 200);
    assert!(path.starts_with("/cashier/receipt/"), "{path}");
}

/// A cashier refunds the whole bill of a sale paid partly with points, and the points come
/// back; only a manager sees and may use the void.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refund_and_void_at_the_till() {
    let site = Site::start(false).await;
    let cashier = site.signed_in(Role::Cashier).await;
    let (member_path, html) = enrol(&cashier, "0912 000 041", "Tùng").await;
    let fields = purchase_fields(&html, &[("amount", "1.000.000")]);
    post_purchase(&cashier, &member_path, &fields).await;
    let html = get(&cashier, &member_path).await.2;
    let fields = purchase_fields(&html, &[("amount", "150.000"), ("points", "100")]);
    let (status, receipt_path, receipt) = post_purchase(&cashier, &member_path, &fields).await;
    assert_eq!(status, 200, "{receipt}");
    assert!(receipt.contains("id=\"refund-form\""), "{receipt}");
    assert!(
        !receipt.contains("id=\"void-form\""),
        "a cashier cannot void: {receipt}"
    );
    let refund = [
        ("csrf", csrf_in(&receipt)),
        ("event_id", field_in(&receipt, "event_id")),
        ("amount", "150.000".to_owned()),
    ];
    let refund: Vec<(&str, &str)> = refund.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, path, done) = post(&cashier, &format!("{receipt_path}/refund"), &refund).await;
    assert_eq!(status, 200, "{done}");
    assert!(path.starts_with("/cashier/reversal/"), "{path}");
    assert!(done.contains("Hoàn lại 100 điểm đã trả"), "{done}");
    assert!(done.contains("Thu hồi 5 điểm"), "{done}");
    let member = member_of(&member_path);
    let view = site
        .store
        .member(site.tenant, &MemberRef::Id(member), chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(view.available, 100);
    // Nothing is left to refund.
    let again = [
        ("csrf", csrf_in(&receipt)),
        ("event_id", "till-refund-again".to_owned()),
        ("amount", "1".to_owned()),
    ];
    let again: Vec<(&str, &str)> = again.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _, page) = post(&cashier, &format!("{receipt_path}/refund"), &again).await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("id=\"refund-error\""), "{page}");

    // A new sale: the cashier's void is refused, the manager's goes through.
    let html = get(&cashier, &member_path).await.2;
    let fields = purchase_fields(&html, &[("amount", "200.000")]);
    let (_, sale_path, _) = post_purchase(&cashier, &member_path, &fields).await;
    let void_fields = [
        ("csrf", csrf_in(&html)),
        ("event_id", "till-void-1".to_owned()),
    ];
    let void_fields: Vec<(&str, &str)> =
        void_fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _, _) = post(&cashier, &format!("{sale_path}/void"), &void_fields).await;
    assert_eq!(status, 403);
    let manager = site.signed_in(Role::Manager).await;
    let (status, _, sale) = get(&manager, &sale_path).await;
    assert_eq!(status, 200);
    assert!(sale.contains("id=\"void-form\""), "{sale}");
    let void_fields = [
        ("csrf", csrf_in(&sale)),
        (
            "event_id",
            field_in(&sale[sale.find("id=\"void-form\"").unwrap()..], "event_id"),
        ),
    ];
    let void_fields: Vec<(&str, &str)> =
        void_fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, path, done) = post(&manager, &format!("{sale_path}/void"), &void_fields).await;
    assert_eq!(status, 200, "{done}");
    assert!(path.starts_with("/cashier/reversal/"), "{path}");
    assert!(done.contains("Đã huỷ hoá đơn"), "{done}");
    assert!(done.contains("Thu hồi 20 điểm"), "{done}");
}

/// The store picked for a sale is preselected on this device next time; the sale names the
/// cashier who recorded it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_till_remembers_its_store_and_names_the_cashier() {
    let site = Site::start(false).await;
    site.store
        .create_store(site.tenant, "HCM01", "Sài Gòn 1")
        .await
        .unwrap();
    let pages = site.signed_in(Role::Cashier).await;
    let (member_path, html) = enrol(&pages, "0912 000 042", "Mai").await;
    assert!(!html.contains("value=\"HCM01\" selected"), "{html}");
    let fields = purchase_fields(&html, &[("amount", "100.000"), ("store", "HCM01")]);
    let response = pages
        .http
        .post(format!("{}{member_path}/purchase", pages.address))
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let (_, _, html) = get(&pages, &member_path).await;
    assert!(html.contains("value=\"HCM01\" selected"), "{html}");
    // Another device (another browser) has not picked a store.
    let other = site.signed_in(Role::Cashier).await;
    let (_, _, html) = get(&other, &member_path).await;
    assert!(!html.contains("value=\"HCM01\" selected"), "{html}");
    let cashier = site
        .store
        .users(site.tenant)
        .await
        .unwrap()
        .into_iter()
        .find(|user| user.role == Role::Cashier)
        .unwrap();
    let history = site
        .store
        .history(site.tenant, member_of(&member_path), 200, None)
        .await
        .unwrap();
    let earn = history.iter().find(|entry| entry.kind == "earn").unwrap();
    assert_eq!(earn.reason["actor"], format!("user:{}", cashier.id));
}

/// The admin's member history names who recorded each sale and lets a manager void one; the
/// voided sale is marked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_history_names_the_cashier_and_voids_a_sale() {
    let site = Site::start(false).await;
    let cashier = site.signed_in(Role::Cashier).await;
    let (member_path, html) = enrol(&cashier, "0912 000 043", "Quân").await;
    let fields = purchase_fields(&html, &[("amount", "300.000")]);
    let (status, _, _) = post_purchase(&cashier, &member_path, &fields).await;
    assert_eq!(status, 200);
    let member = member_of(&member_path);
    let manager = site.signed_in(Role::Manager).await;
    let profile = format!("/admin/members/{member}");
    let (status, _, page) = get(&manager, &profile).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("<td class=\"history-who\">Test cashier</td>"),
        "{page}"
    );
    assert!(page.contains("class=\"history-refund\""), "{page}");
    let form = &page[page.find("class=\"history-void\"").expect("a void button")..];
    let action_start = page[..page.find("class=\"history-void\"").unwrap()]
        .rfind("action=\"")
        .unwrap()
        + "action=\"".len();
    let action = &page[action_start..action_start + page[action_start..].find('"').unwrap()];
    let fields = [
        ("csrf", csrf_in(form)),
        ("event_id", field_in(form, "event_id")),
    ];
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, path, done) = post(&manager, action, &fields).await;
    assert_eq!(status, 200, "{done}");
    assert!(path.starts_with("/cashier/reversal/"), "{path}");
    assert!(done.contains("Thu hồi 30 điểm"), "{done}");
    let (_, _, page) = get(&manager, &profile).await;
    assert!(page.contains("history-voided"), "{page}");
    assert!(!page.contains("class=\"history-void\""), "{page}");
    // A cashier in the admin (if they may read it) has no void button.
    let (_, _, page) = get(&cashier, &profile).await;
    assert!(!page.contains("class=\"history-void\""), "{page}");
}

/// The ledger rows an event made, with the member's and the event's ids written as `M` and
/// `E`, so two events for two members can be compared.
async fn ledger_rows(site: &Site, event_id: &str, member: MemberId) -> Vec<String> {
    let rows = site
        .store
        .db()
        .fetch(
            "SELECT t.kind, t.reason, e.account, e.asset, e.amount, e.member_id \
             FROM ledger_transactions t JOIN ledger_entries e ON e.transaction_id = t.id \
             WHERE t.tenant_id = $1 AND t.event_id = $2 \
             ORDER BY t.kind, e.account, e.amount",
            vec![
                patron_store::db::Bind::Text(site.tenant.to_string()),
                patron_store::db::Bind::Text(event_id.to_owned()),
            ],
        )
        .await
        .unwrap();
    rows.iter()
        .map(|row| {
            format!("{:?}", row.cells())
                .replace(&member.to_string(), "M")
                .replace(event_id, "E")
        })
        .collect()
}

#[tokio::test]
async fn the_till_and_the_api_record_the_same_purchase_alike() {
    let site = Site::start(false).await;
    let pages = site.signed_in(Role::Cashier).await;
    let (till_path, html) = enrol(&pages, "0912000101", "Hoa").await;
    let till_member = member_of(&till_path);
    let fields = purchase_fields(&html, &[("amount", "150.000")]);
    let till_event = fields[1].1.clone();
    let (status, _, receipt) = post_purchase(&pages, &till_path, &fields).await;
    assert_eq!(status, 200, "{receipt}");
    let (api_path, html) = enrol(&pages, "0912000102", "Huệ").await;
    let api_member = member_of(&api_path);
    // The same cashier's session sends the same sale to the API.
    let response = pages
        .http
        .post(format!("{}/v1/events", pages.address))
        .header("x-csrf-token", csrf_in(&html))
        .json(&json!({
            "id": "api-sale-1", "type": "purchase", "member": {"id": api_member.to_string()},
            "amount": 150000, "store": "HN01",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let till_rows = ledger_rows(&site, &till_event, till_member).await;
    let api_rows = ledger_rows(&site, "api-sale-1", api_member).await;
    assert!(!till_rows.is_empty());
    assert_eq!(till_rows, api_rows);
    assert!(
        till_rows.iter().any(|row| row.contains("user:")),
        "the cashier is named: {till_rows:?}"
    );
}
