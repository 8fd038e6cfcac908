//! `hawser serve` and `hawser pull` as real processes over loopback.

mod support;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output};

use support::{
    SPARSE_SIZE, ServeProcess, TempDir, assert_same_tree, assert_succeeded, build_tree, hawser,
    random_bytes, text,
};

fn pull(args: &[&str]) -> Output {
    hawser("pull", args)
}

fn ok(out: &Output) {
    assert_succeeded(out, "pull");
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn pull_round_trips_a_tree_byte_identical_and_a_checksum_rerun_sends_nothing() {
    let served = TempDir::new("pull-srv");
    let local = TempDir::new("pull-local");
    let reports = TempDir::new("pull-reports");
    let block = 256 * 1024;
    let tree = served.path().join("data");
    std::fs::create_dir(&tree).unwrap();
    build_tree(&tree, block);
    let server = ServeProcess::start(served.path());

    // "data/" copies the contents into a DEST that does not exist yet.
    let copy = local.path().join("copy");
    let first = reports.path().join("first.json");
    let hgrm = reports.path().join("latency.hgrm");
    ok(&pull(&[
        "--block-size",
        "256K",
        "--json",
        first.to_str().unwrap(),
        "--histogram",
        hgrm.to_str().unwrap(),
        &format!("{}:data/", server.addr),
        copy.to_str().unwrap(),
    ]));
    assert_same_tree(&tree, &copy);
    let sparse = std::fs::metadata(copy.join("sparse.img")).unwrap();
    assert_eq!(sparse.len(), SPARSE_SIZE);
    assert!(
        sparse.blocks() * 512 < SPARSE_SIZE / 4,
        "sparse file filled in: {} blocks",
        sparse.blocks()
    );
    let report = json(&first);
    assert!(report["end"]["files"].as_u64().unwrap() >= 300, "{report}");
    assert!(report["end"]["bytes"].as_u64().unwrap() > 5 * block as u64);
    assert!(report["end"]["blocks"].as_u64().unwrap() > 0);
    assert!(report["latency_ns"]["p50"].as_u64().unwrap() > 0);
    assert!(report["intervals"].is_array());
    assert!(
        std::fs::read_to_string(&hgrm)
            .unwrap()
            .contains("Percentile")
    );

    // A second pull with --checksum finds every file's content in place.
    let again = reports.path().join("again.json");
    let out = pull(&[
        "--checksum",
        "--json",
        again.to_str().unwrap(),
        &format!("{}:data/", server.addr),
        copy.to_str().unwrap(),
    ]);
    ok(&out);
    let report = json(&again);
    assert_eq!(report["end"]["bytes"].as_u64(), Some(0), "{report}");
    assert_eq!(report["end"]["blocks"].as_u64(), Some(0), "{report}");
    assert_eq!(report["end"]["files"].as_u64(), Some(0), "{report}");
    assert_same_tree(&tree, &copy);

    // "data" (no '/') creates DEST/data, and the report is printed unless --quiet.
    let out = Command::new(env!("CARGO_BIN_EXE_hawser"))
        .args(["pull", "--block-size", "256K"])
        .arg(format!("{}:data", server.addr))
        .arg(local.path())
        .output()
        .unwrap();
    ok(&out);
    assert_same_tree(&tree, &local.path().join("data"));
    assert!(text(&out.stdout).contains("files"), "{}", text(&out.stdout));
}

#[test]
fn escaping_and_missing_sources_are_refused_with_the_path_named() {
    let served = TempDir::new("pull-srv");
    let local = TempDir::new("pull-local");
    std::fs::create_dir(served.path().join("root")).unwrap();
    std::fs::write(served.path().join("root/f"), b"inside").unwrap();
    std::fs::write(served.path().join("secret"), b"outside the root").unwrap();
    std::os::unix::fs::symlink(served.path(), served.path().join("root/up")).unwrap();
    let server = ServeProcess::start(&served.path().join("root"));
    let dest = local.path().join("dest");
    let dest = dest.to_str().unwrap();

    for (src, expected) in [
        ("../secret", "'..'"),
        ("/etc", "absolute path"),
        ("up/secret", "symlink"),
        ("up/", "symlink"),
    ] {
        let out = pull(&[&format!("{}:{src}", server.addr), dest]);
        assert!(!out.status.success(), "{src} was pulled");
        let err = text(&out.stderr);
        assert!(err.contains(&format!("{src:?}")), "{src}: {err}");
        assert!(err.contains("refused"), "{src}: {err}");
        assert!(err.contains(expected), "{src}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one clear line: {err}");
        assert!(!Path::new(dest).exists(), "{src}: something was written");
    }

    let out = pull(&[&format!("{}:nothing/here", server.addr), dest]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("\"nothing/here\"") && err.contains("no such file"),
        "{err}"
    );

    // The symlink itself (no trailing '/') is an entry like any other: sent, not followed.
    ok(&pull(&[&format!("{}:up", server.addr), dest]));
    assert_eq!(
        std::fs::read_link(Path::new(dest).join("up")).unwrap(),
        served.path()
    );
}

#[test]
fn unreachable_server_is_one_line_and_a_failure() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let local = TempDir::new("pull-local");
    let out = pull(&[
        &format!("127.0.0.1:{port}:x"),
        local.path().to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("refused"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn delete_and_resume_work_with_the_journal_on_the_pulling_side() {
    let served = TempDir::new("pull-srv");
    let local = TempDir::new("pull-local");
    let reports = TempDir::new("pull-reports");
    let total = 24usize << 20;
    std::fs::write(served.path().join("big"), random_bytes(9, total)).unwrap();
    std::fs::write(served.path().join("small"), b"small file").unwrap();
    let copy = local.path().join("copy");
    std::fs::create_dir(&copy).unwrap();
    std::fs::write(copy.join("stale"), b"not on the server").unwrap();
    let mut server = ServeProcess::start(served.path());

    // Kill the server once part of the big file is in the local journal.
    let first = Command::new(env!("CARGO_BIN_EXE_hawser"))
        .args(["pull", "--quiet", "--block-size", "64K", "--timeout", "2"])
        .arg(format!("{}:", server.addr))
        .arg(&copy)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let journal = copy.join(".hawser-partial/big.journal");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::fs::metadata(&journal).map_or(0, |m| m.len()) < 2048 {
        assert!(std::time::Instant::now() < deadline, "no progress");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    server.kill();
    let first = first.wait_with_output().unwrap();
    assert!(!first.status.success(), "the first pull should fail");
    assert!(
        text(&first.stderr).contains("--resume"),
        "{}",
        text(&first.stderr)
    );

    let server = ServeProcess::start(served.path());
    let json_path = reports.path().join("resume.json");
    ok(&pull(&[
        "--resume",
        "--delete",
        "--block-size",
        "64K",
        "--json",
        json_path.to_str().unwrap(),
        &format!("{}:", server.addr),
        copy.to_str().unwrap(),
    ]));
    assert_same_tree(served.path(), &copy);
    let report = json(&json_path);
    let sent = report["end"]["bytes"].as_u64().unwrap();
    assert!(sent < total as u64, "resume sent {sent} of {total}");
    assert_eq!(report["end"]["deleted"].as_u64(), Some(1), "{report}");
}

#[test]
fn rate_paces_the_server_sending_a_pull() {
    let served = TempDir::new("pull-rate-srv");
    let local = TempDir::new("pull-rate-local");
    std::fs::write(
        served.path().join("paced.bin"),
        support::random_bytes(5, 6_000_000),
    )
    .unwrap();
    let server = ServeProcess::start(served.path());
    let started = std::time::Instant::now();
    ok(&pull(&[
        "--rate",
        "4M",
        "--block-size",
        "1M",
        &format!("{}:paced.bin", server.addr),
        local.path().to_str().unwrap(),
    ]));
    // 6 MB at 4 MB/s from the server's source: at least ~1.5 s (load only slows it).
    let took = started.elapsed();
    assert!(took.as_secs_f64() >= 1.4, "6 MB at 4 MB/s took {took:?}");
    assert_eq!(
        std::fs::read(local.path().join("paced.bin")).unwrap(),
        std::fs::read(served.path().join("paced.bin")).unwrap()
    );
}
