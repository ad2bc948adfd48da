//! Card codes and sign-in link secrets, made on first use: what happens when the row is there
//! already, and which constraint said so. Each test runs on SQLite and on PostgreSQL.

mod common;

use common::*;
use patron_core::member::Profile;
use patron_core::{MemberId, Phone};
use patron_store::error::Unique;
use patron_store::member_access::{card_code_of, CARD_CODE_ATTEMPTS_MAX};
use patron_store::{binds, IncomingKind, Store, StoreError};

async fn enrol(cafe: &Cafe, phone: &str) -> MemberId {
    let parsed = Phone::parse(phone).unwrap();
    cafe.journal
        .submit(cafe.event(
            &format!("enrol-{phone}"),
            day(0),
            IncomingKind::Enrol {
                phone: parsed.clone(),
                profile: Profile {
                    phone: Some(parsed),
                    ..Default::default()
                },
            },
        ))
        .await
        .unwrap();
    cafe.store
        .member_id(cafe.tenant, &common::phone(phone))
        .await
        .unwrap()
}

const CARD_INSERT: &str =
    "INSERT INTO member_cards (tenant_id, code, member_id, created_at) VALUES ($1, $2, $3, $4)";

/// Gives `holder` the card code `code`, as if it had drawn it.
async fn take_code(cafe: &Cafe, code: &str, holder: &str) -> Result<u64, StoreError> {
    cafe.store
        .db()
        .execute(
            CARD_INSERT,
            binds![cafe.tenant.to_string(), code, holder, 0_i64],
        )
        .await
}

async fn a_taken_card_code_moves_on_to_the_next_attempt(store: Store) {
    let cafe = Cafe::open(store).await;
    let member = enrol(&cafe, "0912345678").await;
    // Every attempt but the last is another member's code.
    for attempt in 0..CARD_CODE_ATTEMPTS_MAX - 1 {
        take_code(
            &cafe,
            &card_code_of(member, attempt),
            &format!("other-{attempt}"),
        )
        .await
        .unwrap();
    }
    let code = cafe.store.card_code(cafe.tenant, member).await.unwrap();
    assert_eq!(code, card_code_of(member, CARD_CODE_ATTEMPTS_MAX - 1));
    // Stored: asked again, the same code, and the till finds the member by it.
    assert_eq!(
        cafe.store.card_code(cafe.tenant, member).await.unwrap(),
        code
    );
    assert_eq!(
        cafe.store.member_by_card(cafe.tenant, &code).await.unwrap(),
        Some(member)
    );

    // A second card for the member and a code another member holds are told apart.
    let error = take_code(&cafe, "ZZZZZZZZ", &member.to_string())
        .await
        .unwrap_err();
    assert_eq!(error.violated(), Some(Unique::MemberCard), "{error}");
    let error = take_code(&cafe, &code, "someone-else").await.unwrap_err();
    assert_eq!(error.violated(), Some(Unique::MemberCardCode), "{error}");
}

async fn every_attempt_taken_is_a_conflict(store: Store) {
    let cafe = Cafe::open(store).await;
    let member = enrol(&cafe, "0912345678").await;
    for attempt in 0..CARD_CODE_ATTEMPTS_MAX {
        take_code(
            &cafe,
            &card_code_of(member, attempt),
            &format!("other-{attempt}"),
        )
        .await
        .unwrap();
    }
    let error = cafe.store.card_code(cafe.tenant, member).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict { .. }), "{error:?}");
    assert_eq!(
        cafe.store
            .member_by_card(cafe.tenant, &card_code_of(member, 0))
            .await
            .unwrap(),
        None,
        "the code is another member's (one that is not enrolled)"
    );
}

async fn a_card_made_by_another_request_is_the_card(store: Store) {
    let cafe = Cafe::open(store).await;
    let member = enrol(&cafe, "0912345678").await;
    // Requests at once all find no card and insert attempt 0's code: one stores it, and the
    // others, refused by the unique constraints, answer with its card.
    let codes =
        futures_util::future::join_all((0..8).map(|_| cafe.store.card_code(cafe.tenant, member)))
            .await;
    let first = codes[0].as_ref().unwrap().clone();
    for code in &codes {
        assert_eq!(code.as_ref().unwrap(), &first);
    }
}

async fn the_link_secret_is_made_once(store: Store) {
    let cafe = Cafe::open(store).await;
    let member = enrol(&cafe, "0912345678").await;
    let links = futures_util::future::join_all(
        (0..8).map(|_| cafe.store.member_link(cafe.tenant, member, day(0))),
    )
    .await;
    let first = links[0].as_ref().unwrap().clone();
    for link in &links {
        assert_eq!(
            link.as_ref().unwrap(),
            &first,
            "one secret, so one signature"
        );
    }
    assert_eq!(
        cafe.store
            .verify_member_link(
                cafe.tenant,
                &member.to_string(),
                first.expires,
                &first.signature,
                day(0),
            )
            .await
            .unwrap(),
        Some(member)
    );
    let error = cafe
        .store
        .db()
        .execute(
            "INSERT INTO member_link_secrets (tenant_id, secret, created_at) VALUES ($1, $2, $3)",
            binds![cafe.tenant.to_string(), "another", 0_i64],
        )
        .await
        .unwrap_err();
    assert_eq!(error.violated(), Some(Unique::MemberLinkSecret), "{error}");
}

on_both_backends! {
    a_taken_card_code_moves_on_to_the_next_attempt;
    every_attempt_taken_is_a_conflict;
    a_card_made_by_another_request_is_the_card;
    the_link_secret_is_made_once;
}
