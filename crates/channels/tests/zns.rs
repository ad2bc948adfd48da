//! The ZNS adapter against the local fake: sending, error codes, and the token rules.

use std::collections::BTreeMap;
use std::sync::Arc;

use patron_channels::fake::{FakeFailure, FakeProvider, FakeProviders};
use patron_channels::zns::{MemoryTokenStore, ZnsChannel, ZnsTokens};
use patron_channels::{Body, Channel, ChannelKind, FailureReason, Outgoing, Sent};
use tokio::task::JoinSet;

fn template(to: &str, tracking_id: &str) -> Outgoing {
    let data = BTreeMap::from([
        ("customer_name".to_owned(), "Lan".to_owned()),
        ("points".to_owned(), "120".to_owned()),
    ]);
    Outgoing {
        to: to.to_owned(),
        tracking_id: tracking_id.to_owned(),
        body: Body::Template {
            template_id: "248079".to_owned(),
            data,
        },
        advertising: false,
    }
}

fn channel(fake: &FakeProviders, tokens: ZnsTokens) -> (Arc<ZnsChannel>, Arc<MemoryTokenStore>) {
    let store = Arc::new(MemoryTokenStore::new(tokens));
    let channel = Arc::new(ZnsChannel::new(fake.zns_config(), store.clone()));
    (channel, store)
}

fn lasting() -> chrono::Duration {
    chrono::Duration::hours(25)
}

async fn send_concurrently(channel: &Arc<ZnsChannel>, count: usize) -> Vec<Sent> {
    let mut sends = JoinSet::new();
    for number in 0..count {
        let channel = channel.clone();
        sends.spawn(async move {
            let message = template("+84901234567", &format!("t-{number}"));
            channel.send(&message).await
        });
    }
    let mut sent = Vec::new();
    while let Some(outcome) = sends.join_next().await {
        sent.push(
            outcome
                .expect("the send task ends")
                .expect("the send succeeds"),
        );
    }
    sent
}

#[tokio::test]
async fn a_template_message_goes_with_the_token_header_and_phone_digits() {
    let fake = FakeProviders::start().await;
    let tokens = fake.zns_issue_tokens(lasting());
    let (channel, _) = channel(&fake, tokens.clone());
    assert_eq!(channel.kind(), ChannelKind::Zns);

    let sent = channel
        .send(&template("+84901234567", "campaign-9-member-3"))
        .await
        .unwrap();

    let received = fake.received_by(FakeProvider::Zns);
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(request.credential, tokens.access_token);
    assert_eq!(request.recipient, "84901234567");
    assert_eq!(request.template_id.as_deref(), Some("248079"));
    assert_eq!(request.tracking_id.as_deref(), Some("campaign-9-member-3"));
    assert_eq!(request.body["template_data"]["customer_name"], "Lan");
    assert_eq!(Some(sent.provider_id.clone()), request.provider_id);
    assert!(sent.provider_id.starts_with("zns-msg-"));
    assert_eq!(sent.parts, 1);
    assert_eq!(sent.cost_vnd, None);
    assert!(fake.zns_refresh_requests().is_empty());
}

