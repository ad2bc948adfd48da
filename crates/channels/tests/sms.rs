//! The eSMS.vn and SpeedSMS adapters against the local fake.

use patron_channels::esms::{EsmsChannel, ADVERTISING_PATH, CARE_PATH};
use patron_channels::fake::{
    FakeFailure, FakeProvider, FakeProviders, SPEEDSMS_PRICE_VND_PER_PART,
};
use patron_channels::speedsms::SpeedSmsChannel;
use patron_channels::{sms, Body, Channel, ChannelKind, FailureReason, Outgoing};

/// 100 characters of Vietnamese with its marks: UCS-2, two segments.
const ACCENTED: &str = "Cảm ơn quý khách đã mua hàng. Quý khách được cộng 120 điểm, hạn dùng đến hết tháng mười hai nhé ạ!!!";

fn text(to: &str, tracking_id: &str, body: &str) -> Outgoing {
    Outgoing {
        to: to.to_owned(),
        tracking_id: tracking_id.to_owned(),
        body: Body::Text(body.to_owned()),
        advertising: false,
    }
}

#[tokio::test]
async fn esms_care_messages_go_to_the_v4_endpoint() {
    let fake = FakeProviders::start().await;
    let channel = EsmsChannel::new(fake.esms_config());
    assert_eq!(channel.kind(), ChannelKind::Sms);

    let sent = channel
        .send(&text("+84901234567", "c-1-m-2", "Ma OTP cua ban la 123456"))
        .await
        .unwrap();

    let received = fake.received_by(FakeProvider::Esms);
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(request.path, CARE_PATH);
    assert_eq!(request.recipient, "84901234567");
    assert_eq!(request.tracking_id.as_deref(), Some("c-1-m-2"));
    assert_eq!(request.credential, "fake-api-key");
    assert_eq!(request.body["SmsType"], "2");
    assert_eq!(request.body["IsUnicode"], "0");
    assert_eq!(request.body["Brandname"], "PATRON");
    assert_eq!(request.body["SecretKey"], "fake-secret-key");
    assert_eq!(request.body["Sandbox"], "0");
    assert_eq!(request.text.as_deref(), Some("Ma OTP cua ban la 123456"));
    assert_eq!(Some(sent.provider_id.clone()), request.provider_id);
    assert_eq!(sent.parts, 1);
}

#[tokio::test]
async fn accented_vietnamese_is_sent_as_unicode_in_ucs2_parts_and_unaccented_as_gsm7() {
    assert_eq!(ACCENTED.chars().count(), 100);
    let fake = FakeProviders::start().await;
    let channel = EsmsChannel::new(fake.esms_config());

    let accented = channel
        .send(&text("+84901234567", "a", ACCENTED))
        .await
        .unwrap();
    let plain = sms::unaccented(ACCENTED);
    let unaccented = channel
        .send(&text("+84901234567", "b", &plain))
        .await
        .unwrap();

    assert_eq!(accented.parts, 2);
    assert_eq!(unaccented.parts, 1);
    let received = fake.received();
    assert_eq!(received[0].body["IsUnicode"], "1");
    assert_eq!(received[1].body["IsUnicode"], "0");
    assert!(
        plain.starts_with("Cam on quy khach da mua hang."),
        "{plain}"
    );
}

#[tokio::test]
async fn esms_advertising_goes_to_the_ads_endpoint_labelled() {
    let fake = FakeProviders::start().await;
    let channel = EsmsChannel::new(fake.esms_config());
    let advert = Outgoing {
        advertising: true,
        ..text("+84901234567", "ad-1", "Giam 20% cuoi tuan")
    };

    channel.send(&advert).await.unwrap();

    let request = &fake.received()[0];
    assert_eq!(request.path, ADVERTISING_PATH);
    assert_eq!(request.body["SmsType"], "1");
    assert_eq!(request.body["Phones"][0], "84901234567");
    assert_eq!(request.text.as_deref(), Some("[QC] Giam 20% cuoi tuan"));
}

