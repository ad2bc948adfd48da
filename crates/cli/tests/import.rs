//! `patron import` and `patron export` run as the real binary on a fresh SQLite file and a fresh
//! PostgreSQL database: rejected rows with their line numbers, re-runs without duplicates,
//! purchases earning at their own dates, exports that add up, and a large file.

use patron_core::programme::ProgrammeDefinition;
use patron_core::{Phone, TenantId};
use patron_store::admin::NewTenant;
use patron_store::{DatabaseConfig, MemberRef, Store};
use std::path::{Path, PathBuf};
use std::process::Command;

fn patron() -> Command {
    Command::new(env!("CARGO_BIN_EXE_patron"))
}

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("patron-import-{}-{name}", uuid::Uuid::now_v7()))
}

fn sqlite_url() -> String {
    temp_path("test.db").display().to_string()
}

async fn postgres_url() -> String {
    patron_testkit::postgres_database("import").await
}

/// The café: store HN01, 1 point per 10,000 VND, a welcome bonus, silver at 2,000,000 and gold at
/// 5,000,000 of spend over 12 months.
fn cafe_programme() -> ProgrammeDefinition {
    serde_json::from_value(serde_json::json!({
        "amount_per_point": 10000,
        "point_value": 1000,
        "return_window_days": 7,
        "expiry": {"kind": "days", "days": 365},
        "cap_per_event": 1000,
        "rules": [
            {"id": "sign_up", "name": "Welcome", "when": "event.type == 'sign_up'", "points": "50", "once_per": "ever"}
        ],
        "tiers": [
            {"code": "member", "name": "Member", "threshold": 0},
            {"code": "silver", "name": "Silver", "threshold": 2000000, "multiplier_percent": 120},
            {"code": "gold", "name": "Gold", "threshold": 5000000, "multiplier_percent": 150}
        ],
        "qualification": {"metric": "spend", "window": "rolling_12_months", "grace_days": 30}
    }))
    .unwrap()
}

async fn cafe(database: &str) -> (Store, TenantId) {
    let store = Store::open(&DatabaseConfig::new(database)).await.unwrap();
    let tenant = store
        .create_tenant(&NewTenant::vietnamese("Cà phê Import"))
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
        .publish_programme(tenant, cafe_programme(), from)
        .await
        .unwrap();
    (store, tenant)
}

/// Runs `patron import`; answers its summary line.
fn import(database: &str, tenant: TenantId, what: &str, file: &Path, errors: &Path) -> String {
    let output = patron()
        .args(["import", what])
        .arg(file)
        .args([
            "--tenant",
            &tenant.to_string(),
            "--database",
            database,
            "--errors",
        ])
        .arg(errors)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn export(database: &str, tenant: TenantId, what: &str) -> Vec<csv::StringRecord> {
    let path = temp_path(&format!("{what}.csv"));
    let output = patron()
        .args([
            "export",
            what,
            "--tenant",
            &tenant.to_string(),
            "--database",
            database,
        ])
        .arg("--output")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rows = csv::Reader::from_path(&path)
        .unwrap()
        .records()
        .map(Result::unwrap)
        .collect();
    let _ = std::fs::remove_file(path);
    rows
}

fn error_rows(path: &Path) -> Vec<(u64, String)> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    assert_eq!(reader.headers().unwrap(), vec!["line", "reason"]);
    reader
        .records()
        .map(|record| {
            let record = record.unwrap();
            (record[0].parse().unwrap(), record[1].to_owned())
        })
        .collect()
}

async fn count(store: &Store, sql: &str) -> i64 {
    patron_testkit::scalar(store, sql, vec![]).await
}