#[tokio::test]
async fn zns_error_codes_become_their_reasons() {
    let fake = FakeProviders::start().await;
    let (channel, _) = channel(&fake, fake.zns_issue_tokens(lasting()));
    let cases = [
        ("-108", FailureReason::InvalidRecipient, false),
        ("-118", FailureReason::InvalidRecipient, false),
        ("-114", FailureReason::RecipientRefused, false),
        ("-141", FailureReason::RecipientRefused, false),
        ("-131", FailureReason::TemplateInvalid, false),
        ("-144", FailureReason::QuotaExceeded, true),
        ("-101", FailureReason::Unauthorized, false),
        ("-100", FailureReason::Other, true),
        ("-4242", FailureReason::Other, false),
    ];
    for (code, reason, retryable) in cases {
        fake.fail_next(FakeProvider::Zns, 1, FakeFailure::Code(code.to_owned()));
        let failure = channel
            .send(&template("+84901234567", "t"))
            .await
            .unwrap_err();
        assert_eq!(failure.reason, reason, "code {code}");
        assert_eq!(failure.retryable, retryable, "code {code}");
        assert_eq!(failure.provider_code, code);
    }
    // The fake's own checks give the same codes as Zalo.
    let no_data = Outgoing {
        body: Body::Template {
            template_id: "248079".to_owned(),
            data: BTreeMap::new(),
        },
        ..template("+84901234567", "t")
    };
    let failure = channel.send(&no_data).await.unwrap_err();
    assert_eq!(failure.reason, FailureReason::TemplateInvalid);
    assert_eq!(failure.provider_code, "-111");
    assert_eq!(fake.received().len(), cases.len() + 1);
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retryable() {
    let fake = FakeProviders::start().await;
    let (channel, _) = channel(&fake, fake.zns_issue_tokens(lasting()));
    let rate_limited = FakeFailure::Http {
        status: 429,
        retry_after: Some("17".to_owned()),
    };
    fake.fail_next(FakeProvider::Zns, 1, rate_limited);
    let failure = channel
        .send(&template("+84901234567", "t"))
        .await
        .unwrap_err();
    assert_eq!(
        failure.reason,
        FailureReason::RateLimited {
            retry_after_seconds: Some(17)
        }
    );
    assert!(failure.retryable);

    let unavailable = FakeFailure::Http {
        status: 503,
        retry_after: None,
    };
    fake.fail_next(FakeProvider::Zns, 1, unavailable);
    let failure = channel
        .send(&template("+84901234567", "t"))
        .await
        .unwrap_err();
    assert_eq!(failure.reason, FailureReason::ProviderUnavailable);
    assert_eq!(failure.provider_code, "503");
    assert!(failure.retryable);
    // Neither was resent by the adapter.
    assert_eq!(fake.received().len(), 2);
}

#[tokio::test]
async fn an_unreachable_provider_is_unavailable_and_retryable() {
    let fake = FakeProviders::start().await;
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut config = fake.zns_config();
    config.api_base_url = closed_url;
    let store = Arc::new(MemoryTokenStore::new(fake.zns_issue_tokens(lasting())));
    let channel = ZnsChannel::new(config, store);

    let failure = channel
        .send(&template("+84901234567", "t"))
        .await
        .unwrap_err();
    assert_eq!(failure.reason, FailureReason::ProviderUnavailable);
    assert!(failure.retryable);
}

#[tokio::test]
async fn messages_zns_cannot_take_are_refused_without_a_request() {
    let fake = FakeProviders::start().await;
    let (channel, _) = channel(&fake, fake.zns_issue_tokens(lasting()));

    let text = Outgoing {
        body: Body::Text("hello".to_owned()),
        ..template("+84901234567", "t")
    };
    let failure = channel.send(&text).await.unwrap_err();
    assert_eq!(failure.reason, FailureReason::Other);
    assert!(!failure.retryable);

    let long_tracking_id = "x".repeat(49);
    let failure = channel
        .send(&template("+84901234567", &long_tracking_id))
        .await
        .unwrap_err();
    assert!(failure.detail.contains("48"), "{}", failure.detail);
    assert!(channel
        .send(&template("+84901234567", &"x".repeat(48)))
        .await
        .is_ok());

    let failure = channel
        .send(&template("0901234567", "t"))
        .await
        .unwrap_err();
    assert_eq!(failure.reason, FailureReason::InvalidRecipient);
    assert_eq!(fake.received().len(), 1);
}

#[tokio::test]
async fn tokens_about_to_expire_are_refreshed_once_for_ten_concurrent_sends() {
    let fake = FakeProviders::start().await;
    let first = fake.zns_issue_tokens(chrono::Duration::minutes(2));
    let (channel, store) = channel(&fake, first.clone());

    let sent = send_concurrently(&channel, 10).await;

    assert_eq!(sent.len(), 10);
    assert_eq!(
        fake.zns_refresh_requests(),
        vec![first.refresh_token.clone()]
    );
    assert_eq!(fake.zns_refresh_reuses(), 0);
    assert_eq!(store.saves(), 1);
    let renewed = store.current();
    assert_ne!(renewed.access_token, first.access_token);
    assert_ne!(renewed.refresh_token, first.refresh_token);
    assert!(renewed.expires_at > chrono::Utc::now() + chrono::Duration::hours(24));
    let received = fake.received_by(FakeProvider::Zns);
    assert_eq!(received.len(), 10);
    assert!(received
        .iter()
        .all(|request| request.credential == renewed.access_token));
}

#[tokio::test]
async fn an_expired_token_is_refreshed_once_and_each_send_retried_once() {
    let fake = FakeProviders::start().await;
    let first = fake.zns_issue_tokens(lasting());
    let (channel, store) = channel(&fake, first.clone());
    fake.zns_expire_access_tokens();

    let sent = send_concurrently(&channel, 10).await;

    assert_eq!(sent.len(), 10);
    assert_eq!(
        fake.zns_refresh_requests(),
        vec![first.refresh_token.clone()]
    );
    assert_eq!(fake.zns_refresh_reuses(), 0);
    let renewed = store.current();
    let received = fake.received_by(FakeProvider::Zns);
    let with_old = received
        .iter()
        .filter(|request| request.credential == first.access_token);
    let with_new = received
        .iter()
        .filter(|request| request.credential == renewed.access_token);
    assert_eq!(with_old.count(), 10);
    assert_eq!(with_new.count(), 10);
}

#[tokio::test]
async fn a_token_refused_again_after_refresh_is_not_retried_a_second_time() {
    let fake = FakeProviders::start().await;
    let (channel, store) = channel(&fake, fake.zns_issue_tokens(lasting()));
    fake.fail_next(FakeProvider::Zns, 2, FakeFailure::Code("-124".to_owned()));

    let failure = channel
        .send(&template("+84901234567", "t"))
        .await
        .unwrap_err();

    assert_eq!(failure.reason, FailureReason::Unauthorized);
    assert_eq!(failure.provider_code, "-124");
    assert!(!failure.retryable);
    assert_eq!(fake.received().len(), 2);
    assert_eq!(fake.zns_refresh_requests().len(), 1);
    assert_eq!(store.saves(), 1);
}

#[tokio::test]
async fn the_refreshed_pair_is_persisted_and_the_spent_one_never_presented_again() {
    let fake = FakeProviders::start().await;
    let first = fake.zns_issue_tokens(chrono::Duration::minutes(1));
    let (channel, store) = channel(&fake, first.clone());
    channel
        .send(&template("+84901234567", "t-1"))
        .await
        .unwrap();
    assert_eq!(store.saves(), 1);

    // A new channel over the same store (a restart) uses the saved pair without refreshing.
    let restarted = ZnsChannel::new(fake.zns_config(), store.clone());
    restarted
        .send(&template("+84901234567", "t-2"))
        .await
        .unwrap();
    assert_eq!(fake.zns_refresh_requests().len(), 1);
    assert_eq!(
        fake.received().last().unwrap().credential,
        store.current().access_token
    );

    // A caller that kept a stale copy of the old pair presents a spent refresh token: the
    // fake refuses it as Zalo does, and the send fails as unauthorized.
    let (stale, _) = channel_with_stale_copy(&fake, first);
    let failure = stale
        .send(&template("+84901234567", "t-3"))
        .await
        .unwrap_err();
    assert_eq!(failure.reason, FailureReason::Unauthorized);
    assert!(failure.detail.contains("refresh"), "{}", failure.detail);
    assert_eq!(fake.zns_refresh_reuses(), 1);
}

fn channel_with_stale_copy(
    fake: &FakeProviders,
    stale: ZnsTokens,
) -> (ZnsChannel, Arc<MemoryTokenStore>) {
    let store = Arc::new(MemoryTokenStore::new(stale));
    (ZnsChannel::new(fake.zns_config(), store.clone()), store)
}
