use super::*;
use crate::MemberId;
use cel::objects::Key;
use cel::{Context, Value};
use proptest::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;

const TODAY: i64 = 20_600; // 2026-05-27

fn member(seed: u64) -> (MemberId, Profile) {
    let pick = |n: u64| seed / n % 7;
    let bought = pick(1) != 0;
    let profile = Profile {
        tier: ["base", "silver", "gold"][(pick(3) % 3) as usize].into(),
        city: Some(["Hà Nội", "Đà Nẵng", "Huế"][(pick(5) % 3) as usize].into()),
        gender: (pick(11) > 1).then(|| ["female", "male"][(pick(11) % 2) as usize].into()),
        favourite_store: bought.then(|| format!("S{}", pick(13) % 3)),
        favourite_category: bought.then(|| ["coffee", "cake"][(pick(17) % 2) as usize].into()),
        tags: (0..pick(19) % 3).map(|n| format!("t{n}")).collect(),
        attributes: [(
            "plan".to_owned(),
            Scalar::Text(format!("p{}", pick(23) % 2)),
        )]
        .into_iter()
        .filter(|_| pick(29) > 2)
        .collect(),
        order_count: if bought { 1 + (seed % 40) as i64 } else { 0 },
        total_spend: if bought {
            (seed % 9_000) as i64 * 1_000
        } else {
            0
        },
        window_spend: [
            (seed % 5) as i64 * 500_000,
            (seed % 11) as i64 * 500_000,
            (seed % 23) as i64 * 500_000,
        ],
        window_visits: [(seed % 3) as i64, (seed % 7) as i64, (seed % 13) as i64],
        first_purchase_day: bought.then(|| TODAY - 400 - (seed % 300) as i64),
        last_purchase_day: bought.then(|| TODAY - (seed % 120) as i64),
        joined_day: TODAY - 800,
        points_balance: (seed % 5_000) as i64,
        points_expiring: (seed % 300) as i64,
        birthday: (pick(31) > 0).then(|| {
            NaiveDate::from_ymd_opt(
                1960 + (seed % 45) as i32,
                1 + (seed % 12) as u32,
                1 + (seed % 28) as u32,
            )
            .unwrap()
        }),
        consent_zns: pick(37) > 2,
        consent_sms: pick(41) > 3,
        consent_email: pick(43) > 4,
        has_phone: true,
        has_email: pick(47) > 3,
    };
    (MemberId::new(), profile)
}

fn rfm() -> RfmCutoffs {
    RfmCutoffs {
        recency: [10, 30, 60, 90],
        frequency: [2, 5, 10, 20],
        monetary: [500_000, 1_000_000, 3_000_000, 6_000_000],
    }
}

fn table_of(members: &[(MemberId, Profile)]) -> Table {
    let mut table = Table::new(TODAY, rfm());
    for (id, profile) in members {
        table.upsert(*id, profile);
    }
    table
}

/// The members a condition selects, by both readings, which must agree.
fn selected(source: &str, members: &[(MemberId, Profile)]) -> Vec<usize> {
    let condition = Condition::compile(source).unwrap_or_else(|e| panic!("{source}: {e}"));
    let table = table_of(members);
    let rows: Vec<usize> = condition.select(&table).ones().collect();
    let by_row: Vec<usize> = (0..members.len())
        .filter(|row| condition.holds(&Facts::of(&members[*row].1, TODAY, &rfm())))
        .collect();
    assert_eq!(rows, by_row, "{source}: the column and row readings differ");
    rows
}

#[test]
fn the_issue_s_segment_selects_lapsed_gold_spenders() {
    let members: Vec<_> = (0..2_000).map(member).collect();
    let source = r#"member.tier == "gold" && member.spend_90d >= 2000000 && member.days_since_last_purchase >= 30"#;
    let rows = selected(source, &members);
    assert!(!rows.is_empty());
    for row in &rows {
        let profile = &members[*row].1;
        assert_eq!(profile.tier, "gold");
        assert!(profile.window_spend[1] >= 2_000_000);
        assert!(TODAY - profile.last_purchase_day.unwrap() >= 30);
    }
    let expected = members
        .iter()
        .filter(|(_, p)| {
            p.tier == "gold"
                && p.window_spend[1] >= 2_000_000
                && p.last_purchase_day.is_some_and(|day| TODAY - day >= 30)
        })
        .count();
    assert_eq!(rows.len(), expected);
}