const MEMBERS: &str = "phone,name,email,birthday,gender,city,tags
0912000001,An,an@example.com,1990-05-01,f,Hà Nội,vip|coffee
not-a-phone,Ghost,,,,,
0912000002,Bình,bad-email,,,,
0912000003,Chi,,1990-13-45,,,
,No Phone,,,,,
0912000004,,,,,,
0912 000 001,An Again,,,,,
+84912000005,\"Two
Lines\",,,,,tea
12,Short,,,,,
";

async fn members_import_reports_bad_rows_and_reruns_without_duplicates(database: String) {
    let (store, tenant) = cafe(&database).await;
    let file = temp_path("members.csv");
    std::fs::write(&file, MEMBERS).unwrap();
    let errors = temp_path("members.errors.csv");

    let summary = import(&database, tenant, "members", &file, &errors);
    assert!(
        summary.contains("read 9, accepted 3, duplicates 0, rejected 6"),
        "{summary}"
    );
    let rows = error_rows(&errors);
    let lines: Vec<u64> = rows.iter().map(|(line, _)| *line).collect();
    assert_eq!(lines, vec![3, 4, 5, 6, 8, 11], "{rows:?}");
    let reasons: Vec<&str> = rows.iter().map(|(_, reason)| reason.as_str()).collect();
    assert!(reasons[0].starts_with("phone: "), "{reasons:?}");
    assert_eq!(reasons[1], "email: not an e-mail address");
    assert_eq!(reasons[2], "birthday: must be a date YYYY-MM-DD");
    assert_eq!(reasons[3], "phone: is required");
    assert!(
        reasons[4].starts_with("exists_with_different_body: "),
        "{reasons:?}"
    );
    assert!(reasons[5].starts_with("phone: "), "{reasons:?}");

    let an = store
        .member(
            tenant,
            &MemberRef::Phone(Phone::parse("0912000001").unwrap()),
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(an.name.as_deref(), Some("An"));
    assert_eq!(an.tags, vec!["vip", "coffee"]);
    assert_eq!(an.birthday.as_deref(), Some("1990-05-01"));
    assert_eq!(an.balance, 50, "the welcome bonus");
    let quoted = store
        .member(
            tenant,
            &MemberRef::Phone(Phone::parse("0912000005").unwrap()),
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(quoted.name.as_deref(), Some("Two\nLines"));

    let members = count(&store, "SELECT COUNT(*) FROM members").await;
    let transactions = count(&store, "SELECT COUNT(*) FROM ledger_transactions").await;
    let entries = count(&store, "SELECT COUNT(*) FROM ledger_entries").await;
    assert_eq!((members, transactions), (3, 3));

    let again = import(&database, tenant, "members", &file, &errors);
    assert!(
        again.contains("read 9, accepted 0, duplicates 3, rejected 6"),
        "{again}"
    );
    assert_eq!(error_rows(&errors).len(), 6);
    assert_eq!(count(&store, "SELECT COUNT(*) FROM members").await, members);
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM ledger_transactions").await,
        transactions
    );
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM ledger_entries").await,
        entries
    );

    let exported = export(&database, tenant, "members");
    assert_eq!(exported.len(), 3);
    let an_row = exported
        .iter()
        .find(|row| &row[1] == "+84912000001")
        .unwrap();
    assert_eq!(&an_row[7], "vip|coffee");
    assert_eq!(&an_row[9], "50");
    let _ = std::fs::remove_file(file);
    let _ = std::fs::remove_file(errors);
}

