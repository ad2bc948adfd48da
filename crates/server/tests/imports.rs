//! Imports and exports over HTTP, on a real server on port 0 over a fresh SQLite file and a
//! fresh PostgreSQL database: a CSV body larger than the router's 1 MiB limit becomes a job that
//! runs in the background; exports stream CSV that adds up.

use patron_core::programme::ProgrammeDefinition;
use patron_core::TenantId;
use patron_store::admin::{KeyScope, NewTenant};
use patron_store::{Journal, JournalConfig, Store};
use serde_json::Value;
use std::time::{Duration, Instant};

use patron_testkit::fresh_store;

fn programme() -> ProgrammeDefinition {
    serde_json::from_value(serde_json::json!({
        "amount_per_point": 10000, "point_value": 1000, "return_window_days": 0,
        "expiry": {"kind": "end_of_month", "months": 12},
        "rules": [{"id": "sign_up", "name": "Welcome", "when": "event.type == 'sign_up'", "points": "50",
                   "once_per": "ever"}],
        "tiers": [{"code": "member", "name": "Member", "threshold": 0},
                  {"code": "gold", "name": "Gold", "threshold": 5000000, "multiplier_percent": 150}],
        "qualification": {"metric": "spend", "window": "rolling_12_months", "grace_days": 30}
    }))
    .unwrap()
}

struct App {
    address: String,
    store: Store,
    client: reqwest::Client,
}

