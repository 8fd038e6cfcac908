//! `hawser publish` and `hawser consume` against a `hawser serve` over loopback.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use support::{ServeProcess, TempDir, text};

fn hawser() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hawser"))
}

/// A `hawser serve` whose config declares the sink `sink` (its root under the returned
/// directory).
fn serve_with_sink(tag: &str, sink: &str) -> (TempDir, ServeProcess) {
    let root = TempDir::new(tag);
    let config = root.path().join("serve.toml");
    std::fs::write(&config, format!("[dmp]\nsinks = [\"{sink}\"]\n")).unwrap();
    let data = root.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--config",
        config.to_str().unwrap(),
    ];
    let server = ServeProcess::start_with(&data, &args, 1);
    (root, server)
}

#[test]
fn lines_published_to_a_sink_reach_the_bound_consumer_with_a_report() {
    let (root, server) = serve_with_sink("cli-dmp-root", "orders");
    let hgrm = root.path().join("latency.hgrm");
    let consumer = hawser()
        .args([
            "consume",
            &server.addr,
            "eu",
            "--bind",
            "orders:eu.#",
            "--count",
            "3",
        ])
        .args(["--json", "--histogram", hgrm.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The consumer binds before anything is published: wait until its feed exists.
    std::thread::sleep(std::time::Duration::from_millis(700));
    let mut publisher = hawser()
        .args([
            "publish",
            &server.addr,
            "orders",
            "--routing-key",
            "eu.fr",
            "--json",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    publisher
        .stdin
        .take()
        .unwrap()
        .write_all(b"first\nsecond line\r\nthird\n")
        .unwrap();
    let published = publisher.wait_with_output().unwrap();
    assert!(published.status.success(), "{}", text(&published.stderr));
    let report: serde_json::Value = serde_json::from_slice(&published.stdout).unwrap();
    assert_eq!(report["messages"], 3);

    let consumed = consumer.wait_with_output().unwrap();
    assert!(consumed.status.success(), "{}", text(&consumed.stderr));
    assert_eq!(text(&consumed.stdout), "first\nsecond line\nthird\n");
    let report: serde_json::Value = serde_json::from_str(text(&consumed.stderr).trim()).unwrap();
    assert_eq!(report["messages"], 3);
    assert!(
        report["latency_us"]["p99"].as_f64().unwrap() > 0.0,
        "{report}"
    );
    assert!(
        std::fs::read_to_string(&hgrm)
            .unwrap()
            .contains("Percentile")
    );
}

#[test]
fn publishing_to_a_missing_sink_says_how_to_declare_it() {
    let root = TempDir::new("cli-dmp-missing");
    let server = ServeProcess::start_with(root.path(), &["--listen", "127.0.0.1:0", "--dmp"], 1);
    let out = hawser()
        .args(["publish", &server.addr, "nowhere"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("404 NOT-FOUND") && err.contains("--declare"),
        "{err}"
    );
}

#[test]
fn framed_messages_round_trip_and_bench_measures_dmp() {
    let (_root, server) = serve_with_sink("cli-dmp-framed", "s");
    let consumer = hawser()
        .args([
            "consume",
            &server.addr,
            "f",
            "--bind",
            "s:#",
            "--count",
            "2",
            "--framed",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    let mut framed = Vec::new();
    for body in [&b"a\nb"[..], &[0u8, 1, 2][..]] {
        framed.extend_from_slice(&(body.len() as u32).to_be_bytes());
        framed.extend_from_slice(body);
    }
    let mut publisher = hawser()
        .args(["publish", &server.addr, "s", "--framed"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    publisher.stdin.take().unwrap().write_all(&framed).unwrap();
    assert!(publisher.wait().unwrap().success());
    let consumed = consumer.wait_with_output().unwrap();
    assert!(consumed.status.success(), "{}", text(&consumed.stderr));
    assert_eq!(consumed.stdout, framed);

    let bench = hawser()
        .args(["bench", "--mode", "dmp", "--duration", "0.5", "--json"])
        .output()
        .unwrap();
    assert!(bench.status.success(), "{}", text(&bench.stderr));
    let report: serde_json::Value = serde_json::from_slice(&bench.stdout).unwrap();
    assert_eq!(report["system"], "hawser");
    assert!(report["messages_per_sec"].as_f64().unwrap() > 0.0);
}