fn rfc3339(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

async fn purchases_earn_at_their_dates_and_exports_add_up(database: String) {
    let (store, tenant) = cafe(&database).await;
    let now = chrono::Utc::now();
    let days_ago = |days: i64| now - chrono::Duration::days(days);
    // 0913000001 crosses silver on the second purchase and gold on the third; each earns at the
    // tier held before it (1 point per 10,000; silver ×1.2).
    let file = temp_path("purchases.csv");
    let text = format!(
        "receipt_id,phone,amount,store,occurred_at,items\n\
         R1,0913000001,1500000,HN01,{},coffee\n\
         R2,0913000001,1000000,HN01,{},\n\
         R3,0913000001,3000000,HN01,{},\n\
         R4,0913000002,200000,XX99,{},\n\
         R5,0913000002,12.5,HN01,{},\n\
         R6,0913000002,0,HN01,{},\n\
         R7,0913000002,100000,HN01,tomorrow,\n\
         R8,0913000002,100000,HN01,{},\n\
         R9,0913000002,250000,,{},\n",
        rfc3339(days_ago(90)),
        rfc3339(days_ago(60)),
        rfc3339(days_ago(30)),
        rfc3339(days_ago(10)),
        rfc3339(days_ago(10)),
        rfc3339(days_ago(10)),
        rfc3339(now + chrono::Duration::days(1)),
        days_ago(5).format("%Y-%m-%d %H:%M"),
    );
    std::fs::write(&file, &text).unwrap();
    let errors = temp_path("purchases.errors.csv");
    let summary = import(&database, tenant, "purchases", &file, &errors);
    assert!(
        summary.contains("read 9, accepted 4, duplicates 0, rejected 5"),
        "{summary}"
    );
    let rows = error_rows(&errors);
    assert_eq!(
        rows.iter().map(|(line, _)| *line).collect::<Vec<_>>(),
        vec![5, 6, 7, 8, 9]
    );
    assert!(rows[0].1.starts_with("unknown_store: "), "{rows:?}");
    assert!(rows[1].1.starts_with("amount: "), "{rows:?}");
    assert_eq!(
        rows[2].1,
        format!("amount: must be 1 to {}", patron_server::AMOUNT_MAX)
    );
    assert!(rows[3].1.starts_with("occurred_at: "), "{rows:?}");
    assert_eq!(
        rows[4].1,
        "occurred_at: is more than 5 minutes in the future"
    );

    let buyer = MemberRef::Phone(Phone::parse("0913000001").unwrap());
    let member = store.member(tenant, &buyer, now).await.unwrap();
    assert_eq!(member.balance, 150 + 100 + 360);
    assert_eq!(member.lifetime_spend, 5_500_000);
    assert_eq!(member.tier.tier, "gold");
    let member_id = store.member_id(tenant, &buyer).await.unwrap();
    let history = store.history(tenant, member_id, 10, None).await.unwrap();
    let dates: Vec<String> = history
        .iter()
        .map(|entry| entry.occurred_at[..10].to_owned())
        .collect();
    let zone = store.tenant(tenant).await.unwrap().zone;
    let local =
        |at: chrono::DateTime<chrono::Utc>| at.with_timezone(&zone).format("%Y-%m-%d").to_string();
    assert_eq!(
        dates,
        vec![
            local(days_ago(30)),
            local(days_ago(60)),
            local(days_ago(90))
        ]
    );
    let upgrades: Vec<(String, i64)> = store
        .db()
        .fetch(
            "SELECT to_tier, at FROM tier_history WHERE member_id = $1 ORDER BY at",
            patron_store::binds![member_id.to_string()],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.text("to_tier").unwrap(), row.int("at").unwrap()))
        .collect();
    let micros = |text: &str| {
        patron_core::time::to_micros(
            chrono::DateTime::parse_from_rfc3339(text)
                .unwrap()
                .with_timezone(&chrono::Utc),
        )
    };
    assert_eq!(
        upgrades,
        vec![
            ("silver".to_owned(), micros(&rfc3339(days_ago(60)))),
            ("gold".to_owned(), micros(&rfc3339(days_ago(30)))),
        ]
    );

    let again = import(&database, tenant, "purchases", &file, &errors);
    assert!(
        again.contains("read 9, accepted 0, duplicates 4, rejected 5"),
        "{again}"
    );
    // The same receipt with another amount is not the same purchase.
    std::fs::write(
        &file,
        format!(
            "receipt_id,phone,amount,store,occurred_at\nR1,0913000001,1600000,HN01,{}\n",
            rfc3339(days_ago(90))
        ),
    )
    .unwrap();
    let changed = import(&database, tenant, "purchases", &file, &errors);
    assert!(
        changed.contains("accepted 0, duplicates 0, rejected 1"),
        "{changed}"
    );
    assert!(error_rows(&errors)[0]
        .1
        .starts_with("exists_with_different_body: "));

    let ledger = export(&database, tenant, "ledger");
    let audit = store.audit_log(tenant, 50, None).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|entry| entry.action == "export.ledger" && entry.actor == "cli"),
        "the CLI's export of personal data is audited"
    );
    assert_eq!(
        ledger.len() as i64,
        count(&store, "SELECT COUNT(*) FROM ledger_entries").await
    );
    let member_text = member_id.to_string();
    let earned: i64 = ledger
        .iter()
        .filter(|row| &row[1] == member_text.as_str() && &row[4] == "member")
        .map(|row| row[5].parse::<i64>().unwrap())
        .sum();
    assert_eq!(earned, 610);
    let liability = export(&database, tenant, "liability");
    let points: i64 = liability
        .iter()
        .map(|row| row[1].parse::<i64>().unwrap())
        .sum();
    let balances = count(
        &store,
        "SELECT CAST(COALESCE(SUM(points_balance), 0) AS BIGINT) FROM members",
    )
    .await;
    assert_eq!(points, balances);
    assert_eq!(balances, 610 + 25);
    for row in &liability {
        assert!(&row[0] == "never" || row[0].len() == 7, "{row:?}");
        assert_eq!(
            row[2].parse::<i64>().unwrap(),
            row[1].parse::<i64>().unwrap() * 1000
        );
    }
    let _ = std::fs::remove_file(file);
    let _ = std::fs::remove_file(errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_import_reports_bad_rows_and_reruns_without_duplicates_sqlite() {
    members_import_reports_bad_rows_and_reruns_without_duplicates(sqlite_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_import_reports_bad_rows_and_reruns_without_duplicates_postgres() {
    members_import_reports_bad_rows_and_reruns_without_duplicates(postgres_url().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purchases_earn_at_their_dates_and_exports_add_up_sqlite() {
    purchases_earn_at_their_dates_and_exports_add_up(sqlite_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purchases_earn_at_their_dates_and_exports_add_up_postgres() {
    purchases_earn_at_their_dates_and_exports_add_up(postgres_url().await).await;
}

/// A quote left open on line 3 and closed on line 5 took receipts P3 and P4 into one amount
/// while the summary said nothing; the row is rejected naming lines 3 to 5, the rest imported.
async fn a_quote_left_open_is_rejected_with_its_lines(database: String) {
    let (store, tenant) = cafe(&database).await;
    let at = rfc3339(chrono::Utc::now() - chrono::Duration::days(3));
    let file = temp_path("purchases.csv");
    std::fs::write(
        &file,
        format!(
            "receipt_id,phone,amount,store,occurred_at\n\
             P1,0912000001,100000,HN01,{at}\n\
             P2,0912000002,\"100000,HN01,{at}\n\
             P3,0912000003,100000,HN01,{at}\n\
             P4,0912000004,100000,HN01,{at}\"\n\
             P5,0912000005,100000,HN01,{at}\n"
        ),
    )
    .unwrap();
    let errors = temp_path("purchases.errors.csv");
    let summary = import(&database, tenant, "purchases", &file, &errors);
    assert!(
        summary.contains("read 3, accepted 2, duplicates 0, rejected 1"),
        "{summary}"
    );
    let rows = error_rows(&errors);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].0, 3);
    assert!(rows[0].1.contains("from line 3 to line 5"), "{rows:?}");
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM events WHERE event_id IN ('P2', 'P3', 'P4')"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM events WHERE event_id IN ('P1', 'P5')"
        )
        .await,
        2
    );
    let _ = std::fs::remove_file(file);
    let _ = std::fs::remove_file(errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quote_left_open_is_rejected_with_its_lines_sqlite() {
    a_quote_left_open_is_rejected_with_its_lines(sqlite_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quote_left_open_is_rejected_with_its_lines_postgres() {
    a_quote_left_open_is_rejected_with_its_lines(postgres_url().await).await;
}

/// Rows in the large file: enough that holding them all would show, few enough for a debug build.
const LARGE_ROWS: usize = 200_000;
/// Rows in the small file the large one is measured against.
const SMALL_ROWS: usize = 20_000;

/// How much more memory the large file may take than the small one, in KiB.
const GROWTH_KIB_MAX: i64 = 96 * 1024;

/// A members file of `rows` good rows and one bad row at the end.
fn members_file(rows: usize) -> PathBuf {
    use std::io::Write;
    let file = temp_path(&format!("members-{rows}.csv"));
    let mut out = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
    writeln!(out, "phone,name,email,birthday,gender,city,tags").unwrap();
    for number in 0..rows {
        writeln!(
            out,
            "09{:08},Member {number},m{number}@example.com,,,Hà Nội,bulk",
            10_000_000 + number
        )
        .unwrap();
    }
    writeln!(out, "bad,Bad Row,,,,,").unwrap();
    file
}

/// Runs `patron import members` and answers its summary and its peak resident memory in KiB,
/// as the kernel counted it for that one process (`wait4`, which also reaps it).
#[allow(clippy::zombie_processes)]
fn import_measured(database: &str, tenant: TenantId, file: &Path, errors: &Path) -> (String, i64) {
    use std::io::Read;
    let mut child = patron()
        .args(["import", "members"])
        .arg(file)
        .args([
            "--tenant",
            &tenant.to_string(),
            "--database",
            database,
            "--errors",
        ])
        .arg(errors)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let mut status = 0;
    // SAFETY: `usage` is a plain C struct the call fills; the pid is our own child, not yet reaped.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(waited, child.id() as libc::pid_t);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{stdout}"
    );
    (stdout, usage.ru_maxrss)
}

/// A file ten times larger than another needs about the same memory (rows stream through in
/// chunks), and every row is counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_members_file_imports_in_bounded_memory() {
    let small_database = sqlite_url();
    let (_, small_tenant) = cafe(&small_database).await;
    let small = members_file(SMALL_ROWS);
    let small_errors = temp_path("small.errors.csv");
    let (_, small_peak) = import_measured(&small_database, small_tenant, &small, &small_errors);

    let database = sqlite_url();
    let (store, tenant) = cafe(&database).await;
    let file = members_file(LARGE_ROWS);
    let errors = temp_path("large.errors.csv");
    let (summary, peak) = import_measured(&database, tenant, &file, &errors);
    eprintln!(
        "peak memory: {small_peak} KiB for {SMALL_ROWS} rows, {peak} KiB for {LARGE_ROWS} rows"
    );
    assert!(
        summary.contains(&format!(
            "read {}, accepted {LARGE_ROWS}, duplicates 0, rejected 1",
            LARGE_ROWS + 1
        )),
        "{summary}"
    );
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM members").await,
        LARGE_ROWS as i64
    );
    let rows = error_rows(&errors);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, LARGE_ROWS as u64 + 2);
    // Ten times the rows may grow SQLite's page cache (at most 64 MiB a connection) as the
    // database grows, but not much more: 180,000 more rows held as parsed events would take
    // well over 100 MiB on their own.
    assert!(
        peak - small_peak < GROWTH_KIB_MAX,
        "peak memory {peak} KiB for {LARGE_ROWS} rows against {small_peak} KiB for {SMALL_ROWS}"
    );
    for path in [file, errors, small, small_errors] {
        let _ = std::fs::remove_file(path);
    }
}
