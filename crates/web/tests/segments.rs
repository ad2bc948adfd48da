//! Segments on the pages, over HTTP: the builder's rows made into CEL (hostile values
//! included), the live count with its sample, saving and editing with versions and a conflict,
//! the members list and CSV, archiving, the roles that may not; the till showing a segment's
//! sales policy; and a member's promotions consent from their page to `Store::consents`.

mod common;

use common::{csrf_in, Pages, Site};
use patron_core::segment::{Cmp, Condition, TextField, TextTest};
use patron_core::MemberId;
use patron_store::segments::ConsentChannel;
use patron_store::users::Role;
use patron_web::segment_condition::{
    cel_string, condition_of, rows_of, Combine, Operator, Row, ROWS_MAX,
};
use serde_json::json;

// ---------------------------------------------------------------------------------------------
// Rows into CEL

fn one(field: &str, operator: Operator, value: &str) -> Result<String, Vec<String>> {
    condition_of(&[Row::new(field, operator, value)], Combine::All)
        .map_err(|faults| faults.iter().map(|fault| fault.key.to_owned()).collect())
}

fn compiled(condition: &str) -> Condition {
    Condition::compile(condition).unwrap_or_else(|error| panic!("{condition}: {error}"))
}

#[test]
fn hostile_text_values_stay_one_literal() {
    let hostile = [
        "\"",
        "\\",
        "\\\"",
        "x\" || true || \"",
        "x\\\" || member.age > 0 || \"",
        "\" + \"",
        "'single' and \"double\"",
        "Hà Nội 🍰",
        "trailing backslash \\",
        "${member.tier}",
    ];
    for value in hostile {
        let condition = one("city", Operator::Is, value).unwrap();
        assert_eq!(
            compiled(&condition),
            Condition::Text(TextField::City, TextTest::Cmp(Cmp::Eq, value.to_owned())),
            "{value} → {condition}"
        );
        let condition = one("city", Operator::StartsWith, value).unwrap();
        assert_eq!(
            compiled(&condition),
            Condition::Text(TextField::City, TextTest::StartsWith(value.to_owned())),
            "{value} → {condition}"
        );
        let condition = one("tags", Operator::HasTag, value).unwrap();
        assert_eq!(
            compiled(&condition),
            Condition::Tag(value.to_owned()),
            "{value}"
        );
        let condition = one("tags", Operator::HasNotTag, value).unwrap();
        assert_eq!(
            compiled(&condition),
            Condition::Not(Box::new(Condition::Tag(value.to_owned()))),
            "{value}"
        );
    }
    // Control characters are refused in a row; the literal itself escapes them anyway.
    assert_eq!(
        one("city", Operator::Is, "a\nb"),
        Err(vec!["segments.error.value_control".to_owned()])
    );
    for text in ["a\nb", "tab\there", "bell\u{7}", "\r\n\"\\"] {
        let condition = format!("member.city == {}", cel_string(text));
        assert_eq!(
            compiled(&condition),
            Condition::Text(TextField::City, TextTest::Cmp(Cmp::Eq, text.to_owned())),
            "{condition}"
        );
    }
}

#[test]
fn a_list_of_values_is_split_on_commas_and_each_quoted() {
    let condition = one("city", Operator::OneOf, "Huế, Đà Nẵng ,, x\" || true || \"").unwrap();
    assert_eq!(
        compiled(&condition),
        Condition::Text(
            TextField::City,
            TextTest::In(vec![
                "Huế".into(),
                "Đà Nẵng".into(),
                "x\" || true || \"".into()
            ])
        )
    );
    let too_many = vec!["a"; 101].join(",");
    assert_eq!(
        one("city", Operator::OneOf, &too_many),
        Err(vec!["segments.error.too_many_values".to_owned()])
    );
}

