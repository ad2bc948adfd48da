//! `/readyz` tells a load balancer the truth about the journal's writer: while it takes events
//! the node is ready; once it has stopped (or died), the node says so even though the process
//! still answers `/healthz`. Events sent meanwhile get 503, never a wrong answer.

mod common;

use common::*;
use patron_store::admin::KeyScope;
use patron_store::{Journal, JournalConfig};

async fn readiness_follows_the_writer(postgres: bool) {
    let store = fresh_store(postgres).await;
    let (_, key) = tenant_with_key(&store, "Cà phê", KeyScope::Admin).await;
    let (journal, writer) = Journal::start(store.clone(), JournalConfig::default());
    let application = patron_server::Application::build_with(
        store,
        journal.clone(),
        "127.0.0.1:0".parse().unwrap(),
        patron_server::ServerOptions::default(),
    )
    .await
    .unwrap();
    let address = format!("http://{}", application.local_addr());
    tokio::spawn(application.run(std::future::pending()));
    let client = Client::new(&address, Auth::None);

    let (status, _) = client.get("/readyz").await;
    assert_eq!(status, 200, "a running writer is ready");

    journal.stop().await;
    writer.await.unwrap();

    let (status, body) = client.get("/readyz").await;
    assert_eq!(status, 503, "a stopped writer is not ready: {body}");
    let (status, _) = client.get("/healthz").await;
    assert_eq!(status, 200, "the process itself is still up");
    let (status, body) = client
        .with(Auth::Key(key))
        .post("/v1/events", purchase("R-1", "0912000001", 100_000))
        .await;
    assert_eq!(status, 503, "an event without a writer is refused: {body}");
}

on_both_backends! {
    readiness_follows_the_writer;
}