#[tokio::test]
async fn a_repeated_request_id_without_an_smsid_is_a_final_duplicate() {
    let fake = FakeProviders::start().await;
    let channel = EsmsChannel::new(fake.esms_config());
    let message = text("+84901234567", "same-id", "Xin chao");

    let first = channel.send(&message).await.unwrap();
    let again = channel.send(&message).await.unwrap_err();

    assert_eq!(again.reason, FailureReason::Duplicate);
    assert_eq!(again.provider_code, "124");
    assert!(!again.retryable);
    let accepted: Vec<_> = fake
        .received()
        .into_iter()
        .filter_map(|r| r.provider_id)
        .collect();
    assert_eq!(accepted, vec![first.provider_id]);
}

#[tokio::test]
async fn a_repeated_request_id_with_the_first_smsid_counts_as_sent() {
    let fake = FakeProviders::start().await;
    fake.esms_duplicate_echoes_sms_id(true);
    let channel = EsmsChannel::new(fake.esms_config());
    let message = text("+84901234567", "same-id", "Xin chao");

    let first = channel.send(&message).await.unwrap();
    let again = channel.send(&message).await.unwrap();

    assert_eq!(again.provider_id, first.provider_id);
    assert_eq!(fake.received().len(), 2);
}

#[tokio::test]
async fn esms_failures_are_mapped_and_only_transient_ones_retryable() {
    let fake = FakeProviders::start().await;
    let channel = EsmsChannel::new(fake.esms_config());
    let cases = [
        ("99", FailureReason::RecipientRefused),
        ("101", FailureReason::Unauthorized),
        ("103", FailureReason::QuotaExceeded),
        ("104", FailureReason::Unauthorized),
        ("108", FailureReason::InvalidRecipient),
        ("140", FailureReason::Unauthorized),
        ("146", FailureReason::TemplateInvalid),
        ("177", FailureReason::Other),
        ("987", FailureReason::Other),
    ];
    for (number, (code, reason)) in cases.iter().enumerate() {
        fake.fail_next(FakeProvider::Esms, 1, FakeFailure::Code((*code).to_owned()));
        let message = text("+84901234567", &format!("f-{number}"), "x");
        let failure = channel.send(&message).await.unwrap_err();
        assert_eq!(failure.reason, *reason, "code {code}");
        assert!(!failure.retryable, "code {code}");
    }
    fake.fail_next(
        FakeProvider::Esms,
        1,
        FakeFailure::Http {
            status: 502,
            retry_after: None,
        },
    );
    let failure = channel
        .send(&text("+84901234567", "g", "x"))
        .await
        .unwrap_err();
    assert_eq!(failure.reason, FailureReason::ProviderUnavailable);
    assert!(failure.retryable);

    // A phone too short to be one is refused before anything is sent.
    let sent_before = fake.received_by(FakeProvider::Esms).len();
    let failure = channel.send(&text("+8490123", "h", "x")).await.unwrap_err();
    assert_eq!(failure.reason, FailureReason::InvalidRecipient);
    assert!(!failure.retryable);
    assert_eq!(fake.received_by(FakeProvider::Esms).len(), sent_before);

    // eSMS's own "invalid phone" (108) means the same.
    fake.fail_next(FakeProvider::Esms, 1, FakeFailure::Code("108".into()));
    let failure = channel
        .send(&text("+84901234567", "i", "x"))
        .await
        .unwrap_err();
    assert_eq!(failure.reason, FailureReason::InvalidRecipient);
    assert_eq!(failure.provider_code, "108");
}

#[tokio::test]
async fn esms_refuses_a_request_id_longer_than_50_before_sending() {
    let fake = FakeProviders::start().await;
    let channel = EsmsChannel::new(fake.esms_config());
    let failure = channel
        .send(&text("+84901234567", &"r".repeat(51), "x"))
        .await
        .unwrap_err();
    assert!(!failure.retryable);
    assert!(fake.received().is_empty());
    assert!(channel
        .send(&text("+84901234567", &"r".repeat(50), "x"))
        .await
        .is_ok());
}