#[test]
fn numbers_are_whole_numbers_only() {
    assert_eq!(
        one("spend_90d", Operator::GreaterOrEqual, "2.000.000").unwrap(),
        "member.spend_90d >= 2000000"
    );
    assert_eq!(
        one("age", Operator::Less, " 25 ").unwrap(),
        "member.age < 25"
    );
    assert_eq!(
        compiled(&one("points_balance", Operator::NotEqual, "-3").unwrap()),
        compiled("member.points_balance != -3")
    );
    for bad in ["1.5", "1e6", "12abc", "2000000 || true", "0x10", "--1"] {
        assert_eq!(
            one("spend_90d", Operator::Greater, bad),
            Err(vec!["segments.error.number_invalid".to_owned()]),
            "{bad}"
        );
    }
    assert_eq!(
        one("spend_90d", Operator::Greater, "99999999999999999999"),
        Err(vec!["segments.error.number_too_large".to_owned()])
    );
    assert_eq!(
        one("spend_90d", Operator::Greater, ""),
        Err(vec!["segments.error.value_required".to_owned()])
    );
}

#[test]
fn operators_must_suit_the_field_and_fields_must_exist() {
    assert_eq!(
        one("tier", Operator::Greater, "3"),
        Err(vec!["segments.error.operator_mismatch".to_owned()])
    );
    assert_eq!(
        one("spend_90d", Operator::Is, "3"),
        Err(vec!["segments.error.operator_mismatch".to_owned()])
    );
    assert_eq!(
        one("member.tier || true", Operator::Is, "gold"),
        Err(vec!["segments.error.field_unknown".to_owned()])
    );
    assert_eq!(
        one("consent_zns", Operator::Yes, "ignored").unwrap(),
        "member.consent_zns"
    );
    assert_eq!(
        one("has_email", Operator::No, "").unwrap(),
        "!member.has_email"
    );
    let rows = [
        Row::default(),
        Row::new("tier", Operator::Is, "gold"),
        Row::new("", Operator::Is, "orphan value"),
        Row::new("age", Operator::Greater, "x"),
    ];
    let faults: Vec<String> = condition_of(&rows, Combine::Any)
        .unwrap_err()
        .into_iter()
        .map(|fault| format!("{} {}", fault.field, fault.key))
        .collect();
    assert_eq!(
        faults,
        [
            "rows[2].field segments.error.field_required",
            "rows[3].value segments.error.number_invalid"
        ]
    );
    assert_eq!(
        condition_of(&[Row::default()], Combine::All)
            .unwrap_err()
            .pop()
            .unwrap()
            .key,
        "segments.error.no_rows"
    );
    let many = vec![Row::new("age", Operator::Greater, "1"); ROWS_MAX + 1];
    assert_eq!(
        condition_of(&many, Combine::All).unwrap_err()[0].key,
        "segments.error.too_many_rows"
    );
}

#[test]
fn saved_conditions_read_back_into_rows_when_the_rows_would_say_the_same() {
    let rows = vec![
        Row::new("tier", Operator::IsNot, "gold \"x\""),
        Row::new("city", Operator::OneOf, "Huế, Hà Nội"),
        Row::new("tags", Operator::HasNotTag, "vip"),
        Row::new("consent_sms", Operator::No, ""),
        Row::new("days_to_birthday", Operator::LessOrEqual, "7"),
    ];
    let condition = condition_of(&rows, Combine::Any).unwrap();
    assert_eq!(rows_of(&condition), Some((Combine::Any, rows)));
    assert_eq!(
        rows_of("member.age >= 18"),
        Some((
            Combine::All,
            vec![Row::new("age", Operator::GreaterOrEqual, "18")]
        ))
    );
    for cel in [
        "(member.age > 1 && member.age < 9) || member.has_email",
        "member.city.endsWith(\"x\")",
        "member.attributes.school == \"A\"",
        "member.city in [\"a,b\", \"c\"]",
        "member.age in [1, 2]",
        "true",
        "not cel at all (",
    ] {
        assert_eq!(rows_of(cel), None, "{cel}");
    }
}

// ---------------------------------------------------------------------------------------------
// The pages