#[test]
fn every_kind_of_test_compiles_and_agrees() {
    let members: Vec<_> = (0..1_500).map(|n| member(n * 7919 + 13)).collect();
    for source in [
        "true",
        "false",
        r#""t1" in member.tags"#,
        r#"!("t0" in member.tags)"#,
        r#"member.city in ["Huế", "Đà Nẵng"]"#,
        r#"member.city.startsWith("Hà")"#,
        r#"member.favourite_category.contains("off")"#,
        "member.consent_sms",
        "!member.consent_zns || member.consent_email == true",
        "member.consent_email == false",
        "member.birthday_month in [1, 2, 3]",
        "30 <= member.days_since_last_purchase",
        "member.days_to_birthday <= 7",
        "member.age >= 30 && member.age < 40",
        "member.recency_score >= 4 && member.frequency_score >= 4",
        r#"member.rfm_cell == "champions""#,
        r#"member.attributes.plan == "p1""#,
        r#"member.attributes["plan"] != "p1""#,
        "has(member.attributes.plan)",
        "member.lifetime_spend > 3000000",
        "member.average_basket >= 100000 || member.points_expiring > 200",
        "member.points_balance > -1",
        r#"member.gender != "female""#,
        "member.visits_365d >= 10 && !(member.spend_30d == 0)",
    ] {
        selected(source, &members);
    }
}

#[test]
fn missing_values_compare_false_and_not_turns_them_true() {
    let (id, mut never) = member(0);
    never.order_count = 0;
    never.last_purchase_day = None;
    never.first_purchase_day = None;
    let members = vec![(id, never)];
    assert!(selected("member.days_since_last_purchase >= 30", &members).is_empty());
    assert!(selected("member.days_since_last_purchase < 30", &members).is_empty());
    assert!(selected("member.days_since_last_purchase != 30", &members).is_empty());
    assert_eq!(
        selected("!(member.days_since_last_purchase < 30)", &members),
        vec![0]
    );
    assert!(selected("member.recency_score >= 1", &members).is_empty());
}

#[test]
fn what_cannot_run_on_columns_is_refused_with_the_reason() {
    for (source, says) in [
        ("", "empty"),
        ("member.tier ==", "does not parse"),
        ("member.spend_90d + 1 > 5", "segment condition uses"),
        (
            "member.spend_90d > member.spend_30d",
            "compare a member field with a value",
        ),
        ("member.colour == \"red\"", "unknown field `member.colour`"),
        ("member.tier == 3", "is text"),
        ("member.spend_90d >= \"a lot\"", "is a number"),
        ("member.spend_90d >= 2.5", "whole numbers"),
        ("member.tier", "not a yes-or-no field"),
        (
            "member.tags.exists(t, t == \"x\")",
            "segment condition uses",
        ),
        ("tier == \"gold\"", "write member.<field>"),
        ("member.consent_sms > true", "yes or no"),
    ] {
        let error = Condition::compile(source).expect_err(source);
        assert!(error.0.contains(says), "{source}: {error}");
    }
    let long = format!("member.tier == \"{}\"", "g".repeat(CONDITION_LENGTH_MAX));
    assert!(Condition::compile(&long)
        .unwrap_err()
        .0
        .contains("too long"));
    let many = vec!["member.age > 1"; CONDITION_PARTS_MAX].join(" && ");
    assert!(Condition::compile(&many)
        .unwrap_err()
        .0
        .contains("too many parts"));
    let fits = vec!["member.age > 1"; CONDITION_PARTS_MAX / 2 - 1].join(" && ");
    Condition::compile(&fits).unwrap();
    let deep = format!(
        "{}member.age > 1{}",
        "!(".repeat(CONDITION_DEPTH_MAX + 1),
        ")".repeat(CONDITION_DEPTH_MAX + 1)
    );
    assert!(Condition::compile(&deep)
        .unwrap_err()
        .0
        .contains("nested too deep"));
    let list = format!("member.age in [{}]", vec!["1"; IN_LIST_MAX + 1].join(", "));
    assert!(Condition::compile(&list)
        .unwrap_err()
        .0
        .contains("at most 64 values"));
}

#[test]
fn a_definition_names_the_field_at_fault() {
    let definition = |name: &str, condition: &str, discount: u8| SegmentDefinition {
        name: name.into(),
        condition: condition.into(),
        policy: Some(SalesPolicy {
            discount_percent: discount,
            ..SalesPolicy::default()
        }),
    };
    assert_eq!(
        definition(" ", "true", 0).compile().unwrap_err().field,
        "name"
    );
    assert_eq!(
        definition("Gold", "true", 101).compile().unwrap_err().field,
        "policy.discount_percent"
    );
    assert_eq!(
        definition("Gold", "member.x > 1", 10)
            .compile()
            .unwrap_err()
            .field,
        "condition"
    );
    definition("Gold", "true", 100).compile().unwrap();
}

