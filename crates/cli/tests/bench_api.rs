//! `patron bench api` works end to end with tiny settings: the real binary, a real server and
//! SQLite database, every kind of request answered. It checks the command, never the timing.

use std::process::Command;

#[test]
fn bench_api_runs_every_kind_without_errors() {
    let output = Command::new(env!("CARGO_BIN_EXE_patron"))
        .args([
            "bench",
            "api",
            "--backend",
            "sqlite",
            "--members",
            "200",
            "--seconds",
            "1",
            "--connections",
            "4",
        ])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run the patron binary");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "bench api failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for kind in ["health", "purchase", "member"] {
        let row: Vec<&str> = stdout
            .lines()
            .map(|line| line.split_whitespace().collect::<Vec<_>>())
            .find(|fields| fields.first() == Some(&kind) && fields.len() == 7)
            .unwrap_or_else(|| panic!("no {kind} row in\n{stdout}"));
        let requests: u64 = row[1].parse().expect("a request count");
        let errors: u64 = row[6].parse().expect("an error count");
        assert!(requests > 0, "no {kind} requests in\n{stdout}");
        assert_eq!(errors, 0, "{kind} errors in\n{stdout}");
    }
    assert!(stdout.contains("purchase rps / health rps"), "{stdout}");
    assert!(stdout.contains("sound: true"), "{stdout}");
}