/// A purchase through the API; returns the member's id.
async fn purchase(site: &Site, id: &str, phone: &str, name: &str, amount: i64) -> MemberId {
    let (status, body) = site
        .api(
            "POST",
            "/v1/events",
            Some(json!({
                "id": id, "type": "purchase", "member": {"phone": phone}, "store": "HN01",
                "profile": {"name": name, "email": format!("{id}@example.com")},
                "amount": amount,
            })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    MemberId::parse(body["member_id"].as_str().unwrap()).unwrap()
}

/// An (Gold, 6,000,000đ), Bình and Chi (Member).
async fn three_members(site: &Site) -> (MemberId, MemberId) {
    let an = purchase(site, "s-an", "0912000001", "An", 6_000_000).await;
    let binh = purchase(site, "s-binh", "0912000002", "Bình", 200_000).await;
    purchase(site, "s-chi", "0912000003", "Chi", 100_000).await;
    (an, binh)
}

/// The builder's form: `rows` as (field, operator, value), then the other fields.
fn builder_fields<'a>(
    csrf: &'a str,
    rows: &[(&'a str, &'a str, &'a str)],
    others: &[(&'a str, &'a str)],
) -> Vec<(String, String)> {
    let mut fields = vec![("csrf".to_owned(), csrf.to_owned())];
    for (index, (field, operator, value)) in rows.iter().enumerate() {
        fields.push((format!("rows[{index}].field"), field.to_string()));
        fields.push((format!("rows[{index}].operator"), operator.to_string()));
        fields.push((format!("rows[{index}].value"), value.to_string()));
    }
    for (name, value) in others {
        fields.push((name.to_string(), value.to_string()));
    }
    fields
}

async fn post(pages: &Pages, path: &str, fields: &[(String, String)]) -> (u16, String) {
    let pairs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    pages.post_form(path, &pairs).await
}

/// The id of the segment whose page `html` is (its edit link).
fn segment_id_in(html: &str) -> String {
    let marker = "href=\"/admin/segments/";
    let start = html.find(marker).map(|at| at + marker.len()).unwrap();
    let rest = &html[start..];
    let end = rest.find("/edit\"").expect("the page links to its editor");
    rest[..end].to_owned()
}

/// A download: status, content type and body.
async fn download(pages: &Pages, path: &str) -> (u16, String, String) {
    let response = pages
        .http
        .get(format!("{}{path}", pages.address))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let kind = response
        .headers()
        .get("content-type")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, kind, response.text().await.unwrap())
}

async fn segment_flows(postgres: bool) {
    let site = Site::start(postgres).await;
    let (an, binh) = three_members(&site).await;
    let marketer = site.signed_in(Role::Marketer).await;

    // The list, empty, from the nav.
    let (status, html) = marketer.get("/admin/segments").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("href=\"/admin/segments\""), "nav: {html}");
    assert!(html.contains("Chưa có phân khúc nào."), "{html}");
    assert!(html.contains("id=\"new-segment\""), "{html}");

    // The builder: fields grouped by kind, with their help.
    let (status, html) = marketer.get("/admin/segments/new").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("<optgroup label=\"Số\">"), "{html}");
    assert!(
        html.contains("value=\"spend_90d\" data-kind=\"number\""),
        "{html}"
    );
    assert!(html.contains("Chi tiêu 90 ngày qua (spend_90d)"), "{html}");
    let csrf = csrf_in(&html);

    // Count: one of three is Gold; nothing saved.
    let fields = builder_fields(
        &csrf,
        &[("tier", "is", "gold")],
        &[("combine", "all"), ("action", "count")],
    );
    let (status, html) = post(&marketer, "/admin/segments/new", &fields).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("1 trên 3 thành viên"), "{html}");
    assert!(
        html.contains(&format!("href=\"/admin/members/{an}\"")),
        "{html}"
    );
    assert!(html.contains("0912•••001"), "masked: {html}");
    assert!(!html.contains("0912000001"), "no full phone: {html}");
    assert!(
        html.contains("member.tier == &#34;gold&#34;")
            || html.contains("member.tier == &quot;gold&quot;"),
        "the CEL shown: {html}"
    );
    assert!(site.store.segments(site.tenant).await.unwrap().is_empty());

    // "Any of": Gold or spent under 150,000đ.
    let fields = builder_fields(
        &csrf,
        &[("tier", "is", "gold"), ("total_spend", "lt", "150.000")],
        &[("combine", "any"), ("action", "count")],
    );
    let (_, html) = post(&marketer, "/admin/segments/new", &fields).await;
    assert!(html.contains("2 trên 3 thành viên"), "{html}");

    // A value that tries to break out of its quotes selects nobody, not everybody.
    let fields = builder_fields(
        &csrf,
        &[("tier", "is", "x\" || true || \"")],
        &[("action", "count")],
    );
    let (status, html) = post(&marketer, "/admin/segments/new", &fields).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("0 trên 3 thành viên"), "{html}");

    // Mistakes next to their row.
    let fields = builder_fields(
        &csrf,
        &[("total_spend", "ge", "1,5"), ("tier", "gt", "gold")],
        &[("action", "count")],
    );
    let (status, html) = post(&marketer, "/admin/segments/new", &fields).await;
    assert_eq!(status, 422, "{html}");
    assert!(html.contains("id=\"rows-0-value-error\""), "{html}");
    assert!(html.contains("Hãy nhập số nguyên"), "{html}");
    assert!(html.contains("id=\"rows-1-operator-error\""), "{html}");

    // CEL written by hand, and a CEL mistake shown by the box.
    let fields = builder_fields(
        &csrf,
        &[],
        &[
            ("write_cel", "yes"),
            (
                "cel",
                "member.total_spend >= 150000 && member.tier != \"gold\"",
            ),
            ("action", "count"),
        ],
    );
    let (_, html) = post(&marketer, "/admin/segments/new", &fields).await;
    assert!(html.contains("1 trên 3 thành viên"), "{html}");
    let fields = builder_fields(
        &csrf,
        &[],
        &[
            ("write_cel", "yes"),
            ("cel", "member.nope > 1"),
            ("action", "count"),
        ],
    );
    let (status, html) = post(&marketer, "/admin/segments/new", &fields).await;
    assert_eq!(status, 422, "{html}");
    assert!(html.contains("id=\"cel-error\""), "{html}");
    assert!(html.contains("Không dùng được điều kiện này"), "{html}");

    // Save, with a sales policy; a bad discount first.
    let save = |discount: &'static str| {
        builder_fields(
            &csrf,
            &[("tier", "is", "gold")],
            &[
                ("name", "Khách vàng"),
                ("discount_percent", discount),
                ("price_list", "Sỉ"),
                ("note", "Tặng bánh"),
                ("action", "save"),
            ],
        )
    };
    let (status, html) = post(&marketer, "/admin/segments/new", &save("150")).await;
    assert_eq!(status, 422, "{html}");
    assert!(html.contains("id=\"discount-error\""), "{html}");
    let (status, html) = post(&marketer, "/admin/segments/new", &save("5")).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Đã lưu phân khúc."), "{html}");
    assert!(
        html.contains("<div class=\"figure\" id=\"segment-count\">1</div>"),
        "{html}"
    );
    assert!(html.contains("−5%"), "{html}");
    assert!(html.contains("Tặng bánh"), "{html}");
    assert!(
        html.contains(&format!("href=\"/admin/members/{an}\"")),
        "{html}"
    );
    assert!(
        !html.contains(&format!("href=\"/admin/members/{binh}\"")),
        "{html}"
    );
    assert!(
        !html.contains("id=\"segment-csv\""),
        "a marketer takes no CSV: {html}"
    );
    let id = segment_id_in(&html);

    // The same name again is refused next to the name.
    let (status, html) = post(&marketer, "/admin/segments/new", &save("5")).await;
    assert_eq!(status, 422, "{html}");
    assert!(
        html.contains("Đã có phân khúc khác mang tên này."),
        "{html}"
    );

    let (_, html) = marketer.get("/admin/segments").await;
    assert!(html.contains("Khách vàng"), "{html}");
    assert!(html.contains("−5% · bảng giá Sỉ · Tặng bánh"), "{html}");

    // Edit: the saved condition back as rows, at version 1.
    let (status, html) = marketer.get(&format!("/admin/segments/{id}/edit")).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("name=\"version\" value=\"1\""), "{html}");
    assert!(html.contains("value=\"tier\" data-kind=\"text\""), "{html}");
    assert!(
        html.contains(
            "name=\"rows[0].value\" class=\"segment-value\" id=\"rows-0-value\" value=\"gold\""
        ),
        "{html}"
    );
    let edit = |version: &'static str, spend: &'static str| {
        builder_fields(
            &csrf,
            &[("total_spend", "ge", spend)],
            &[
                ("name", "Khách vàng"),
                ("version", version),
                ("discount_percent", "5"),
                ("action", "save"),
            ],
        )
    };
    let path = format!("/admin/segments/{id}/edit");
    let (status, html) = post(&marketer, &path, &edit("1", "150000")).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("id=\"segment-count\">2</div>"), "{html}");
    assert!(html.contains("member.total_spend &#62;= 150000"), "{html}");
    // Version 2 was saved meanwhile: the form from version 1 is refused.
    let (status, html) = post(&marketer, &path, &edit("1", "1")).await;
    assert_eq!(status, 409, "{html}");
    assert!(html.contains("id=\"conflict\""), "{html}");
    assert!(html.contains("Có người đã lưu phân khúc này"), "{html}");
    let versions = site.store.segment_versions(site.tenant, &id).await.unwrap();
    assert_eq!(versions.len(), 2);

    // The segment page lists both versions.
    let (_, html) = marketer.get(&format!("/admin/segments/{id}")).await;
    assert!(html.contains("id=\"versions\""), "{html}");
    assert!(html.contains("Test marketer"), "who saved: {html}");

    // The CSV, for an owner, audited.
    let owner = site.signed_in(Role::Owner).await;
    let (_, html) = owner.get(&format!("/admin/segments/{id}")).await;
    assert!(html.contains("id=\"segment-csv\""), "{html}");
    let (status, kind, body) = download(&owner, &format!("/admin/segments/{id}/members.csv")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(kind, "text/csv; charset=utf-8");
    let lines: Vec<&str> = body.trim_start_matches('\u{feff}').lines().collect();
    assert_eq!(
        lines[0],
        "mã,tên,điện thoại,email,hạng,điểm,tổng chi tiêu,số lần mua,ngày tham gia"
    );
    assert_eq!(lines.len(), 3, "{body}");
    let an_line = lines
        .iter()
        .find(|line| line.starts_with(&an.to_string()))
        .unwrap();
    assert!(
        an_line.contains(",An,+84912000001,s-an@example.com,gold,600,6000000,1,"),
        "{an_line}"
    );
    let audit = site.store.audit_log(site.tenant, 20, None).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|entry| entry.action == "export.segment_members"
                && entry.subject == format!("segment:{id}")),
        "{audit:?}"
    );
    let (status, _, _) = download(&marketer, &format!("/admin/segments/{id}/members.csv")).await;
    assert_eq!(status, 403);

    // Archive: out of the list; its page is gone.
    let (status, html) = marketer
        .post_form(&format!("/admin/segments/{id}/archive"), &[("csrf", &csrf)])
        .await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Đã lưu trữ phân khúc."), "{html}");
    assert!(!html.contains("Khách vàng"), "{html}");
    let (status, _) = marketer.get(&format!("/admin/segments/{id}")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn segment_flows_on_sqlite() {
    segment_flows(false).await;
}

#[tokio::test]
async fn segment_flows_on_postgres() {
    segment_flows(true).await;
}

#[tokio::test]
async fn a_segments_members_are_paged() {
    let site = Site::start(false).await;
    for number in 0..55 {
        purchase(
            &site,
            &format!("p{number}"),
            &format!("09120001{number:02}"),
            &format!("Khách {number}"),
            100_000,
        )
        .await;
    }
    let owner = site.signed_in(Role::Owner).await;
    let (_, html) = owner.get("/admin/segments/new").await;
    let csrf = csrf_in(&html);
    let fields = builder_fields(
        &csrf,
        &[("order_count", "ge", "1")],
        &[("name", "Đã mua"), ("action", "save")],
    );
    let (status, html) = post(&owner, "/admin/segments/new", &fields).await;
    assert_eq!(status, 200, "{html}");
    let id = segment_id_in(&html);
    assert_eq!(html.matches("href=\"/admin/members/").count(), 50, "{html}");
    assert!(
        html.contains(&format!("/admin/segments/{id}?page=2#members")),
        "{html}"
    );
    let (_, html) = owner.get(&format!("/admin/segments/{id}?page=2")).await;
    assert_eq!(html.matches("href=\"/admin/members/").count(), 5, "{html}");
    assert!(
        html.contains(&format!("/admin/segments/{id}?page=1#members")),
        "{html}"
    );
    assert!(!html.contains("rel=\"next\""), "{html}");
}

#[tokio::test]
async fn roles_that_may_not_build_segments() {
    let site = Site::start(false).await;
    three_members(&site).await;
    let owner = site.signed_in(Role::Owner).await;
    let (_, html) = owner.get("/admin/segments/new").await;
    let owner_csrf = csrf_in(&html);
    let fields = builder_fields(
        &owner_csrf,
        &[("tier", "is", "gold")],
        &[("name", "Vàng"), ("action", "save")],
    );
    let (_, html) = post(&owner, "/admin/segments/new", &fields).await;
    let id = segment_id_in(&html);

    // A viewer reads the list and the segment, but builds, saves, archives nothing.
    let viewer = site.signed_in(Role::Viewer).await;
    let (status, html) = viewer.get("/admin/segments").await;
    assert_eq!(status, 200);
    assert!(html.contains("Vàng"), "{html}");
    assert!(!html.contains("id=\"new-segment\""), "{html}");
    let (status, html) = viewer.get(&format!("/admin/segments/{id}")).await;
    assert_eq!(status, 200);
    assert!(!html.contains("id=\"edit-segment\""), "{html}");
    assert!(!html.contains("id=\"archive-segment\""), "{html}");
    assert!(!html.contains("id=\"segment-csv\""), "{html}");
    let viewer_csrf = csrf_in(&html);
    assert_eq!(viewer.get("/admin/segments/new").await.0, 403);
    assert_eq!(
        viewer.get(&format!("/admin/segments/{id}/edit")).await.0,
        403
    );
    let fields = builder_fields(
        &viewer_csrf,
        &[("tier", "is", "gold")],
        &[("name", "Của người xem"), ("action", "save")],
    );
    assert_eq!(post(&viewer, "/admin/segments/new", &fields).await.0, 403);
    let count = builder_fields(
        &viewer_csrf,
        &[("tier", "is", "gold")],
        &[("action", "count")],
    );
    assert_eq!(post(&viewer, "/admin/segments/new", &count).await.0, 403);
    assert_eq!(
        viewer
            .post_form(
                &format!("/admin/segments/{id}/archive"),
                &[("csrf", &viewer_csrf)]
            )
            .await
            .0,
        403
    );
    assert_eq!(
        download(&viewer, &format!("/admin/segments/{id}/members.csv"))
            .await
            .0,
        403
    );

    // A cashier's place is the till.
    let cashier = site.signed_in(Role::Cashier).await;
    assert_eq!(cashier.get("/admin/segments").await.0, 403);
    let (_, html) = cashier.get("/cashier").await;
    let cashier_csrf = csrf_in(&html);
    let fields = builder_fields(
        &cashier_csrf,
        &[("tier", "is", "gold")],
        &[("name", "Của thu ngân"), ("action", "save")],
    );
    assert_eq!(post(&cashier, "/admin/segments/new", &fields).await.0, 403);

    // A form without the session's token changes nothing.
    let fields = builder_fields(
        "forged",
        &[("tier", "is", "gold")],
        &[("name", "Giả"), ("action", "save")],
    );
    assert_eq!(post(&owner, "/admin/segments/new", &fields).await.0, 403);
    assert_eq!(site.store.segments(site.tenant).await.unwrap().len(), 1);
}

#[tokio::test]
async fn the_till_shows_the_sales_policies_of_the_members_segments() {
    let site = Site::start(false).await;
    let (an, binh) = three_members(&site).await;
    let owner = site.signed_in(Role::Owner).await;
    let (_, html) = owner.get("/admin/segments/new").await;
    let csrf = csrf_in(&html);
    for (name, rows, policy) in [
        (
            "Khách vàng",
            [("tier", "is", "gold")],
            [
                ("discount_percent", "5"),
                ("price_list", "Sỉ"),
                ("note", "Tặng <bánh>"),
            ],
        ),
        (
            "Mọi người",
            [("order_count", "ge", "1")],
            [("discount_percent", ""), ("price_list", ""), ("note", "")],
        ),
    ] {
        let mut others = vec![("name", name), ("action", "save")];
        others.extend(policy);
        let fields = builder_fields(&csrf, &rows, &others);
        let (status, html) = post(&owner, "/admin/segments/new", &fields).await;
        assert_eq!(status, 200, "{html}");
    }
    let cashier = site.signed_in(Role::Cashier).await;
    let (status, html) = cashier.get(&format!("/cashier/member/{an}")).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("id=\"member-policies\""), "{html}");
    assert!(html.contains("<strong>Khách vàng</strong>"), "{html}");
    assert!(html.contains("−5%"), "{html}");
    assert!(html.contains("bảng giá: Sỉ"), "{html}");
    assert!(
        html.contains("Tặng &#60;bánh&#62;") || html.contains("Tặng &lt;bánh&gt;"),
        "{html}"
    );
    assert!(
        !html.contains("Mọi người"),
        "a segment without a policy is not shown: {html}"
    );
    let (_, html) = cashier.get(&format!("/cashier/member/{binh}")).await;
    assert!(!html.contains("id=\"member-policies\""), "{html}");
}

