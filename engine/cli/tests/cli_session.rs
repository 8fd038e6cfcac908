//! What a user of `hawser serve`, `push` and `bench --serve` sees of the session layer's
//! access rules: anonymous access is the operator's choice, and a session held by an
//! earlier run says what is happening and what to do.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hawser::nexus_record;
use hawser_runtime::{Client, ClientOptions, ExchangeId, NexusId};
use support::{ServeProcess, TempDir, assert_succeeded, text, users_entry};

const SECRET: &str = "correct horse";

/// `hawser serve` on loopback with `alice` as its only identity.
fn serve_with_users(root: &Path, scratch: &Path) -> ServeProcess {
    let config = scratch.join("serve.toml");
    std::fs::write(&config, users_entry("alice", SECRET)).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_hawser"))
        .args(["serve", "--listen", "127.0.0.1:0", "--root"])
        .arg(root)
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    ServeProcess::announced(child)
}

/// `hawser push` with `args`, its session records under `state`.
fn push(state: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hawser"))
        .args(["push", "--quiet", "--connections", "2"])
        .args(args)
        .env("XDG_STATE_HOME", state)
        .output()
        .unwrap()
}

/// Creates a nexus for `alice`, runs something on it and drops the client without
/// closing it, as a killed push leaves one behind. Returns the nexus.
fn abandon_a_session(addr: SocketAddr) -> NexusId {
    let config = ClientOptions {
        identity: "alice".into(),
        password: Some(SECRET.as_bytes().to_vec()),
        connections: 1,
        ..ClientOptions::default()
    };
    let client = Client::connect(addr, config).unwrap();
    // Any exchange runs on the server (an unknown one is answered with an error).
    let _ = client.call(ExchangeId(0x7777), Bytes::new());
    let nexus = client.nexus().unwrap();
    drop(client);
    nexus
}

#[test]
fn serve_refuses_to_start_when_it_would_refuse_every_client() {
    let root = TempDir::new("cli-session-root");
    let out = Command::new(env!("CARGO_BIN_EXE_hawser"))
        .args(["serve", "--listen", "0.0.0.0:0", "--root"])
        .arg(root.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("would refuse every client")
            && err.contains("hawser passwd")
            && err.contains("--allow-anonymous"),
        "{err}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_hawser"))
        .args(["bench", "--serve", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--allow-anonymous"));
}

#[test]
fn an_anonymous_push_to_a_server_with_users_is_told_what_to_do() {
    let src = TempDir::new("cli-session-src");
    let dst = TempDir::new("cli-session-dst");
    let state = TempDir::new("cli-session-state");
    std::fs::write(src.path().join("f"), b"data").unwrap();
    let server = serve_with_users(dst.path(), state.path());
    let from = format!("{}/", src.path().display());
    let out = push(state.path(), &[&from, &format!("{}:copy", server.addr)]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("does not accept anonymous clients")
            && err.contains("--identity")
            && err.contains("--secret-file"),
        "{err}"
    );
}

#[test]
fn a_held_push_says_what_to_do_and_the_next_run_replaces_a_killed_runs_session() {
    let src = TempDir::new("cli-session-src");
    let dst = TempDir::new("cli-session-dst");
    let state = TempDir::new("cli-session-state");
    std::fs::write(src.path().join("f"), b"data").unwrap();
    let secret_file = state.path().join("secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let server = serve_with_users(dst.path(), state.path());
    let addr: SocketAddr = server.addr.parse().unwrap();
    let from = format!("{}/", src.path().display());
    let to = format!("{}:copy", server.addr);
    let as_alice = [
        "--identity",
        "alice",
        "--secret-file",
        secret_file.to_str().unwrap(),
    ];

    // A session left on the server, and no record of it here (another machine, say):
    // the push is told at once what holds it and what to do.
    let old = abandon_a_session(addr);
    let started = Instant::now();
    let out = push(state.path(), &[&as_alice[..], &[&from, &to]].concat());
    assert!(!out.status.success());
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    let err = text(&out.stderr);
    let replace = format!("--replace-nexus {old}");
    assert!(
        err.contains("holds this run's session")
            && err.contains(&old.to_string())
            && err.contains(&replace),
        "{err}"
    );
    // Doing what it says works.
    let out = push(
        state.path(),
        &[
            &as_alice[..],
            &["--replace-nexus", &old.to_string(), &from, &to],
        ]
        .concat(),
    );
    assert_succeeded(&out, "push --replace-nexus");
    let records = state.path().join("hawser/nexus");
    let left = || std::fs::read_dir(&records).map_or(0, |d| d.count());
    assert_eq!(left(), 0, "a clean end removes the record");

    // A run killed after recording its session: the next run replaces it by itself.
    let old = abandon_a_session(addr);
    nexus_record::remember_in(&records, &addr.into(), "alice", old).unwrap();
    let out = push(state.path(), &[&as_alice[..], &[&from, &to]].concat());
    assert_succeeded(&out, "push after a killed run");
    assert_eq!(left(), 0);
    assert_eq!(
        std::fs::read(dst.path().join("copy/f")).unwrap(),
        b"data".to_vec()
    );
}
