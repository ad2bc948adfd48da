//! The crash test: start the real binary, stream purchases from several clients, `kill -9` it
//! mid-stream, restart it on the same database. Every acknowledged event must be there exactly
//! once with its first answer, no event may be half-written, and the ledger must be sound.
//! And the gentle stop: SIGTERM mid-stream answers what is in flight, flushes the journal and
//! exits 0.

use patron_store::{DatabaseConfig, Store};
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn patron() -> Command {
    Command::new(env!("CARGO_BIN_EXE_patron"))
}

async fn start(database: &str) -> (Child, String) {
    start_logging(database, Stdio::null()).await
}

async fn start_logging(database: &str, log: Stdio) -> (Child, String) {
    let port = free_port();
    let mut child = patron()
        .args([
            "serve",
            "--database",
            database,
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--jobs-interval-seconds",
            "0",
            "--rate-limit-per-second",
            "0",
        ])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start patron serve");
    let address = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        if let Ok(response) = reqwest::get(format!("{address}/healthz")).await {
            if response.status().is_success() {
                return (child, address);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    panic!("patron serve did not become healthy");
}

fn provision(database: &str) -> String {
    let output = patron()
        .args(["tenant", "--database", database, "--name", "Crash Café"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("API key "))
        .expect("the key is printed")
        .trim()
        .to_owned()
}

async fn post(
    client: &reqwest::Client,
    address: &str,
    key: &str,
    path: &str,
    body: &Value,
) -> Option<(u16, Value)> {
    let response = client
        .post(format!("{address}{path}"))
        .bearer_auth(key)
        .json(body)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    let text = response.text().await.ok()?;
    Some((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

type Acknowledged = Arc<Mutex<Vec<(Value, Value)>>>;

/// Publishes a programme and a store, then streams purchases from 6 clients until the server
/// stops answering; every acknowledged (body, answer) is kept.
async fn stream(
    client: &reqwest::Client,
    address: &str,
    key: &str,
) -> (Acknowledged, Vec<tokio::task::JoinHandle<()>>) {
    let programme = json!({"definition": {
        "amount_per_point": 10000, "point_value": 1000, "return_window_days": 0,
        "tiers": [{"code": "member", "name": "Member", "threshold": 0},
                  {"code": "gold", "name": "Gold", "threshold": 3000000, "multiplier_percent": 150}],
        "qualification": {"metric": "spend", "window": "lifetime", "grace_days": 30}},
        "effective_from": "2020-01-01T00:00:00Z"});
    let published = post(client, address, key, "/v1/programme/versions", &programme).await;
    assert_eq!(published.unwrap().0, 201);
    let store = json!({"code": "S1", "name": "S1"});
    assert_eq!(
        post(client, address, key, "/v1/stores", &store)
            .await
            .unwrap()
            .0,
        201
    );
    let acknowledged: Acknowledged = Arc::default();
    let mut clients = Vec::new();
    for worker in 0..6 {
        let (client, address, key, acknowledged) = (
            client.clone(),
            address.to_owned(),
            key.to_owned(),
            Arc::clone(&acknowledged),
        );
        clients.push(tokio::spawn(async move {
            for number in 0..100_000 {
                let body = json!({"id": format!("C{worker}-{number}"), "type": "purchase",
                    "member": {"phone": format!("0913{:06}", (worker * 7 + number) % 40)},
                    "store": "S1", "amount": 10_000 * (1 + (number % 37))});
                match post(&client, &address, &key, "/v1/events", &body).await {
                    Some((200, answer)) => acknowledged.lock().unwrap().push((body, answer)),
                    Some((status, answer)) => panic!("unexpected {status}: {answer}"),
                    None => return,
                }
            }
        }));
    }
    (acknowledged, clients)
}

async fn crash_and_recover(database: String) {
    let key = provision(&database);
    let (mut server, address) = start(&database).await;
    let client = reqwest::Client::new();
    let (acknowledged, clients) = stream(&client, &address, &key).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill().expect("SIGKILL");
    server.wait().unwrap();
    for client in clients {
        client.await.unwrap();
    }
    let acknowledged = std::mem::take(&mut *acknowledged.lock().unwrap());
    assert!(
        acknowledged.len() > 50,
        "the stream ran before the kill ({} acknowledged)",
        acknowledged.len()
    );

    let (mut server, address) = start(&database).await;
    let store = Store::connect(&DatabaseConfig::new(database.clone()))
        .await
        .unwrap();
    let before = store.check_ledger().await.unwrap();
    assert!(before.is_sound(), "{before:?}");
    assert!(before.events as usize >= acknowledged.len());
    for (body, answer) in &acknowledged {
        let (status, again) = post(&client, &address, &key, "/v1/events", body)
            .await
            .unwrap();
        assert_eq!(status, 200);
        assert_eq!(
            &again, answer,
            "an acknowledged event keeps its first answer"
        );
    }
    let after = store.check_ledger().await.unwrap();
    assert_eq!(
        (after.events, after.transactions),
        (before.events, before.transactions),
        "nothing written twice"
    );
    // No event without its ledger transaction, no transaction without its event.
    let half_written = patron_testkit::scalar(
        &store,
        "SELECT COUNT(*) FROM events e WHERE e.points_earned > 0 AND NOT EXISTS \
         (SELECT 1 FROM ledger_transactions t WHERE t.event_id = e.event_id)",
        vec![],
    )
    .await;
    assert_eq!(half_written, 0);
    let orphans = patron_testkit::scalar(
        &store,
        "SELECT COUNT(*) FROM ledger_transactions t WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.event_id = t.event_id)",
        vec![],
    )
    .await;
    assert_eq!(orphans, 0);
    server.kill().unwrap();
    server.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_acknowledged_event_sqlite() {
    let path = std::env::temp_dir().join(format!("patron-crash-{}.db", uuid::Uuid::now_v7()));
    crash_and_recover(path.display().to_string()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_acknowledged_event_postgres() {
    crash_and_recover(patron_testkit::postgres_database("crash").await).await;
}

/// SIGTERM mid-stream: the server stops taking requests, answers those in flight, flushes the
/// journal, stops the dispatcher and exits 0; every acknowledged event is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_gently() {
    let database = patron_testkit::sqlite_path("sigterm").display().to_string();
    let key = provision(&database);
    let log_path = patron_testkit::sqlite_path("sigterm-log").with_extension("log");
    let log = std::fs::File::create(&log_path).unwrap();
    let (mut server, address) = start_logging(&database, Stdio::from(log)).await;
    let client = reqwest::Client::new();
    let (acknowledged, clients) = stream(&client, &address, &key).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let sent = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = server.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "still running 20 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status:?}");
    for client in clients {
        client.await.unwrap();
    }
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("stopped cleanly"), "{log}");
    let acknowledged = std::mem::take(&mut *acknowledged.lock().unwrap());
    assert!(
        acknowledged.len() > 20,
        "{} acknowledged",
        acknowledged.len()
    );
    let store = Store::connect(&DatabaseConfig::new(database))
        .await
        .unwrap();
    let check = store.check_ledger().await.unwrap();
    assert!(check.is_sound(), "{check:?}");
    assert_eq!(
        check.events as usize,
        acknowledged.len(),
        "every acknowledged event stored, and nothing else"
    );
}