#[tokio::test]
async fn speedsms_sends_with_basic_auth_and_reports_the_price() {
    let fake = FakeProviders::start().await;
    let channel = SpeedSmsChannel::new(fake.speedsms_config());

    let short = channel
        .send(&text("+84901234567", "s-1", "Ma OTP: 123456"))
        .await
        .unwrap();
    let long = channel
        .send(&text("+84901234567", "s-2", ACCENTED))
        .await
        .unwrap();

    let received = fake.received_by(FakeProvider::SpeedSms);
    assert_eq!(received[0].credential, "fake-speedsms-token");
    assert_eq!(received[0].body["to"][0], "84901234567");
    assert_eq!(received[0].body["sms_type"], 3);
    assert_eq!(received[0].body["sender"], "PATRON");
    assert_eq!(Some(short.provider_id.clone()), received[0].provider_id);
    assert_eq!(short.parts, 1);
    assert_eq!(short.cost_vnd, Some(SPEEDSMS_PRICE_VND_PER_PART));
    assert_eq!(long.parts, 2);
    assert_eq!(long.cost_vnd, Some(2 * SPEEDSMS_PRICE_VND_PER_PART));
}

#[tokio::test]
async fn speedsms_advertising_is_labelled() {
    let fake = FakeProviders::start().await;
    let channel = SpeedSmsChannel::new(fake.speedsms_config());
    let advert = Outgoing {
        advertising: true,
        ..text("+84901234567", "ad", "[QC] Giam 20%")
    };
    channel.send(&advert).await.unwrap();
    assert_eq!(fake.received()[0].text.as_deref(), Some("[QC] Giam 20%"));
}

#[tokio::test]
async fn speedsms_failures_are_mapped() {
    let fake = FakeProviders::start().await;
    let channel = SpeedSmsChannel::new(fake.speedsms_config());
    let cases = [
        ("105", FailureReason::InvalidRecipient),
        ("110", FailureReason::ContentRefused),
        ("113", FailureReason::Unauthorized),
        ("300", FailureReason::QuotaExceeded),
    ];
    for (code, reason) in cases {
        fake.fail_next(
            FakeProvider::SpeedSms,
            1,
            FakeFailure::Code(code.to_owned()),
        );
        let failure = channel
            .send(&text("+84901234567", "t", "x"))
            .await
            .unwrap_err();
        assert_eq!(failure.reason, reason, "code {code}");
        assert_eq!(failure.provider_code, code);
        assert!(!failure.retryable);
    }
    let too_fast = FakeFailure::Http {
        status: 429,
        retry_after: Some("30".to_owned()),
    };
    fake.fail_next(FakeProvider::SpeedSms, 1, too_fast);
    let failure = channel
        .send(&text("+84901234567", "t", "x"))
        .await
        .unwrap_err();
    assert_eq!(failure.reason.as_str(), "rate_limited");
    assert_eq!(
        failure.reason,
        FailureReason::RateLimited {
            retry_after_seconds: Some(30)
        }
    );
    assert!(failure.retryable);

    let failure = channel.send(&text("+8490123", "t", "x")).await.unwrap_err();
    assert_eq!(failure.reason, FailureReason::InvalidRecipient);
}

#[tokio::test]
async fn speedsms_with_a_wrong_token_is_unauthorized() {
    let fake = FakeProviders::start().await;
    let mut config = fake.speedsms_config();
    config.access_token = String::new();
    let channel = SpeedSmsChannel::new(config);

    let failure = channel
        .send(&text("+84901234567", "t", "x"))
        .await
        .unwrap_err();

    assert_eq!(failure.reason, FailureReason::Unauthorized);
    assert_eq!(failure.provider_code, "401");
    assert!(!failure.retryable);
}
