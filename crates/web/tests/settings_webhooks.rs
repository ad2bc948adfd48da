//! The webhooks settings page on a server that does not allow private webhook targets (the
//! default): local and private URLs are refused with the field named, and the delivery log
//! shows a fixed reason, never the network's error text.

mod common;

use common::{csrf_in, Site};
use patron_store::audit::Actor;
use patron_store::users::Role;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A receiver on 127.0.0.1 that counts what reaches it.
async fn counting_receiver() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let app = axum::Router::new().route(
        "/hooks",
        axum::routing::post(move || {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, hits)
}

async fn private_urls_are_refused_and_the_log_shows_a_fixed_reason(postgres: bool) {
    let site = Site::start_allowing_private_webhooks(postgres, false).await;
    let (local, hits) = counting_receiver().await;
    let owner = site.signed_in(Role::Owner).await;
    let (status, html) = owner.get("/admin/webhooks").await;
    assert_eq!(status, 200);
    let csrf = csrf_in(&html);
    for url in [
        local.as_str(),
        "http://localhost:8080/hooks",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hooks",
    ] {
        let (status, html) = owner
            .post_form(
                "/admin/webhooks",
                &[("csrf", &csrf), ("url", url), ("topics", "points.earned")],
            )
            .await;
        assert_eq!(status, 422, "{url}: {html}");
        assert!(html.contains("id=\"webhook-url-error\""), "{html}");
        assert!(html.contains("Nhập một địa chỉ công khai"), "{html}");
    }
    let (status, html) = owner
        .post_form(
            "/admin/webhooks",
            &[
                ("csrf", &csrf),
                ("url", "https://93.184.215.14/hooks"),
                ("topics", "points.earned"),
            ],
        )
        .await;
    assert_eq!(status, 200, "a public address is fine: {html}");

    // A local subscription stored before the setting was turned off is not sent to.
    let (subscription, _) = site
        .store
        .create_webhook(
            site.tenant,
            &Actor::cli(),
            &local,
            &["points.earned".to_owned()],
        )
        .await
        .unwrap();
    let dispatcher = patron_server::Dispatcher::start(
        site.store.clone(),
        patron_server::DispatcherConfig {
            base_delay: Duration::from_secs(3600),
            poll_interval: Duration::from_millis(20),
            ..patron_server::DispatcherConfig::default()
        },
    );
    let (status, body) = site
        .api(
            "POST",
            "/v1/events",
            Some(
                json!({"id": "HD-1", "type": "purchase", "member": {"phone": "0912345678"},
                        "store": "HN01", "amount": 100000}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut tried = false;
    for _ in 0..400 {
        let deliveries = site
            .store
            .webhook_deliveries(site.tenant, &subscription.id, 10)
            .await
            .unwrap();
        if deliveries.first().is_some_and(|d| d.attempts == 1) {
            tried = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    dispatcher.stop().await;
    assert!(tried, "the delivery was attempted");
    assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing reached 127.0.0.1");
    let (status, html) = owner
        .get(&format!("/admin/webhooks/{}", subscription.id))
        .await;
    assert_eq!(status, 200);
    assert!(html.contains("Địa chỉ không được phép"), "{html}");

    // A row written before reasons were fixed holds the transport's text: it is not shown.
    site.store
        .db()
        .execute(
            "UPDATE webhook_deliveries SET last_error = $1 WHERE subscription_id = $2",
            patron_store::binds![
                format!("error sending request for url ({local}): invalid HTTP version parsed"),
                subscription.id.clone()
            ],
        )
        .await
        .unwrap();
    let (_, html) = owner
        .get(&format!("/admin/webhooks/{}", subscription.id))
        .await;
    assert!(!html.contains("invalid HTTP version"), "{html}");
    assert!(html.contains("Không kết nối được"), "{html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_urls_are_refused_and_the_log_shows_a_fixed_reason_on_sqlite() {
    private_urls_are_refused_and_the_log_shows_a_fixed_reason(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_urls_are_refused_and_the_log_shows_a_fixed_reason_on_postgres() {
    private_urls_are_refused_and_the_log_shows_a_fixed_reason(true).await;
}
