//! The binary's small commands: `tenant`, `user add`, `config check`.

use std::io::Write;
use std::process::{Command, Stdio};

fn patron(args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_patron"))
        .args(args)
        .env_remove("PATRON_DATABASE")
        .env("RUST_LOG", "warn")
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    let output = child.wait_with_output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn temp(name: &str) -> String {
    std::env::temp_dir()
        .join(format!("patron-cmd-{}-{name}", uuid::Uuid::now_v7()))
        .display()
        .to_string()
}

#[test]
fn user_add_makes_the_first_owner() {
    let database = temp("users.db");
    let (ok, out, err) = patron(
        &["tenant", "--database", &database, "--name", "Cà phê"],
        None,
    );
    assert!(ok, "{err}");
    let tenant = out
        .lines()
        .find_map(|line| line.strip_prefix("tenant "))
        .unwrap()
        .to_owned();
    let add = |email: &str, stdin: Option<&str>| {
        let mut args = vec![
            "user",
            "add",
            "--database",
            &database,
            "--tenant",
            &tenant,
            "--email",
            email,
            "--name",
            "Chủ quán",
        ];
        if stdin.is_some() {
            args.push("--password-stdin");
        }
        patron(&args, stdin)
    };
    let (ok, out, err) = add("chu@cafe.vn", None);
    assert!(ok, "{err}");
    assert!(out.contains("(chu@cafe.vn, owner)"), "{out}");
    let password = out
        .lines()
        .find_map(|line| line.strip_prefix("password "))
        .unwrap();
    assert_eq!(password.len(), 20);
    let (ok, _, err) = add("chu@cafe.vn", Some("another long password\n"));
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, _, err) = add("ke-toan@cafe.vn", Some("short\n"));
    assert!(!ok && err.contains("password"), "{err}");
    let (ok, out, err) = add("ke-toan@cafe.vn", Some("a long enough password\n"));
    assert!(ok, "{err}");
    assert!(
        !out.contains("password "),
        "a given password is not printed: {out}"
    );
}

#[test]
fn config_check_names_the_bad_key_and_connects() {
    let file = temp("bad.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:9\"\nrate_limt_burst = 5\n").unwrap();
    let (ok, _, err) = patron(&["config", "check", "--config", &file], None);
    assert!(!ok);
    assert!(err.contains("rate_limt_burst"), "{err}");

    let file = temp("good.toml");
    let database = temp("config.db");
    std::fs::write(
        &file,
        format!(
            "database = {database:?}\nplatform_token = \"s3cret-token\"\nlog_format = \"json\"\n"
        ),
    )
    .unwrap();
    let (ok, out, err) = patron(
        &[
            "config",
            "check",
            "--config",
            &file,
            "--listen",
            "0.0.0.0:9999",
        ],
        None,
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("listen = \"0.0.0.0:9999\""),
        "a flag overrides the file: {out}"
    );
    assert!(out.contains("log_format = \"json\""), "{out}");
    assert!(!out.contains("s3cret-token"), "secrets are hidden: {out}");
    assert!(out.contains("configuration ok"), "{out}");
}