#[test]
fn a_row_changes_in_place_and_a_removed_member_leaves() {
    let members: Vec<_> = (0..100).map(member).collect();
    let mut table = table_of(&members);
    let gold = Condition::compile(r#"member.tier == "gold""#).unwrap();
    let before = gold.select(&table).count();
    let (id, profile) = &members.iter().find(|(_, p)| p.tier != "gold").unwrap();
    let mut promoted = profile.clone();
    promoted.tier = "gold".into();
    table.upsert(*id, &promoted);
    assert_eq!(gold.select(&table).count(), before + 1);
    table.remove(id);
    assert_eq!(gold.select(&table).count(), before);
    assert_eq!(table.members(), 99);
    assert_eq!(table.len(), 100);
}

#[test]
fn a_new_day_moves_the_day_following_fields() {
    let (id, mut profile) = member(5);
    profile.order_count = 3;
    profile.last_purchase_day = Some(TODAY - 29);
    profile.birthday = NaiveDate::from_ymd_opt(1990, 6, 1);
    let mut table = table_of(&[(id, profile)]);
    let lapsed = Condition::compile("member.days_since_last_purchase >= 30").unwrap();
    assert_eq!(lapsed.select(&table).count(), 0);
    table.set_day(TODAY + 1, rfm());
    assert_eq!(lapsed.select(&table).count(), 1);
    assert!(lapsed.follows_the_day());
    let facts = table.facts(0);
    assert_eq!(facts.int(IntField::DaysToBirthday), Some(4));
    assert_eq!(facts.int(IntField::Age), Some(35));
    assert!(!Condition::compile("member.spend_90d > 1")
        .unwrap()
        .follows_the_day());
}

/// The member as the CEL interpreter sees it: every field the profile has a value for.
fn cel_member(facts: &Facts) -> Value {
    let key = |name: &str| Key::String(Arc::new(name.to_owned()));
    let mut map: HashMap<Key, Value> = HashMap::new();
    for field in IntField::ALL {
        if let Some(value) = facts.int(field) {
            map.insert(key(field.name()), Value::Int(value));
        }
    }
    for field in TextField::ALL {
        if let Some(value) = facts.text(field) {
            map.insert(key(field.name()), Value::String(Arc::new(value.to_owned())));
        }
    }
    for field in BoolField::ALL {
        map.insert(key(field.name()), Value::Bool(facts.bool(field)));
    }
    let tags = facts
        .tags
        .iter()
        .map(|tag| Value::String(Arc::new(tag.clone())));
    map.insert(key("tags"), Value::List(Arc::new(tags.collect())));
    Value::from(map)
}

fn comparison() -> impl Strategy<Value = String> {
    let ints = prop::sample::select(vec![
        "order_count",
        "total_spend",
        "spend_30d",
        "spend_90d",
        "visits_365d",
        "points_balance",
        "points_expiring",
        "monetary_score",
    ]);
    let ops = prop::sample::select(vec!["==", "!=", "<", "<=", ">", ">="]);
    prop_oneof![
        (ints, ops.clone(), 0i64..6_000_000)
            .prop_map(|(field, op, value)| format!("member.{field} {op} {value}")),
        (prop::sample::select(vec!["base", "silver", "gold"]), ops)
            .prop_map(|(tier, op)| format!("member.tier {op} \"{tier}\"")),
        (0..3u8).prop_map(|n| format!("\"t{n}\" in member.tags")),
        prop::sample::select(vec!["member.consent_zns", "member.has_email"]).prop_map(String::from),
    ]
}

fn expression() -> impl Strategy<Value = String> {
    comparison().prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) && ({b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) || ({b})")),
            inner.prop_map(|a| format!("!({a})")),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Over members who have every field, the compiled plan selects exactly the members for
    /// whom the CEL interpreter finds the condition true.
    #[test]
    fn the_plan_agrees_with_the_cel_interpreter(
        source in expression(),
        seeds in prop::collection::vec(1u64..1_000_000, 1..60),
    ) {
        let members: Vec<_> = seeds
            .iter()
            .map(|seed| member(seed * 7 + 1))
            .filter(|(_, p)| p.order_count > 0)
            .collect();
        let condition = Condition::compile(&source).unwrap();
        let table = table_of(&members);
        let rows: Vec<usize> = condition.select(&table).ones().collect();
        let program = cel::Program::compile(&source).unwrap();
        let mut expected = Vec::new();
        for (row, (_, profile)) in members.iter().enumerate() {
            let facts = Facts::of(profile, TODAY, &rfm());
            let mut context = Context::default();
            context.add_variable_from_value("member", cel_member(&facts));
            match program.execute(&context) {
                Ok(Value::Bool(true)) => expected.push(row),
                Ok(Value::Bool(false)) => {}
                other => prop_assert!(false, "{source}: the interpreter gave {other:?}"),
            }
        }
        prop_assert_eq!(rows, expected, "{}", source);
    }
}
