//! Every shell example in README.md and docs/*.md runs as written against a small demo.
//!
//! A fenced block marked ```` ```sh ```` is run; one marked ```` ```sh skip ```` is only shown
//! (servers that run until stopped, benchmarks, the test command itself). The blocks of one file
//! run in order in bash with `set -euo pipefail`, with the variables the demo prints (`PATRON`,
//! `TENANT`, `KEY`, `OWNER_KEY`, `AUTH`) and `patron` on the `PATH`; a variable a block sets is
//! seen by the file's later blocks, as in a reader's terminal. Every `curl` must get a 2xx
//! (it runs with `--fail-with-body`). A failure names the file, the block's line, its output.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The documents whose examples run: README.md and every Markdown file in docs/, so a new
/// document is tested without being listed.
fn documents() -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir(repository().join("docs"))
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    found.sort();
    found.insert(0, "README.md".to_owned());
    found
}
/// The demo's size here: enough for members with points and vouchers, quick in a debug build.
const DEMO_MEMBERS: &str = "300";
const DEMO_PURCHASES: &str = "3000";
/// How long one block may take.
const BLOCK_SECONDS_MAX: u64 = 120;

struct Block {
    line: usize,
    code: String,
}

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The runnable blocks of a Markdown text, with the line of their opening fence.
fn runnable_blocks(text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut open: Option<(usize, bool, String)> = None;
    for (index, line) in text.lines().enumerate() {
        let fence = line.trim_start().strip_prefix("```");
        match (&mut open, fence) {
            (None, Some(info)) => open = Some((index + 1, info.trim() == "sh", String::new())),
            (Some(_), Some(_)) => {
                let (line, runnable, code) = open.take().expect("an open block");
                if runnable {
                    blocks.push(Block { line, code });
                }
            }
            (Some((_, _, code)), None) => {
                code.push_str(line);
                code.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "a code block is never closed");
    blocks
}

struct Demo {
    child: Child,
    variables: Vec<(String, String)>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Starts `patron demo` on a fresh file and reads the variables its banner exports.
fn start_demo(directory: &Path) -> Demo {
    // The demo's default file name, in the blocks' working directory, as in a reader's.
    let database = directory.join("patron-demo.db");
    let listen = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_patron"))
        .args(["demo", "--database", &database.display().to_string()])
        .args(["--listen", &listen, "--members", DEMO_MEMBERS])
        .args(["--purchases", DEMO_PURCHASES])
        .env("RUST_LOG", "warn")
        .env("PATRON_WEBHOOKS_ALLOW_PRIVATE_TARGETS", "false")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The demo's output is read to its end on a thread of its own: a closed pipe would stop
    // the server at its next line.
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let mut variables = Vec::new();
    let mut seen = String::new();
    while let Ok(line) = received.recv_timeout(Duration::from_secs(300)) {
        seen.push_str(&line);
        seen.push('\n');
        if let Some(exports) = line.trim().strip_prefix("export PATRON=") {
            let mut words = exports.split_whitespace();
            variables.push(("PATRON".to_owned(), words.next().unwrap().to_owned()));
            for word in words {
                let (name, value) = word.split_once('=').unwrap();
                variables.push((name.to_owned(), value.to_owned()));
            }
        }
        if line.starts_with("Try:") {
            break;
        }
    }
    assert!(
        !variables.is_empty(),
        "the demo printed no variables:\n{seen}"
    );
    let key = variables.iter().find(|(name, _)| name == "KEY").unwrap();
    let auth = format!("Authorization: Bearer {}", key.1);
    variables.push(("AUTH".to_owned(), auth));
    let demo = Demo { child, variables };
    let address = &demo.variables[0].1;
    for _ in 0..100 {
        let ready = Command::new("curl")
            .args(["-fsS", "--max-time", "2", &format!("{address}/readyz")])
            .output()
            .is_ok_and(|output| output.status.success());
        if ready {
            return demo;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the demo at {address} never became ready");
}

/// What runs before each block: strict bash, curl that fails on a 4xx/5xx and ends its output
/// with a newline, and the variables earlier blocks of the file exported.
const PRELUDE: &str = r#"set -euo pipefail
curl() { command curl --silent --show-error --fail-with-body --max-time 30 "$@"; echo; }
[ -f "$DOCS_STATE" ] && source "$DOCS_STATE"
set -a
"#;
/// What runs after each block: its variables are kept for the next.
const POSTLUDE: &str = r#"
set +a
export -p | grep -v '^declare -[a-z]*r' > "$DOCS_STATE"
"#;

fn run_document(demo: &Demo, directory: &Path, document: &str) -> Vec<String> {
    let text = std::fs::read_to_string(repository().join(document)).unwrap();
    let state = directory.join(format!("{}.state", document.replace('/', "_")));
    let binaries = Path::new(env!("CARGO_BIN_EXE_patron")).parent().unwrap();
    let path = format!("{}:{}", binaries.display(), std::env::var("PATH").unwrap());
    let mut failures = Vec::new();
    for block in runnable_blocks(&text) {
        let script = format!("{PRELUDE}{}{POSTLUDE}", block.code);
        let mut command = Command::new("timeout");
        command
            .arg(BLOCK_SECONDS_MAX.to_string())
            .args(["bash", "-c", &script])
            .current_dir(directory)
            .env("PATH", &path)
            .env("DOCS_STATE", &state)
            .env("RUST_LOG", "warn");
        for (name, value) in &demo.variables {
            command.env(name, value);
        }
        let output = command.output().unwrap();
        if !output.status.success() {
            failures.push(format!(
                "{document}:{}: the block failed ({})\n--- block\n{}--- stdout\n{}\n--- stderr\n{}",
                block.line,
                output.status,
                block.code,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr),
            ));
        }
    }
    failures
}

#[test]
fn every_shell_example_in_the_docs_runs_against_the_demo() {
    let directory =
        std::env::temp_dir().join(format!("patron-docs-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&directory).unwrap();
    let demo = start_demo(&directory);
    let mut failures = Vec::new();
    let mut blocks = 0;
    let documents = documents();
    assert!(documents.len() >= 4, "{documents:?}");
    for document in &documents {
        let text = std::fs::read_to_string(repository().join(document)).unwrap();
        blocks += runnable_blocks(&text).len();
        failures.extend(run_document(&demo, &directory, document));
    }
    assert!(blocks >= 6, "only {blocks} runnable blocks found");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn blocks_are_found_with_their_lines_and_skips_left_out() {
    let text = "# T\n```sh\necho one\n```\n\n```sh skip\ncargo test\n```\n```json\n{}\n```\n```sh\necho two\n```\n";
    let blocks = runnable_blocks(text);
    let found: Vec<(usize, &str)> = blocks.iter().map(|b| (b.line, b.code.as_str())).collect();
    assert_eq!(found, [(2, "echo one\n"), (12, "echo two\n")]);
}
