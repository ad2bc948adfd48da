//! `webhooks_allow_private_targets` through the real binary: off by default, so `patron serve`
//! refuses a webhook on 127.0.0.1; turned on by `PATRON_WEBHOOKS_ALLOW_PRIVATE_TARGETS`, the
//! same URL is accepted and delivered to; `patron config check` shows it either way.

use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn patron() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_patron"));
    command
        .env_remove("PATRON_WEBHOOKS_ALLOW_PRIVATE_TARGETS")
        .env_remove("PATRON_DATABASE")
        .current_dir(std::env::temp_dir());
    command
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn temp(name: &str) -> String {
    std::env::temp_dir()
        .join(format!("patron-targets-{}-{name}", uuid::Uuid::now_v7()))
        .display()
        .to_string()
}

/// A running `patron serve`, killed when dropped.
struct Server {
    child: Child,
    address: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn serve(database: &str, allow_private: Option<&str>) -> Server {
    let port = free_port();
    let mut command = patron();
    command
        .args([
            "serve",
            "--database",
            database,
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--jobs-interval-seconds",
            "0",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(value) = allow_private {
        command.env("PATRON_WEBHOOKS_ALLOW_PRIVATE_TARGETS", value);
    }
    let server = Server {
        child: command.spawn().expect("start patron serve"),
        address: format!("http://127.0.0.1:{port}"),
    };
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        if let Ok(response) = reqwest::get(format!("{}/healthz", server.address)).await {
            if response.status().is_success() {
                return server;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("patron serve did not become healthy");
}

async fn post(server: &Server, key: &str, path: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}{path}", server.address))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A receiver on 127.0.0.1 keeping the head of each request it gets; it answers 200 and closes.
async fn receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let heads = Arc::new(Mutex::new(Vec::new()));
    let kept = heads.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = Vec::new();
            let mut buffer = [0u8; 4096];
            while !request.windows(4).any(|window| window == b"\r\n\r\n") {
                match socket.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(read) => request.extend_from_slice(&buffer[..read]),
                }
            }
            kept.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&request).to_lowercase());
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .await;
        }
    });
    (url, heads)
}

fn config_check(allow_private: Option<&str>) -> String {
    let mut command = patron();
    command.args(["config", "check", "--database", &temp("check.db")]);
    if let Some(value) = allow_private {
        command.env("PATRON_WEBHOOKS_ALLOW_PRIVATE_TARGETS", value);
    }
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_webhook_targets_need_the_setting() {
    assert!(config_check(None).contains("webhooks_allow_private_targets = false"));
    assert!(config_check(Some("true")).contains("webhooks_allow_private_targets = true"));

    let database = temp("targets.db");
    let output = patron()
        .args(["tenant", "--database", &database, "--name", "Cà phê"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let key = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix("API key "))
        .expect("the key is printed")
        .trim()
        .to_owned();
    let (url, topics) = receiver().await;
    let subscription = json!({"url": url, "topics": ["points.earned"]});

    let server = serve(&database, None).await;
    let (status, error) = post(&server, &key, "/v1/webhooks", subscription.clone()).await;
    assert_eq!(status, 422, "{error}");
    assert_eq!(error["field"], "url");
    drop(server);

    let server = serve(&database, Some("true")).await;
    let (status, body) = post(&server, &key, "/v1/webhooks", subscription).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = post(
        &server,
        &key,
        "/v1/programme/versions",
        json!({"effective_from": "2020-01-01T00:00:00+07:00", "definition": {
            "amount_per_point": 10000, "point_value": 1000, "return_window_days": 0,
            "expiry": {"kind": "days", "days": 365}, "rules": [],
            "tiers": [{"code": "member", "name": "Member", "threshold": 0}],
            "qualification": {"metric": "spend", "window": "rolling_12_months", "grace_days": 30}}}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = post(
        &server,
        &key,
        "/v1/stores",
        json!({"code": "HN01", "name": "Hà Nội 1"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = post(
        &server,
        &key,
        "/v1/events",
        json!({"id": "HD-1", "type": "purchase", "occurred_at": "2026-01-10T09:00:00+07:00",
               "member": {"phone": "0912 345 678"}, "store": "HN01", "amount": 100000}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let started = Instant::now();
    while topics.lock().unwrap().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the dispatcher sent nothing to the allowed local receiver"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let head = topics.lock().unwrap()[0].clone();
    assert!(head.contains("patron-topic: points.earned"), "{head}");
}
