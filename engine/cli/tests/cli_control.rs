//! The control plane of a running `hawser serve`: `hawser stats` reads every nexus and
//! connection, `hawser call` sends DDF messages to its endpoints (a bad endpoint comes
//! back as a remote exception), and a running DTP transfer is listed and cancelled.

mod support;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use hawser_wire::ddf::{self, Node, Value};
use support::{ServeProcess, TempDir, assert_succeeded, text};

fn hawser() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hawser"))
}

/// `hawser call ADDR ENDPOINT` with `input` on stdin.
fn call(addr: &str, endpoint: &str, input: &str) -> Output {
    let mut child = hawser()
        .args(["call", addr, endpoint])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn long(node: &Node, name: &str) -> i64 {
    match node.member(name).map(|m| &m.value) {
        Some(Value::Long(v)) => *v,
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn stats_and_calls_answer_in_ddf_and_a_transfer_is_cancelled() {
    let dir = TempDir::new("cli-control");
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let server = ServeProcess::start_with(
        &root,
        &["--listen", "127.0.0.1:0", "--dtp", "127.0.0.1:0"],
        1,
    );

    // One JSON reading: the stats client's own nexus is there, with its connection.
    let out = hawser()
        .args(["stats", &server.addr, "--json", "--count", "1"])
        .output()
        .unwrap();
    assert_succeeded(&out, "hawser stats");
    let reading: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert!(reading["nexus_count"].as_i64().unwrap() >= 1, "{reading:#}");
    let nexuses = reading["nexuses"].as_array().unwrap();
    assert!(
        nexuses.iter().any(|n| n["peer"] == "127.0.0.1"
            && n["connections"].as_array().is_some_and(|c| !c.is_empty())
            && n["requests"].as_i64().is_some()),
        "{reading:#}"
    );

    // A bad endpoint is a remote exception, printed as DDF, and the call fails.
    let out = call(&server.addr, "hawser.nope", "");
    assert!(!out.status.success());
    let exception = ddf::decode(&out.stdout).unwrap();
    assert_eq!(exception.name.as_deref(), Some("exception"));
    assert_eq!(
        exception.member("type").and_then(Node::as_str),
        Some("hawser.control.NoSuchEndpoint")
    );
    // Input that is not DDF is refused before anything is sent.
    let out = call(&server.addr, "hawser.jobs", "not ddf at all");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not DDF text"),
        "{}",
        text(&out.stderr)
    );

    // A paced DTP push shows in hawser.jobs and is cancelled by its session id.
    let file = dir.path().join("big.bin");
    std::fs::write(&file, vec![7u8; 24_000_000]).unwrap();
    let push = hawser()
        .args(["push", "--transport", "dtp", "-q", "--rate", "4M"])
        .arg(&file)
        .arg(format!("{}:big.bin", server.addr))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let transfer = loop {
        let out = call(&server.addr, "hawser.jobs", "");
        assert_succeeded(&out, "hawser call hawser.jobs");
        let jobs = ddf::decode(&out.stdout).unwrap();
        assert_eq!(jobs.name.as_deref(), Some("hawser.jobs"));
        let transfers = jobs.member("transfers").unwrap().value.children().unwrap();
        if let Some(t) = transfers.first() {
            assert_eq!(t.member("direction").and_then(Node::as_str), Some("push"));
            assert_eq!(t.member("name").and_then(Node::as_str), Some("big.bin"));
            assert_eq!(long(t, "total"), 24_000_000);
            break long(t, "transfer");
        }
        assert!(Instant::now() < deadline, "the push never showed");
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = call(
        &server.addr,
        "hawser.jobs.cancel",
        &format!("x 4 1\ntransfer 8 {transfer}\n"),
    );
    assert_succeeded(&out, "hawser call hawser.jobs.cancel");
    assert!(
        text(&out.stdout).contains("cancelled 8 1"),
        "{}",
        text(&out.stdout)
    );
    let out = push.wait_with_output().unwrap();
    assert!(!out.status.success(), "the cancelled push failed");
    // Cancelling it again: nothing runs under that id.
    let out = call(
        &server.addr,
        "hawser.jobs.cancel",
        &format!("x 4 1\ntransfer 8 {transfer}\n"),
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stdout).contains("hawser.control.NotFound"),
        "{}",
        text(&out.stdout)
    );
}
