//! `hawser serve` and `hawser push` as real processes over loopback.

mod support;

use std::process::{Command, Output, Stdio};

use support::{
    ServeProcess, TempDir, assert_same_tree, assert_succeeded, build_tree, hawser, random_bytes,
    text,
};

fn push(args: &[&str]) -> Output {
    hawser("push", args)
}

fn ok(out: &Output) {
    assert_succeeded(out, "push");
}

#[test]
fn serve_and_push_round_trip_a_tree_byte_identical() {
    let src = TempDir::new("cli-src");
    let dst = TempDir::new("cli-dst");
    let reports = TempDir::new("cli-reports");
    let block = 256 * 1024;
    build_tree(src.path(), block);
    let server = ServeProcess::start(dst.path());
    let json = reports.path().join("report.json");
    let hgrm = reports.path().join("latency.hgrm");
    let from = format!("{}/", src.path().display());
    let to = format!("{}:/replica", server.addr);
    let out = push(&[
        "--block-size",
        "256K",
        "--json",
        json.to_str().unwrap(),
        "--histogram",
        hgrm.to_str().unwrap(),
        &from,
        &to,
    ]);
    ok(&out);
    assert_same_tree(src.path(), &dst.path().join("replica"));

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(report["start"]["connections"].as_u64() == Some(4));
    assert!(report["intervals"].is_array());
    assert!(report["end"]["files"].as_u64().unwrap() >= 300);
    assert!(report["end"]["bits_per_second"].as_f64().unwrap() > 0.0);
    assert!(report["latency_ns"]["p50"].as_u64().unwrap() > 0);
    // The same percentile keys as `hawser bench --json` and the perf harness read.
    assert!(report["latency_ns"]["p999"].is_u64(), "{report}");
    assert!(
        std::fs::read_to_string(&hgrm)
            .unwrap()
            .contains("Percentile")
    );

    // A second run finds everything up to date.
    let again = TempDir::new("cli-reports2");
    let json2 = again.path().join("r.json");
    ok(&push(&["--json", json2.to_str().unwrap(), &from, &to]));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json2).unwrap()).unwrap();
    assert_eq!(report["end"]["bytes"].as_u64(), Some(0));
}

#[test]
fn path_escape_is_refused_with_the_path_named() {
    let src = TempDir::new("cli-src");
    let dst = TempDir::new("cli-dst");
    std::fs::write(src.path().join("f"), b"data").unwrap();
    let server = ServeProcess::start(dst.path());
    let from = format!("{}/", src.path().display());
    let out = push(&[&from, &format!("{}:../outside", server.addr)]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("../outside"), "{err}");
    assert!(err.contains("refused"), "{err}");
    assert!(!dst.path().parent().unwrap().join("outside").exists());
}

#[test]
fn connection_refused_is_reported_as_such() {
    // Bind and drop to find a port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let src = TempDir::new("cli-src");
    let from = src.path().display().to_string();
    let out = push(&[&from, &format!("127.0.0.1:{port}:x")]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("refused"), "{err}");
}

#[test]
fn delete_removes_and_checksum_compares_content() {
    let src = TempDir::new("cli-src");
    let dst = TempDir::new("cli-dst");
    std::fs::write(src.path().join("keep"), random_bytes(5, 10_000)).unwrap();
    std::fs::write(src.path().join("gone"), b"soon deleted").unwrap();
    let server = ServeProcess::start(dst.path());
    let from = format!("{}/", src.path().display());
    let to = format!("{}:d", server.addr);
    ok(&push(&[&from, &to]));
    let replica = dst.path().join("d");
    assert!(replica.join("gone").exists());

    // Without --delete the extra file stays; with it, it goes.
    std::fs::remove_file(src.path().join("gone")).unwrap();
    ok(&push(&[&from, &to]));
    assert!(replica.join("gone").exists());
    ok(&push(&["--delete", &from, &to]));
    assert!(!replica.join("gone").exists());
    assert_same_tree(src.path(), &replica);

    // Same size and mtime, other content: only --checksum notices.
    let keep = replica.join("keep");
    let mtime = std::fs::metadata(&keep).unwrap().modified().unwrap();
    let mut changed = std::fs::read(&keep).unwrap();
    changed[0] ^= 0xFF;
    std::fs::write(&keep, &changed).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&keep)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    ok(&push(&[&from, &to]));
    assert_eq!(
        std::fs::read(&keep).unwrap(),
        changed,
        "size+mtime: skipped"
    );
    ok(&push(&["--checksum", &from, &to]));
    assert_eq!(
        std::fs::read(&keep).unwrap(),
        std::fs::read(src.path().join("keep")).unwrap()
    );
}

