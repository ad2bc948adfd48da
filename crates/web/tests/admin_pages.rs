//! The owner's dashboard and the members pages, over HTTP on both backends: exact figures for
//! a known set of purchases, the CSV downloads, the filters, search, and what a manager does
//! to a member (adjust, merge, export, erase), with the roles that may not.

mod common;

use common::{csrf_in, Pages, Site};
use patron_store::users::Role;
use serde_json::{json, Value};
use std::collections::HashMap;

/// Records a purchase `hours_ago` hours back; returns the member's id.
async fn purchase(
    site: &Site,
    id: &str,
    phone: &str,
    name: &str,
    amount: i64,
    store: &str,
    hours_ago: i64,
) -> String {
    let at = chrono::Utc::now() - chrono::Duration::hours(hours_ago);
    let (status, body) = site
        .api(
            "POST",
            "/v1/events",
            Some(json!({
                "id": id, "type": "purchase", "member": {"phone": phone},
                "profile": {"name": name, "email": format!("kh{}@example.com", &phone[7..])},
                "amount": amount, "store": store, "occurred_at": at.to_rfc3339(),
            })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["member_id"].as_str().unwrap().to_owned()
}

/// The café's known month: three members, five purchases in the last 30 days (800,000đ, 80
/// points), one older purchase (45 days ago, 400,000đ, 40 points), and one reward of 20
/// points taken by An. Stores: HN01 and HCM1 (Bình's 150,000đ).
struct Known {
    an: String,
    binh: String,
}

async fn known_data(site: &Site) -> Known {
    site.store
        .create_store(site.tenant, "HCM1", "Hồ Chí Minh 1")
        .await
        .unwrap();
    purchase(
        site,
        "old-c1",
        "0912000003",
        "Chi",
        400_000,
        "HN01",
        45 * 24,
    )
    .await;
    let an = purchase(site, "r-a1", "0912000001", "An", 200_000, "HN01", 5).await;
    purchase(site, "r-a2", "0912000001", "An", 300_000, "HN01", 4).await;
    let binh = purchase(site, "r-b1", "0912000002", "Bình", 150_000, "HCM1", 3).await;
    purchase(site, "r-b2", "0912000002", "Bình", 50_000, "HN01", 2).await;
    purchase(site, "r-c2", "0912000003", "Chi", 100_000, "HN01", 1).await;
    let (status, reward) = site
        .api(
            "POST",
            "/v1/rewards",
            Some(json!({"name": "Bánh ngọt", "cost": 20})),
        )
        .await;
    assert_eq!(status, 201, "{reward}");
    let (status, body) = site
        .api(
            "POST",
            "/v1/events",
            Some(
                json!({"id": "redeem-a", "type": "redemption", "member": {"id": an},
                        "reward_id": reward["id"]}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    Known { an, binh }
}

/// A CSV download: status, content type, disposition, body.
async fn download(pages: &Pages, path: &str) -> (u16, String, String, String) {
    let response = pages
        .http
        .get(format!("{}{path}", pages.address))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|value| value.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let (kind, disposition) = (header("content-type"), header("content-disposition"));
    (status, kind, disposition, response.text().await.unwrap())
}

/// The summary CSV as figure → value (the dashboard's Vietnamese labels).
async fn summary(pages: &Pages, query: &str) -> HashMap<String, String> {
    let (status, kind, disposition, body) =
        download(pages, &format!("/admin/export/summary.csv?{query}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(kind, "text/csv; charset=utf-8");
    assert!(
        disposition.starts_with("attachment; filename=\"patron-summary-"),
        "{disposition}"
    );
    assert!(body.starts_with('\u{feff}'), "a byte-order mark for Excel");
    body.trim_start_matches('\u{feff}')
        .lines()
        .skip(1)
        .map(|line| {
            let (label, value) = line.rsplit_once(',').unwrap();
            (label.to_owned(), value.to_owned())
        })
        .collect()
}

fn figure<'a>(figures: &'a HashMap<String, String>, label: &str) -> &'a str {
    figures
        .get(label)
        .unwrap_or_else(|| panic!("no {label} in {figures:?}"))
}

async fn dashboard_figures(postgres: bool) {
    let site = Site::start(postgres).await;
    known_data(&site).await;
    let owner = site.signed_in(Role::Owner).await;

    let last_30 = summary(&owner, "period=30d").await;
    let expect = [
        ("Thành viên", "3"),
        ("Thành viên mới", "2"),
        ("Thành viên hoạt động", "3"),
        ("Thành viên mua từ 2 lần", "2"),
        ("Tỷ lệ mua lại", "66.67"),
        ("Lượt mua", "5"),
        ("Doanh thu từ thành viên", "800000"),
        ("Chi tiêu trung bình mỗi lượt", "160000"),
        ("Điểm đã phát", "80"),
        ("Điểm đã dùng", "20"),
        ("Điểm hết hạn", "0"),
        ("Tỷ lệ dùng điểm", "25.00"),
        ("Điểm đang lưu hành", "100"),
        ("Giá trị điểm đang lưu hành", "100000"),
        ("Voucher chưa dùng", "1"),
        ("Điểm trong voucher chưa dùng", "20"),
    ];
    for (label, value) in expect {
        assert_eq!(figure(&last_30, label), value, "{label}");
    }

    // A longer period takes in Chi's older purchase.
    let last_90 = summary(&owner, "period=90d").await;
    assert_eq!(figure(&last_90, "Lượt mua"), "6");
    assert_eq!(figure(&last_90, "Doanh thu từ thành viên"), "1200000");
    assert_eq!(figure(&last_90, "Thành viên mới"), "3");
    assert_eq!(figure(&last_90, "Tỷ lệ mua lại"), "100.00");
    assert_eq!(figure(&last_90, "Điểm đã phát"), "120");

    // One store: Bình's single purchase in Hồ Chí Minh; the reward names no store.
    let hcm = summary(&owner, "period=30d&store=HCM1").await;
    assert_eq!(figure(&hcm, "Lượt mua"), "1");
    assert_eq!(figure(&hcm, "Thành viên hoạt động"), "1");
    assert_eq!(figure(&hcm, "Doanh thu từ thành viên"), "150000");
    assert_eq!(figure(&hcm, "Tỷ lệ mua lại"), "0.00");
    assert_eq!(figure(&hcm, "Điểm đã phát"), "15");
    assert_eq!(figure(&hcm, "Điểm đã dùng"), "0");

    // Store credit given to An shows as its own liability, in money, beside the points.
    let (status, body) = site
        .api(
            "POST",
            "/v1/events",
            Some(
                json!({"id": "credit-a", "type": "adjustment", "member": {"phone": "0912000001"},
                        "asset": "money", "points": 75_000, "reason": "đền bù"}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let credited = summary(&owner, "period=30d").await;
    assert_eq!(figure(&credited, "Tiền tích luỹ khách đang giữ"), "75000");
    assert_eq!(figure(&credited, "Điểm đang lưu hành"), "100");

    // A custom period before any purchase: nothing, and rates are empty, not 0 ÷ 0.
    let empty = summary(&owner, "period=custom&from=2020-01-01&to=2020-01-31").await;
    assert_eq!(figure(&empty, "Lượt mua"), "0");
    assert_eq!(figure(&empty, "Tỷ lệ mua lại"), "");

    // The page: figures as people read them, charts, and a CSV link per table.
    let (status, html) = owner.get("/admin?period=30d").await;
    assert_eq!(status, 200, "{html}");
    for text in ["66,67%", "25,00%", "800.000đ", "Doanh thu theo ngày"] {
        assert!(html.contains(text), "{text} in {html}");
    }
    assert_eq!(html.matches("<svg").count(), 4, "four charts");
    assert!(html.contains("<title id=\"chart-revenue-title\">"));
    for table in ["summary", "series", "tiers", "rewards", "liability"] {
        assert!(
            html.contains(&format!("href=\"/admin/export/{table}.csv?period=30d&#38;")),
            "{table} link in {html}"
        );
    }
    assert!(html.contains("Bánh ngọt"), "top rewards: {html}");

    // The other tables' CSVs.
    let (status, _, _, tiers) = download(&owner, "/admin/export/tiers.csv?period=30d").await;
    assert_eq!(status, 200);
    assert!(
        tiers.contains("Member,3,3,5,800000,160000"),
        "tier, members, buyers, purchases, revenue, average: {tiers}"
    );
    let (_, _, _, rewards) = download(&owner, "/admin/export/rewards.csv?period=30d").await;
    assert!(rewards.contains("Bánh ngọt,1,20,0"), "{rewards}");
    let (_, _, _, series) = download(&owner, "/admin/export/series.csv?period=30d").await;
    assert_eq!(series.lines().count(), 31, "a header and 30 days: {series}");
    let (_, _, _, liability) = download(&owner, "/admin/export/liability.csv?period=30d").await;
    let total: i64 = liability
        .lines()
        .skip(1)
        .map(|line| line.split(',').nth(1).unwrap().parse::<i64>().unwrap())
        .sum();
    assert_eq!(
        total, 100,
        "every outstanding point is in one month: {liability}"
    );
    let (status, _, _, _) = download(&owner, "/admin/export/secrets.csv").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn dashboard_figures_on_sqlite() {
    dashboard_figures(false).await;
}

#[tokio::test]
async fn dashboard_figures_on_postgres() {
    dashboard_figures(true).await;
}

#[tokio::test]
async fn bad_filters_are_shown_next_to_their_field() {
    let site = Site::start(false).await;
    let owner = site.signed_in(Role::Manager).await;
    let (status, html) = owner
        .get("/admin?period=custom&from=2026-02-30&to=2026-01-01&store=NOPE")
        .await;
    assert_eq!(status, 422, "{html}");
    assert!(html.contains("id=\"from-error\""), "{html}");
    assert!(html.contains("Không có cửa hàng này."), "{html}");
    assert!(html.contains("aria-invalid=\"true\""), "{html}");
    let (status, html) = owner
        .get("/admin?period=custom&from=2026-03-10&to=2026-03-01")
        .await;
    assert_eq!(status, 422);
    assert!(
        html.contains("Ngày kết thúc phải sau hoặc bằng ngày bắt đầu."),
        "{html}"
    );
}

/// A member's history in the admin pages by its "older" link: 120 entries of one instant come
/// out as 120 rows over three pages (a cursor of the last entry's instant showed 50).
async fn member_history_pages_over_entries_of_one_instant(postgres: bool) {
    const ENTRIES: usize = 120;
    let site = Site::start(postgres).await;
    let at = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let events: Vec<Value> = (0..ENTRIES)
        .map(|index| {
            json!({"id": format!("same-{index}"), "type": "purchase", "member": {"phone": "0912000077"},
                   "amount": 100_000, "store": "HN01", "occurred_at": at})
        })
        .collect();
    let (status, body) = site
        .api(
            "POST",
            "/v1/events/batch",
            Some(json!({ "events": events })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, member) = site
        .api("GET", "/v1/members/by-phone/0912000077", None)
        .await;
    let owner = site.signed_in(Role::Owner).await;
    let mut path = format!("/admin/members/{}", member["id"].as_str().unwrap());
    let (mut rows, mut pages) = (0, 0);
    loop {
        let (status, html) = owner.get(&path).await;
        assert_eq!(status, 200, "{html}");
        rows += html.matches("admin-credit").count();
        pages += 1;
        let Some(at) = html.find("rel=\"next\"") else {
            break;
        };
        let link = &html[..at];
        let start = link.rfind("href=\"").unwrap() + "href=\"".len();
        path = link[start..]
            .split('"')
            .next()
            .unwrap()
            .replace("&amp;", "&");
        assert!(pages < 10, "the pages never end");
    }
    assert_eq!((rows, pages), (ENTRIES, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_history_pages_over_entries_of_one_instant_on_sqlite() {
    member_history_pages_over_entries_of_one_instant(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_history_pages_over_entries_of_one_instant_on_postgres() {
    member_history_pages_over_entries_of_one_instant(true).await;
}

async fn member_flows(postgres: bool) {
    let site = Site::start(postgres).await;
    let known = known_data(&site).await;
    let owner = site.signed_in(Role::Owner).await;

    // Search by phone (any spelling), part of a name, part of an e-mail.
    for query in ["0912%20000%20001", "%2B84912000001", "KH001%40", "an"] {
        let (status, html) = owner.get(&format!("/admin/members?q={query}")).await;
        assert_eq!(status, 200);
        assert!(
            html.contains(&format!("/admin/members/{}", known.an)),
            "{query}: {html}"
        );
    }
    let (_, html) = owner.get("/admin/members?q=b%C3%ACnh").await;
    assert!(
        html.contains(&known.binh) && !html.contains(&known.an),
        "{html}"
    );
    let (_, html) = owner.get("/admin/members?q=nobody-here").await;
    assert!(html.contains("Không tìm thấy thành viên nào."), "{html}");

    // The profile: balances, tier progress, history with reasons, the voucher.
    let profile = format!("/admin/members/{}", known.an);
    let (status, html) = owner.get(&profile).await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("id=\"member-balance\">30<"),
        "50 earned − 20: {html}"
    );
    assert!(
        html.contains("Còn 4.500.000đ nữa để lên hạng Gold"),
        "{html}"
    );
    assert!(html.contains("Bánh ngọt (voucher "), "{html}");
    assert!(
        html.contains("Tích điểm") && html.contains("Đổi quà"),
        "{html}"
    );

    // An adjustment without a reason is refused next to the field; with one it is recorded.
    let csrf = csrf_in(&html);
    let (status, html) = owner
        .post_form(
            &format!("{profile}/adjust"),
            &[
                ("csrf", &csrf),
                ("event", "adj-1"),
                ("points", "50"),
                ("reason", " "),
            ],
        )
        .await;
    assert_eq!(status, 422);
    assert!(
        html.contains("id=\"reason-error\">Cần ghi lý do điều chỉnh."),
        "{html}"
    );
    assert!(html.contains("value=\"50\""), "the points are kept: {html}");
    // The page is long: the fault is also summed up at its top, linking down to the field.
    let summary = html
        .find("id=\"error-summary\"")
        .expect("a summary at the top");
    assert!(
        summary < html.find("id=\"history\"").unwrap_or(usize::MAX),
        "{html}"
    );
    assert!(
        summary < html.find("id=\"reason-error\"").unwrap(),
        "{html}"
    );
    assert!(
        html.contains("<a href=\"#reason-error\">Cần ghi lý do điều chỉnh.</a>"),
        "{html}"
    );
    let (status, html) = owner
        .post_form(
            &format!("{profile}/adjust"),
            &[
                ("csrf", &csrf),
                ("event", "adj-1"),
                ("points", "1.2x"),
                ("reason", "x"),
            ],
        )
        .await;
    assert_eq!(status, 422);
    assert!(html.contains("id=\"points-error\""), "{html}");
    let (status, html) = owner
        .post_form(
            &format!("{profile}/adjust"),
            &[
                ("csrf", &csrf),
                ("event", "adj-1"),
                ("points", "-500"),
                ("reason", "thử"),
            ],
        )
        .await;
    assert_eq!(status, 422);
    assert!(html.contains("Không thể trừ nhiều hơn"), "{html}");
    let (status, html) = owner
        .post_form(
            &format!("{profile}/adjust"),
            &[
                ("csrf", &csrf),
                ("event", "adj-2"),
                ("points", "50"),
                ("reason", "Khách phàn nàn <đồ uống>"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Đã ghi điều chỉnh điểm."), "{html}");
    assert!(html.contains("id=\"member-balance\">80<"), "{html}");
    assert!(html.contains("Khách phàn nàn &#60;đồ uống&#62;"), "{html}");
    let (_, member) = site
        .api("GET", &format!("/v1/members/{}", known.an), None)
        .await;
    assert_eq!(member["balance"], 80);
    let audit = site.store.audit_log(site.tenant, 50, None).await.unwrap();
    let entry = audit
        .iter()
        .find(|entry| entry.action == "member.adjust_points")
        .expect("the adjustment is audited");
    assert!(entry.actor.starts_with("user:"), "{entry:?}");
    assert_eq!(
        entry.after.as_ref().unwrap()["reason"],
        "Khách phàn nàn <đồ uống>"
    );

    // Merge: find by phone, confirm, and the other member is gone with their points moved.
    let (_, dung) = site
        .api(
            "POST",
            "/v1/members",
            Some(json!({"phone": "0912000004", "profile": {"name": "Dũng"}})),
        )
        .await;
    let dung = dung["member_id"].as_str().unwrap().to_owned();
    let (_, body) = site
        .api(
            "POST",
            "/v1/events",
            Some(
                json!({"id": "r-d1", "type": "purchase", "member": {"id": dung},
                        "amount": 70000, "store": "HN01"}),
            ),
        )
        .await;
    assert_eq!(body["points_earned"], 7);
    let (status, html) = owner
        .post_form(
            &format!("{profile}/merge"),
            &[("csrf", &csrf), ("other", "someone")],
        )
        .await;
    assert_eq!(status, 422);
    assert!(html.contains("id=\"other-error\""), "{html}");
    let (status, html) = owner
        .post_form(
            &format!("{profile}/merge"),
            &[("csrf", &csrf), ("other", "0912 000 004")],
        )
        .await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("Xác nhận gộp thành viên") && html.contains("Dũng"),
        "{html}"
    );
    assert!(
        html.contains(&format!("name=\"source\" value=\"{dung}\"")),
        "{html}"
    );
    let (status, html) = owner
        .post_form(
            &format!("{profile}/merge/confirm"),
            &[("csrf", &csrf), ("source", &dung)],
        )
        .await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Đã gộp thành viên."), "{html}");
    assert!(html.contains("id=\"member-balance\">87<"), "{html}");
    let (status, _) = site.api("GET", &format!("/v1/members/{dung}"), None).await;
    assert_eq!(status, 404);

    // Export: a JSON download of everything held.
    let (status, kind, disposition, body) = download(&owner, &format!("{profile}/export")).await;
    assert_eq!(status, 200);
    assert_eq!(kind, "application/json; charset=utf-8");
    assert!(disposition.starts_with("attachment;"), "{disposition}");
    let exported: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(exported["member"]["phone"], "+84912000001");
    let audit = site.store.audit_log(site.tenant, 50, None).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|entry| entry.action == "member.export" && entry.actor.starts_with("user:")),
        "the download is audited"
    );

    // Erase: refused without the confirmation; afterwards the profile shows as erased and
    // the ledger stays.
    let (status, html) = owner
        .post_form(&format!("{profile}/erase"), &[("csrf", &csrf)])
        .await;
    assert_eq!(status, 422);
    assert!(html.contains("id=\"erase-error\""), "{html}");
    let (status, html) = owner
        .post_form(
            &format!("{profile}/erase"),
            &[("csrf", &csrf), ("confirm", "yes")],
        )
        .await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Đã xoá dữ liệu"), "{html}");
    assert!(!html.contains("+84912000001"), "{html}");
    assert!(!html.contains("/adjust\""), "no more changes: {html}");
    assert!(
        html.contains("id=\"member-balance\">87<"),
        "ledger kept: {html}"
    );
    let (_, member) = site
        .api("GET", &format!("/v1/members/{}", known.an), None)
        .await;
    assert_eq!(member["phone"], Value::Null);
    let (_, html) = owner.get("/admin/members").await;
    assert!(html.contains("Thành viên đã xoá dữ liệu"), "{html}");
}

#[tokio::test]
async fn member_flows_on_sqlite() {
    member_flows(false).await;
}

#[tokio::test]
async fn member_flows_on_postgres() {
    member_flows(true).await;
}

#[tokio::test]
async fn a_member_named_script_shows_as_text() {
    let site = Site::start(false).await;
    let (_, body) = site
        .api(
            "POST",
            "/v1/members",
            Some(json!({"phone": "0912000009", "profile": {"name": "<script>alert(1)</script>"}})),
        )
        .await;
    let id = body["member_id"].as_str().unwrap().to_owned();
    let owner = site.signed_in(Role::Owner).await;
    for path in [
        "/admin/members?q=script".to_owned(),
        format!("/admin/members/{id}"),
    ] {
        let (status, html) = owner.get(&path).await;
        assert_eq!(status, 200);
        assert!(
            html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
            "{path}: {html}"
        );
        assert!(!html.contains("<script>alert(1)"), "{path}: {html}");
    }
}

#[tokio::test]
async fn roles_that_may_not() {
    let site = Site::start(false).await;
    let member = purchase(&site, "p1", "0912000001", "An", 100_000, "HN01", 1).await;
    let profile = format!("/admin/members/{member}");

    let cashier = site.signed_in(Role::Cashier).await;
    for path in [
        "/admin",
        "/admin/members",
        profile.as_str(),
        "/admin/export/summary.csv",
    ] {
        let (status, _) = cashier.get(path).await;
        assert_eq!(status, 403, "cashier on {path}");
    }

    let viewer = site.signed_in(Role::Viewer).await;
    let (status, html) = viewer.get(&profile).await;
    assert_eq!(status, 200);
    assert!(!html.contains("/adjust\""), "no adjustment form: {html}");
    let csrf = csrf_in(&html);
    let (status, _) = viewer
        .post_form(
            &format!("{profile}/adjust"),
            &[("csrf", &csrf), ("points", "10"), ("reason", "thử")],
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = viewer.get(&format!("{profile}/export")).await;
    assert_eq!(status, 403);
    let (status, _) = viewer.get("/admin?period=year").await;
    assert_eq!(status, 200, "a viewer reads the dashboard");

    // A manager's form without the session's token is refused.
    let manager = site.signed_in(Role::Manager).await;
    let (status, _) = manager
        .post_form(
            &format!("{profile}/adjust"),
            &[("csrf", "forged"), ("points", "10"), ("reason", "thử")],
        )
        .await;
    assert_eq!(status, 403);
    let (_, body) = site
        .api("GET", &format!("/v1/members/{member}"), None)
        .await;
    assert_eq!(body["balance"], 10, "nothing changed");
}

/// The Vietnamese member page said "1909 points expired" (the engine's English note); the
/// history now says it in the visitor's language, like the cashier's refusals.
async fn engine_notes_in_vietnamese(postgres: bool) {
    let site = Site::start(postgres).await;
    let (status, bought) = site
        .api(
            "POST",
            "/v1/events",
            Some(
                json!({"id": "EX-1", "type": "purchase", "member": {"phone": "0912345678"},
                        "store": "HN01", "amount": 19_090_000}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{bought}");
    let member = bought["member_id"].as_str().unwrap().to_owned();
    let later = chrono::Utc::now() + chrono::Duration::days(400);
    site.journal
        .run_job(patron_store::jobs::JobKind::ExpireLots, later)
        .await
        .unwrap();
    let manager = site.signed_in(Role::Manager).await;
    let (status, html) = manager.get(&format!("/admin/members/{member}")).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("1.909 điểm đã hết hạn"), "{html}");
    assert!(!html.contains("points expired"), "{html}");
}

#[tokio::test]
async fn engine_notes_are_vietnamese_on_the_member_page_on_sqlite() {
    engine_notes_in_vietnamese(false).await;
}

#[tokio::test]
async fn engine_notes_are_vietnamese_on_the_member_page_on_postgres() {
    engine_notes_in_vietnamese(true).await;
}