async fn tenant(store: &Store, name: &str) -> (TenantId, String, String) {
    let tenant = store
        .create_tenant(&NewTenant::vietnamese(name))
        .await
        .unwrap();
    store
        .create_store(tenant, "HN01", "Hà Nội 1")
        .await
        .unwrap();
    let from = chrono::DateTime::parse_from_rfc3339("2020-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    store
        .publish_programme(tenant, programme(), from)
        .await
        .unwrap();
    let write = store
        .create_api_key(tenant, "write", KeyScope::Write)
        .await
        .unwrap();
    let read = store
        .create_api_key(tenant, "read", KeyScope::Read)
        .await
        .unwrap();
    (tenant, write, read)
}

async fn serve(store: Store) -> App {
    let (journal, _) = Journal::start(store.clone(), JournalConfig::default());
    let application = patron_server::Application::build_with_limit(
        store.clone(),
        journal,
        "127.0.0.1:0".parse().unwrap(),
        patron_server::RateLimit {
            requests_per_second: 0,
            burst: 0,
        },
    )
    .await
    .unwrap();
    let address = format!("http://{}", application.local_addr());
    tokio::spawn(application.run(std::future::pending()));
    App {
        address,
        store,
        client: reqwest::Client::new(),
    }
}

impl App {
    async fn upload(
        &self,
        key: &str,
        what: &str,
        content_type: &str,
        body: String,
    ) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}/v1/imports/{what}", self.address))
            .bearer_auth(key)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, key: &str, path: &str) -> (u16, String) {
        let response = self
            .client
            .get(format!("{}{path}", self.address))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// Polls a job until it has finished.
    async fn finished(&self, key: &str, id: &str) -> Value {
        let started = Instant::now();
        loop {
            let (status, body) = self.get(key, &format!("/v1/imports/{id}")).await;
            assert_eq!(status, 200, "{body}");
            let job: Value = serde_json::from_str(&body).unwrap();
            if job["status"] == "done" || job["status"] == "failed" {
                return job;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "the job did not finish: {job}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn csv(&self, key: &str, path: &str) -> Vec<csv::StringRecord> {
        let (status, text) = self.get(key, path).await;
        assert_eq!(status, 200, "{text}");
        csv::Reader::from_reader(text.as_bytes())
            .records()
            .map(Result::unwrap)
            .collect()
    }

    async fn count(&self, sql: &str) -> i64 {
        patron_testkit::scalar(&self.store, sql, vec![]).await
    }
}

/// Members enough for a body over the router's 1 MiB limit, with two bad rows.
const MEMBERS: usize = 20_000;

fn members_csv() -> String {
    let mut text = String::from("phone,name,email,birthday,gender,city,tags\n");
    for number in 0..MEMBERS {
        text.push_str(&format!(
            "09{:08},Member {number},m{number}@example.com,,,Hà Nội,api|bulk\n",
            20_000_000 + number
        ));
        if number == 10 {
            text.push_str("0912,Too Short,,,,,\n");
        }
    }
    text.push_str("0920000001,Someone Else,,,,,\n");
    text
}

async fn imports_run_as_jobs_and_exports_add_up(postgres: bool) {
    let store = fresh_store(postgres).await;
    let (tenant_id, key, read_key) = tenant(&store, "Cà phê API").await;
    let (other_id, _, _) = tenant(&store, "Another Café").await;
    let admin_key = store
        .create_api_key(tenant_id, "admin", KeyScope::Admin)
        .await
        .unwrap();
    let other_key = store
        .create_api_key(other_id, "admin", KeyScope::Admin)
        .await
        .unwrap();
    let app = serve(store).await;
    let (status, document) = app.get(&key, "/openapi.json").await;
    assert_eq!(status, 200);
    for path in [
        "/v1/imports/members",
        "/v1/imports/purchases",
        "/v1/imports/{id}",
        "/v1/exports/members.csv",
        "/v1/exports/ledger.csv",
        "/v1/exports/liability.csv",
    ] {
        assert!(document.contains(path), "{path} is documented");
    }
    let body = members_csv();
    assert!(body.len() > patron_server::BODY_BYTES_MAX);

    let (status, refused) = app
        .upload(&key, "members", "application/json", "{}".into())
        .await;
    assert_eq!(status, 415, "{refused}");
    // A small body: the server refuses before reading, and a large one could be cut off mid-send.
    let (status, _) = app
        .upload(
            &read_key,
            "members",
            "text/csv",
            "phone\n0912000000\n".into(),
        )
        .await;
    assert_eq!(status, 403);

    let (status, queued) = app
        .upload(&key, "members", "text/csv; charset=utf-8", body.clone())
        .await;
    assert_eq!(status, 202, "{queued}");
    assert_eq!(queued["status"], "queued");
    let id = queued["id"].as_str().unwrap().to_owned();
    let job = app.finished(&key, &id).await;
    assert_eq!(job["status"], "done", "{job}");
    assert_eq!(job["kind"], "members");
    assert_eq!(job["rows_read"], MEMBERS + 2);
    assert_eq!(job["rows_accepted"], MEMBERS);
    assert_eq!(job["rows_rejected"], 2);
    assert_eq!(job["rows_duplicate"], 0);
    assert_eq!(job["errors"][0]["line"], 13);
    assert!(job["errors"][0]["reason"]
        .as_str()
        .unwrap()
        .starts_with("phone: "));
    assert_eq!(job["errors"][1]["line"], MEMBERS + 3);
    assert!(job["errors"][1]["reason"]
        .as_str()
        .unwrap()
        .starts_with("exists_with_different_body: "));
    assert!(job["finished_at"].is_string());
    let (status, _) = app.get(&other_key, &format!("/v1/imports/{id}")).await;
    assert_eq!(status, 404, "another tenant's job is not found");

    let (_, again) = app.upload(&key, "members", "text/csv", body).await;
    let job = app.finished(&key, again["id"].as_str().unwrap()).await;
    assert_eq!(
        (&job["rows_accepted"], &job["rows_duplicate"]),
        (&Value::from(0), &Value::from(MEMBERS))
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM members").await,
        MEMBERS as i64
    );

    let recent = chrono::Utc::now() - chrono::Duration::days(20);
    let purchases = format!(
        "receipt_id,phone,amount,store,occurred_at\n\
         A1,0920000000,6000000,HN01,{}\n\
         A2,0920000001,120000,HN01,{}\n\
         A3,0920000002,abc,HN01,{}\n\
         A4,0999999999,50000,,{}\n",
        recent.to_rfc3339(),
        recent.to_rfc3339(),
        recent.to_rfc3339(),
        recent.to_rfc3339(),
    );
    let (status, queued) = app.upload(&key, "purchases", "text/csv", purchases).await;
    assert_eq!(status, 202);
    let job = app.finished(&key, queued["id"].as_str().unwrap()).await;
    assert_eq!(
        (
            &job["rows_read"],
            &job["rows_accepted"],
            &job["rows_rejected"]
        ),
        (&Value::from(4), &Value::from(3), &Value::from(1)),
        "{job}"
    );
    assert_eq!(job["errors"][0]["line"], 4);

    let members = app.csv(&admin_key, "/v1/exports/members.csv").await;
    assert_eq!(members.len(), MEMBERS + 1, "the purchase enrolled one more");
    let gold = members
        .iter()
        .find(|row| &row[1] == "+84920000000")
        .unwrap();
    assert_eq!(&gold[8], "gold");
    assert_eq!(&gold[7], "api|bulk");
    assert_eq!(
        app.csv(&other_key, "/v1/exports/members.csv").await.len(),
        0,
        "exports are the caller's tenant only"
    );

    let ledger = app.csv(&admin_key, "/v1/exports/ledger.csv").await;
    assert_eq!(
        ledger.len() as i64,
        app.count("SELECT COUNT(*) FROM ledger_entries").await
    );
    let sums: i64 = ledger
        .iter()
        .map(|row| row[5].parse::<i64>().unwrap())
        .sum();
    assert_eq!(sums, 0, "every transaction balances");

    let liability = app.csv(&key, "/v1/exports/liability.csv").await;
    let points: i64 = liability
        .iter()
        .map(|row| row[1].parse::<i64>().unwrap())
        .sum();
    let balances = app
        .count("SELECT CAST(SUM(points_balance) AS BIGINT) FROM members")
        .await;
    assert_eq!(points, balances);
    assert_eq!(balances, MEMBERS as i64 * 50 + 600 + 12 + 5);
    for row in &liability {
        assert_eq!(row[0].len(), 7, "a month YYYY-MM: {row:?}");
        assert_eq!(
            row[2].parse::<i64>().unwrap(),
            row[1].parse::<i64>().unwrap() * 1000
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_run_as_jobs_and_exports_add_up_sqlite() {
    imports_run_as_jobs_and_exports_add_up(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_run_as_jobs_and_exports_add_up_postgres() {
    imports_run_as_jobs_and_exports_add_up(true).await;
}

/// A quote left open on line 4 swallowed lines 5 to 7 into one member's name while the job said
/// "done, no errors"; the row is now rejected naming the lines it took, and none is imported.
async fn a_quote_left_open_is_reported_with_its_lines(postgres: bool) {
    let store = fresh_store(postgres).await;
    let (_, key, _) = tenant(&store, "Cà phê Quote").await;
    let app = serve(store).await;
    let file = "phone,name,email,birthday,gender,city,tags\n\
                0912000001,An,,,,,\n\
                0912000002,Bình,,,,,\n\
                0912000003,\"Chi,,,,,\n\
                0912000004,Dũng,,,,,\n\
                0912000005,Em,,,,,\n\
                0912000006,Giang,,,,,\n";
    let (status, queued) = app
        .upload(&key, "members", "text/csv", file.to_owned())
        .await;
    assert_eq!(status, 202, "{queued}");
    let job = app.finished(&key, queued["id"].as_str().unwrap()).await;
    assert_eq!(
        (&job["rows_accepted"], &job["rows_rejected"]),
        (&Value::from(2), &Value::from(1)),
        "{job}"
    );
    assert_eq!(job["errors"][0]["line"], 4, "{job}");
    let reason = job["errors"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("from line 4 to line 7"), "{reason}");
    assert_eq!(app.count("SELECT COUNT(*) FROM members").await, 2);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM members WHERE name LIKE '%Dũng%'")
            .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quote_left_open_is_reported_with_its_lines_sqlite() {
    a_quote_left_open_is_reported_with_its_lines(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quote_left_open_is_reported_with_its_lines_postgres() {
    a_quote_left_open_is_reported_with_its_lines(true).await;
}

/// An imported file's events name who sent the file, like every other event.
async fn imported_events_name_who_sent_the_file(postgres: bool) {
    let store = fresh_store(postgres).await;
    let (tenant_id, key, _) = tenant(&store, "Cà phê Actor").await;
    let key_id: String = store
        .db()
        .fetch_one(
            "SELECT id FROM api_keys WHERE tenant_id = $1 AND name = 'write'",
            patron_store::binds![tenant_id.to_string()],
        )
        .await
        .unwrap()
        .text("id")
        .unwrap();
    let app = serve(store).await;
    let file = "phone,name\n0912000001,An\n0912000002,Bình\n";
    let (status, queued) = app
        .upload(&key, "members", "text/csv", file.to_owned())
        .await;
    assert_eq!(status, 202, "{queued}");
    let job = app.finished(&key, queued["id"].as_str().unwrap()).await;
    assert_eq!(job["rows_accepted"], 2, "{job}");
    let sent_by_the_key = format!(
        "SELECT COUNT(*) FROM events WHERE actor = 'key:{key_id}' AND tenant_id = '{tenant_id}'"
    );
    assert_eq!(app.count(&sent_by_the_key).await, 2);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM events WHERE actor IS NULL")
            .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_events_name_who_sent_the_file_sqlite() {
    imported_events_name_who_sent_the_file(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_events_name_who_sent_the_file_postgres() {
    imported_events_name_who_sent_the_file(true).await;
}
