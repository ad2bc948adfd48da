//! Staff sign-in in the store: the password picks the account among an e-mail's accounts at
//! several tenants, up to `SIGN_IN_ACCOUNTS_MAX` of them without a tenant named.

mod common;

use patron_core::TenantId;
use patron_store::admin::NewTenant;
use patron_store::audit::Actor;
use patron_store::users::{Role, StaffSignIn, SIGN_IN_ACCOUNTS_MAX};
use patron_store::Store;

async fn tenant_with_lan(store: &Store, index: usize) -> TenantId {
    let tenant = store
        .create_tenant(&NewTenant::vietnamese(format!("Quán {index}")))
        .await
        .unwrap();
    store
        .create_user(
            tenant,
            "lan@cafe.test",
            "Lan",
            Role::Cashier,
            &format!("password number {index}"),
            &Actor::cli(),
        )
        .await
        .unwrap();
    tenant
}

fn signed_in_at(answer: StaffSignIn) -> Option<String> {
    match answer {
        StaffSignIn::SignedIn(user, _) => Some(user.tenant_id),
        _ => None,
    }
}

async fn the_password_picks_among_at_most_the_limit_of_accounts(store: Store) {
    let mut tenants = Vec::new();
    for index in 0..SIGN_IN_ACCOUNTS_MAX {
        tenants.push(tenant_with_lan(&store, index).await);
    }
    // At the limit: the newest account's password still finds it.
    let last = SIGN_IN_ACCOUNTS_MAX - 1;
    let answer = store
        .sign_in_staff(None, "Lan@Cafe.test", &format!("password number {last}"))
        .await
        .unwrap();
    assert_eq!(signed_in_at(answer), Some(tenants[last].to_string()));
    // One past: the account beyond the limit must be named.
    let beyond = tenant_with_lan(&store, SIGN_IN_ACCOUNTS_MAX).await;
    let password = format!("password number {SIGN_IN_ACCOUNTS_MAX}");
    let answer = store
        .sign_in_staff(None, "lan@cafe.test", &password)
        .await
        .unwrap();
    assert!(matches!(answer, StaffSignIn::Refused), "{answer:?}");
    let answer = store
        .sign_in_staff(Some(beyond), "lan@cafe.test", &password)
        .await
        .unwrap();
    assert_eq!(signed_in_at(answer), Some(beyond.to_string()));
    // A tenant named that is not the password's: refused.
    let answer = store
        .sign_in_staff(Some(tenants[0]), "lan@cafe.test", &password)
        .await
        .unwrap();
    assert!(matches!(answer, StaffSignIn::Refused), "{answer:?}");
}

on_both_backends! {
    the_password_picks_among_at_most_the_limit_of_accounts;
}
