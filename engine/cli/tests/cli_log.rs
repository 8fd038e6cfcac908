//! The log on stderr, as real processes write it: `hawser serve` says what it serves with
//! (as JSON lines with `--log-format json`) while stdout keeps only `listening on ADDR`,
//! and a push logs its start and end only when asked (-v or RUST_LOG).

mod support;

use std::io::Read;
use std::process::{Command, Stdio};

use support::{ServeProcess, TempDir, assert_succeeded, text};

#[test]
fn serve_logs_json_lines_on_stderr_and_only_its_address_on_stdout() {
    let root = TempDir::new("cli-log-root");
    let child = Command::new(env!("CARGO_BIN_EXE_hawser"))
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .arg("--root")
        .arg(root.path())
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut server = ServeProcess::announced(child);
    let addr = server.addr.clone();
    server.kill();
    let mut log = String::new();
    server
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    let events: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
        .collect();
    let serving = events
        .iter()
        .find(|e| e["fields"]["message"] == "serving")
        .unwrap_or_else(|| panic!("no serving event in {log}"));
    assert_eq!(serving["level"], "INFO");
    assert_eq!(serving["fields"]["addresses"], addr.as_str());
    assert_eq!(serving["fields"]["write_mode"], "direct");
    assert_eq!(serving["fields"]["partial_max_age"], "7days");
}

#[test]
fn a_push_logs_its_start_and_end_with_v_and_otherwise_no_info() {
    let src = TempDir::new("cli-log-src");
    let dst = TempDir::new("cli-log-dst");
    std::fs::write(src.path().join("f"), b"logged").unwrap();
    let server = ServeProcess::start(dst.path());
    let from = format!("{}/", src.path().display());
    let push = |extra: &[&str], dest: &str| {
        Command::new(env!("CARGO_BIN_EXE_hawser"))
            .args(["push", "--connections", "2"])
            .args(extra)
            .arg(&from)
            .arg(format!("{}:{dest}", server.addr))
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    };
    let plain = push(&[], "plain");
    assert_succeeded(&plain, "push");
    assert!(
        text(&plain.stdout).contains("1 files"),
        "{}",
        text(&plain.stdout)
    );
    assert!(
        !text(&plain.stderr).contains("INFO"),
        "{}",
        text(&plain.stderr)
    );

    let verbose = push(&["-v"], "verbose");
    assert_succeeded(&verbose, "push -v");
    let log = text(&verbose.stderr);
    let started = log.lines().find(|l| l.contains("job started"));
    let ended = log.lines().find(|l| l.contains("job ended"));
    assert!(
        started.is_some_and(|l| l.contains("hawser::job") && l.contains("window=")),
        "{log}"
    );
    assert!(
        ended.is_some_and(|l| l.contains("files=1") && l.contains("bytes_sent=6")),
        "{log}"
    );
    // The report on stdout is the same with or without -v.
    assert!(
        text(&verbose.stdout).starts_with("1 files"),
        "{}",
        text(&verbose.stdout)
    );
}
