//! Member search as staff type it: names without diacritics, part of a phone. Each test runs on
//! SQLite and on PostgreSQL.

mod common;

use common::*;
use patron_core::member::Profile;
use patron_core::Phone;
use patron_store::audit::Actor;
use patron_store::members::{
    fold_for_search, MemberFilter, MergeRequest, ProfileUpdate, PHONE_DIGITS_MIN,
};
use patron_store::IncomingKind;

async fn enrol(cafe: &Cafe, phone: &str, name: &str) {
    let phone = Phone::parse(phone).unwrap();
    let profile = Profile {
        phone: Some(phone.clone()),
        name: Some(name.to_owned()).filter(|name| !name.is_empty()),
        ..Default::default()
    };
    cafe.journal
        .submit(cafe.event(
            &format!("enrol-{}", phone.as_str()),
            day(0),
            IncomingKind::Enrol { phone, profile },
        ))
        .await
        .unwrap();
}

/// The names found for `query`, in enrolment order.
async fn found(cafe: &Cafe, query: &str) -> Vec<String> {
    let filter = MemberFilter {
        query: Some(query.to_owned()),
        limit: 50,
        ..Default::default()
    };
    cafe.store
        .members(cafe.tenant, &filter)
        .await
        .unwrap()
        .into_iter()
        .map(|member| member.name.unwrap_or_default())
        .collect()
}

async fn names_without_diacritics(store: patron_store::Store) {
    let cafe = Cafe::open(store).await;
    enrol(&cafe, "0912345678", "Trần Thị An").await;
    enrol(&cafe, "0987654321", "Nguyễn Văn Đức").await;
    enrol(&cafe, "0901112233", "Lê Thị Hồng Nhung").await;
    enrol(&cafe, "0933444555", "Phạm Quốc Việt").await;
    enrol(&cafe, "0977888999", "Đặng Thuỳ Dương").await;

    assert_eq!(found(&cafe, "tran thi an").await, ["Trần Thị An"]);
    assert_eq!(found(&cafe, "TRAN THI AN").await, ["Trần Thị An"]);
    assert_eq!(found(&cafe, "Trần Thị An").await, ["Trần Thị An"]);
    assert_eq!(found(&cafe, "nguyen van duc").await, ["Nguyễn Văn Đức"]);
    assert_eq!(found(&cafe, "duc").await, ["Nguyễn Văn Đức"]);
    assert_eq!(found(&cafe, "hong nhung").await, ["Lê Thị Hồng Nhung"]);
    assert_eq!(found(&cafe, "viet").await, ["Phạm Quốc Việt"]);
    assert_eq!(found(&cafe, "dang thuy duong").await, ["Đặng Thuỳ Dương"]);
    // Every word must be there, in any order.
    assert_eq!(found(&cafe, "an tran").await, ["Trần Thị An"]);
    assert_eq!(
        found(&cafe, "thi").await,
        ["Trần Thị An", "Lê Thị Hồng Nhung"]
    );
    assert!(found(&cafe, "tran van").await.is_empty());
}

async fn part_of_a_phone(store: patron_store::Store) {
    let cafe = Cafe::open(store).await;
    enrol(&cafe, "0912345678", "Trần Thị An").await;
    enrol(&cafe, "0987654321", "Nguyễn Văn Đức").await;

    assert_eq!(found(&cafe, "0912 345").await, ["Trần Thị An"]);
    assert_eq!(found(&cafe, "0912.345.6").await, ["Trần Thị An"]);
    assert_eq!(found(&cafe, "+84 912 345").await, ["Trần Thị An"]);
    assert_eq!(found(&cafe, "0912 345 678").await, ["Trần Thị An"]);
    // The last digits, at the limit: found; one digit fewer searches names only.
    assert_eq!(PHONE_DIGITS_MIN, 4);
    assert_eq!(found(&cafe, "5678").await, ["Trần Thị An"]);
    assert!(found(&cafe, "678").await.is_empty());
    assert_eq!(found(&cafe, "4321").await, ["Nguyễn Văn Đức"]);
    assert!(found(&cafe, "1111").await.is_empty());
}

/// The key follows the member: a new name is found by its own words, a merge keeps the
/// survivor findable, an erasure leaves nothing to find.
async fn kept_current(store: patron_store::Store) {
    let cafe = Cafe::open(store).await;
    enrol(&cafe, "0912345678", "Trần Thị An").await;
    enrol(&cafe, "0987654321", "").await;
    let an = cafe
        .store
        .member_id(cafe.tenant, &phone("0912345678"))
        .await
        .unwrap();
    let other = cafe
        .store
        .member_id(cafe.tenant, &phone("0987654321"))
        .await
        .unwrap();
    let actor = Actor("test".into());
    let update = ProfileUpdate {
        name: Some(Some("Trần Thị Ánh".into())),
        ..Default::default()
    };
    cafe.store
        .update_member(cafe.tenant, an, &update, &actor)
        .await
        .unwrap();
    assert_eq!(found(&cafe, "tran thi anh").await, ["Trần Thị Ánh"]);

    // The source's phone goes with it; the survivor keeps its own.
    cafe.journal
        .merge(MergeRequest {
            tenant_id: cafe.tenant,
            survivor: other,
            source: an,
            actor: actor.clone(),
        })
        .await
        .unwrap();
    assert_eq!(found(&cafe, "anh").await, ["Trần Thị Ánh"]);
    assert_eq!(found(&cafe, "4321").await, ["Trần Thị Ánh"]);
    assert!(found(&cafe, "5678").await.is_empty());

    cafe.store
        .erase_member(cafe.tenant, other, &actor)
        .await
        .unwrap();
    assert!(found(&cafe, "anh").await.is_empty());
    assert!(found(&cafe, "4321").await.is_empty());
}

on_both_backends! {
    names_without_diacritics;
    part_of_a_phone;
    kept_current;
}

#[test]
fn folds_vietnamese_letters() {
    assert_eq!(fold_for_search("  Trần   Thị  Ân "), "tran thi an");
    assert_eq!(fold_for_search("ĐẶNG Ưng Ỷ"), "dang ung y");
    // Decomposed: "e" followed by combining circumflex and acute.
    assert_eq!(fold_for_search("Nguye\u{302}\u{301}n"), "nguyen");
}

/// Members enrolled before the migration that adds the keys are found once it has run.
async fn existing_members_are_backfilled(store: patron_store::Store) {
    let cafe = Cafe::open(store).await;
    enrol(&cafe, "0912345678", "Trần Thị An").await;
    // Back to the schema before 0009_admin_search.sql.
    for statement in [
        "DROP INDEX members_search",
        "ALTER TABLE members DROP COLUMN search_name",
        "ALTER TABLE members DROP COLUMN search_phone",
        "DELETE FROM schema_migrations WHERE version = 9",
    ] {
        cafe.store.db().batch(statement).await.unwrap();
    }
    assert_eq!(patron_store::migrate::run(&cafe.store).await.unwrap(), 1);
    assert_eq!(found(&cafe, "tran thi an").await, ["Trần Thị An"]);
    assert_eq!(found(&cafe, "5678").await, ["Trần Thị An"]);
}

on_both_backends! {
    existing_members_are_backfilled;
}