#[test]
fn bench_without_mode_replicates_and_verifies_a_data_set() {
    let reports = TempDir::new("cli-bench");
    let hgrm = reports.path().join("bench.hgrm");
    let out = Command::new(env!("CARGO_BIN_EXE_hawser"))
        .args(["bench", "--size", "12000000", "--json", "--histogram"])
        .arg(&hgrm)
        .output()
        .unwrap();
    ok(&out);
    let report: serde_json::Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(report["end"]["verified_bytes"].as_u64(), Some(12_000_000));
    assert!(report["end"]["verified_files"].as_u64().unwrap() > 10);
    assert!(report["latency_ns"]["p99"].as_u64().unwrap() > 0);
    assert!(hgrm.exists());
}

#[test]
fn resume_after_the_server_is_killed_sends_less_and_ends_identical() {
    let src = TempDir::new("cli-src");
    let dst = TempDir::new("cli-dst");
    let reports = TempDir::new("cli-reports");
    let total = 48usize << 20;
    std::fs::write(src.path().join("big"), random_bytes(9, total)).unwrap();
    std::fs::write(src.path().join("small"), b"small file").unwrap();
    let mut server = ServeProcess::start(dst.path());
    let from = format!("{}/", src.path().display());
    let first = Command::new(env!("CARGO_BIN_EXE_hawser"))
        .args(["push", "--quiet", "--block-size", "256K", "--timeout", "2"])
        .arg(&from)
        .arg(format!("{}:r", server.addr))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill the server once part of the file is on disk (its journal has records).
    let journal = dst.path().join("r/.hawser-partial/big.journal");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::fs::metadata(&journal).map_or(0, |m| m.len()) < 2048 {
        assert!(std::time::Instant::now() < deadline, "no progress");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    server.kill();
    let first = first.wait_with_output().unwrap();
    assert!(!first.status.success(), "the first push should fail");
    assert!(text(&first.stderr).contains("--resume"));

    let server = ServeProcess::start(dst.path());
    let json = reports.path().join("resume.json");
    let out = push(&[
        "--resume",
        "--block-size",
        "256K",
        "--json",
        json.to_str().unwrap(),
        &from,
        &format!("{}:r", server.addr),
    ]);
    ok(&out);
    assert_same_tree(src.path(), &dst.path().join("r"));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let sent = report["end"]["bytes"].as_u64().unwrap();
    assert!(sent < total as u64, "resume sent {sent} of {total}");
}

#[test]
fn config_file_sets_root_and_users() {
    let src = TempDir::new("cli-src");
    let dst = TempDir::new("cli-dst");
    let etc = TempDir::new("cli-etc");
    std::fs::write(src.path().join("f"), b"authenticated").unwrap();
    let config = etc.path().join("serve.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nroot = {:?}\nmax_jobs = 4\n{}",
            dst.path().display().to_string(),
            support::users_entry("site-a", "s3cret")
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_hawser"))
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut server = ServeProcess::announced(child);
    let from = format!("{}/", src.path().display());
    let to = format!("{}:d", server.addr);
    let anonymous = push(&[&from, &to]);
    assert!(!anonymous.status.success());
    assert!(
        text(&anonymous.stderr).contains("refused"),
        "{}",
        text(&anonymous.stderr)
    );

    let secret = etc.path().join("secret");
    std::fs::write(&secret, "s3cret\n").unwrap();
    ok(&push(&[
        "--identity",
        "site-a",
        "--secret-file",
        secret.to_str().unwrap(),
        &from,
        &to,
    ]));
    assert_eq!(
        std::fs::read(dst.path().join("d/f")).unwrap(),
        b"authenticated"
    );
    server.kill();
}

#[test]
fn rate_caps_the_transfer_and_bad_rates_are_refused() {
    let src = TempDir::new("cli-rate-src");
    let dst = TempDir::new("cli-rate-dst");
    // 6 MB at 4 MB/s: at least ~1.5 s once the bucket's first 200 KB are spent. Load on
    // the machine can only make it slower, so the bound cannot flake.
    std::fs::write(src.path().join("paced.bin"), random_bytes(3, 6_000_000)).unwrap();
    let server = ServeProcess::start(dst.path());
    let from = format!("{}/", src.path().display());
    let to = format!("{}:/paced", server.addr);
    let started = std::time::Instant::now();
    ok(&push(&[
        "--rate",
        "32Mbit",
        "--block-size",
        "1M",
        &from,
        &to,
    ]));
    let took = started.elapsed();
    assert!(took.as_secs_f64() >= 1.4, "6 MB at 4 MB/s took {took:?}");
    assert_same_tree(src.path(), &dst.path().join("paced"));

    let out = push(&["--rate", "fast", &from, &to]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("is not a rate"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn congestion_control_is_applied_or_refused_in_one_line() {
    let src = TempDir::new("cli-cc-src");
    let dst = TempDir::new("cli-cc-dst");
    std::fs::write(src.path().join("a.bin"), random_bytes(9, 300_000)).unwrap();
    let server = ServeProcess::start(dst.path());
    let from = format!("{}/", src.path().display());
    let to = format!("{}:/cc", server.addr);
    // Reno is built into every Linux kernel: setting it on each trunk socket must work.
    ok(&push(&["--congestion", "reno", &from, &to]));
    assert_same_tree(src.path(), &dst.path().join("cc"));

    let out = push(&["--congestion", "no-such-cc", &from, &to]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("not available here"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

/// Log-like text that lz4 shrinks to about a third.
fn log_lines(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 128);
    let mut i = 0u64;
    while out.len() < len {
        i += 1;
        out.extend_from_slice(
            format!(
                "2026-12-02T14:{:02}:{:02}.{:03}Z INFO request id={} path=/api/v1/items/{} status=200\n",
                i / 60_000 % 60,
                i / 1000 % 60,
                i % 1000,
                i * 7919 % 1_000_003,
                i % 9973
            )
            .as_bytes(),
        );
    }
    out.truncate(len);
    out
}

fn push_report(args: &[&str]) -> serde_json::Value {
    let reports = TempDir::new("cli-compress-report");
    let json = reports.path().join("r.json");
    let mut all = vec!["--json", json.to_str().unwrap()];
    all.extend_from_slice(args);
    ok(&push(&all));
    serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap()
}

/// `lz4` compresses text on the wire and `off` does not; `auto`, on a transfer whose
/// rate lz4 could not raise (a `--rate` cap counts bytes before compression), measures,
/// tries compression, finds it does not deliver and turns it off again. Every run ends
/// byte-identical.
#[test]
fn compress_lz4_off_and_auto_behave_as_documented() {
    let src = TempDir::new("cli-compress-src");
    let dst = TempDir::new("cli-compress-dst");
    std::fs::write(src.path().join("app.log"), log_lines(6 << 20)).unwrap();
    let server = ServeProcess::start(dst.path());
    let from = format!("{}/", src.path().display());
    // lz4 on the default threads, on three, and on the sending thread (0).
    for (policy, threads, at_most, at_least) in [
        ("lz4", None, 0.6, 0.0),
        ("lz4", Some("3"), 0.6, 0.0),
        ("lz4", Some("0"), 0.6, 0.0),
        ("off", None, 1.01, 0.99),
    ] {
        let name = format!("{policy}{}", threads.unwrap_or(""));
        let to = format!("{}:/{name}", server.addr);
        let mut args = vec!["--compress", policy, "--block-size", "1M", &from, &to];
        if let Some(threads) = threads {
            args.extend(["--compress-threads", threads]);
        }
        let report = push_report(&args);
        let ratio = report["end"]["compression_ratio"].as_f64().unwrap();
        assert!(
            (at_least..=at_most).contains(&ratio),
            "{name}: compression ratio {ratio}"
        );
        assert!(report["end"]["compress_auto"].is_null(), "{name}");
        assert_same_tree(src.path(), &dst.path().join(&name));
    }

    // 24 MB at 6 MB/s: 4 s, time for auto's measurements (about 3 s).
    std::fs::write(src.path().join("app.log"), log_lines(24 << 20)).unwrap();
    let to = format!("{}:/auto", server.addr);
    let report = push_report(&[
        "--compress",
        "auto",
        "--rate",
        "6M",
        "--block-size",
        "1M",
        &from,
        &to,
    ]);
    let auto = &report["end"]["compress_auto"];
    assert!(auto.is_object(), "{report}");
    assert_eq!(auto["compress"].as_bool(), Some(false), "{auto}");
    let raw = auto["raw_bytes_per_sec"].as_f64().unwrap();
    assert!(
        (3e6..9e6).contains(&raw),
        "the cap is what was measured: {auto}"
    );
    assert!(auto["lz4_ratio"].as_f64().unwrap() < 0.6, "{auto}");
    // Whether lz4 was tried depends on its speed in this build; if it was, it did not
    // beat the cap.
    if let Some(compressed) = auto["compressed_bytes_per_sec"].as_f64() {
        assert!(compressed < 1.1 * raw, "{auto}");
    }
    assert_same_tree(src.path(), &dst.path().join("auto"));
}