#[tokio::test]
async fn a_member_gives_and_takes_back_consent_on_their_page() {
    let site = Site::start(false).await;
    let (an, _) = three_members(&site).await;
    let link = site
        .store
        .member_link(site.tenant, an, chrono::Utc::now())
        .await
        .unwrap();
    let member = Pages::new(&site.address);
    let (status, html) = member
        .get(&format!(
            "/m/{}/link?member={}&expires={}&signature={}",
            site.tenant, link.member_id, link.expires, link.signature
        ))
        .await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("id=\"consent\""), "{html}");
    assert!(!html.contains("id=\"consent-zns\" checked"), "{html}");
    let csrf = csrf_in(&html);
    let base = format!("/m/{}", site.tenant);

    let (status, html) = member
        .post_form(
            &format!("{base}/consent"),
            &[("csrf", &csrf), ("zns", "yes"), ("email", "yes")],
        )
        .await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("id=\"consent-saved\""), "{html}");
    assert!(html.contains("id=\"consent-zns\" checked"), "{html}");
    assert!(!html.contains("id=\"consent-sms\" checked"), "{html}");
    let consents = site.store.consents(site.tenant, an).await.unwrap();
    let state: Vec<(ConsentChannel, bool, &str)> = consents
        .iter()
        .map(|consent| (consent.channel, consent.granted, consent.source.as_str()))
        .collect();
    assert_eq!(
        state,
        [
            (ConsentChannel::Email, true, "member_page"),
            (ConsentChannel::Zns, true, "member_page")
        ],
        "by channel name"
    );

    // Zalo off; e-mail kept (not written again); SMS never given stays unrecorded.
    let email_at = consents[0].at.clone();
    let (status, _) = member
        .post_form(
            &format!("{base}/consent"),
            &[("csrf", &csrf), ("email", "yes")],
        )
        .await;
    assert_eq!(status, 200);
    let consents = site.store.consents(site.tenant, an).await.unwrap();
    let state: Vec<(ConsentChannel, bool)> = consents
        .iter()
        .map(|consent| (consent.channel, consent.granted))
        .collect();
    assert_eq!(
        state,
        [(ConsentChannel::Email, true), (ConsentChannel::Zns, false)]
    );
    assert_eq!(consents[0].at, email_at);

    // A forged form changes nothing.
    let (status, _) = member
        .post_form(
            &format!("{base}/consent"),
            &[("csrf", "forged"), ("sms", "yes")],
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(site.store.consents(site.tenant, an).await.unwrap().len(), 2);

    // The admin's profile lists them, read-only, with where they were given.
    let viewer = site.signed_in(Role::Viewer).await;
    let (_, html) = viewer.get(&format!("/admin/members/{an}")).await;
    let section = &html[html.find("id=\"consents\"").unwrap()..];
    let section = &section[..section.find("</section>").unwrap()];
    assert!(section.contains("Trang thành viên"), "{section}");
    assert!(section.contains("Từ chối"), "{section}");
    assert!(section.contains("Đồng ý"), "{section}");
    assert!(!section.contains("<form"), "{section}");
}
