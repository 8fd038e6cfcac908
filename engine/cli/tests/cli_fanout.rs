//! `hawser push SRC... hostA:dst hostB:dst`: one push to several `hawser serve`
//! processes over loopback. Every copy byte-identical, each source block read once (the
//! JSON report's shared-read figures against each target's blocks), and a target that
//! is refused, unreachable or killed mid-run reported while the others complete.

mod support;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::{
    ServeProcess, TempDir, assert_same_tree, assert_succeeded, build_tree, hawser, random_bytes,
    text,
};

/// `hawser push ARGS...` with its report on stdout.
fn push_reporting(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hawser"))
        .args(["push", "--connections", "2"])
        .args(args)
        .output()
        .unwrap()
}

fn json_of(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A loopback port nothing listens on (bound and released).
fn refusing_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_tree_goes_to_two_servers_byte_identical_each_block_read_once() {
    let src = TempDir::new("fanout-src");
    let (root_a, root_b) = (TempDir::new("fanout-a"), TempDir::new("fanout-b"));
    let reports = TempDir::new("fanout-reports");
    let block = 256 * 1024;
    // Every kind of entry, a file of five blocks and a tail, a sparse file.
    build_tree(src.path(), block);
    let (a, b) = (
        ServeProcess::start(root_a.path()),
        ServeProcess::start(root_b.path()),
    );
    let json = reports.path().join("fanout.json");
    let hgrm = reports.path().join("fanout.hgrm");
    let from = format!("{}/", src.path().display());
    let out = push_reporting(&[
        "--block-size",
        "256K",
        "--window",
        "3",
        "--json",
        json.to_str().unwrap(),
        "--histogram",
        hgrm.to_str().unwrap(),
        &from,
        &format!("{}:/replica", a.addr),
        &format!("{}:copies/", b.addr),
    ]);
    assert_succeeded(&out, "push to two targets");
    assert_same_tree(src.path(), &root_a.path().join("replica"));
    assert_same_tree(src.path(), &root_b.path().join("copies"));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("target 1 of 2"), "{stdout}");
    assert!(stdout.contains("target 2 of 2"), "{stdout}");
    assert!(
        stdout.contains("2 targets: 2 completed, 0 failed"),
        "{stdout}"
    );

    let report = json_of(&json);
    let shared = &report["fanout"];
    let blocks_read = shared["blocks_read"].as_u64().unwrap();
    // large.bin alone is six blocks.
    assert!(blocks_read >= 6, "{report}");
    for target in report["targets"].as_array().unwrap() {
        assert_eq!(target["ok"], true, "{target}");
        // Each target got every block the reader read, which read each one once.
        assert_eq!(
            target["end"]["blocks"].as_u64(),
            Some(blocks_read),
            "{report}"
        );
        assert_eq!(target["end"]["retries"].as_u64(), Some(0));
        assert!(target["end"]["files"].as_u64().unwrap() >= 300);
    }
    // Memory: the window's blocks, shared by both targets.
    assert!(
        shared["most_blocks_held"].as_u64().unwrap() <= 3,
        "{report}"
    );
    assert!(
        shared["buffers_allocated"].as_u64().unwrap() <= 3,
        "{report}"
    );
    let bytes_read = shared["bytes_read"].as_u64().unwrap();
    let total = report["targets"][0]["end"]["bytes_total"].as_u64().unwrap();
    assert!(
        bytes_read > 5 * block as u64 && bytes_read <= total,
        "{report}"
    );
    assert!(
        std::fs::read_to_string(&hgrm)
            .unwrap()
            .contains("Percentile")
    );

    // Again: both up to date, nothing read.
    let again = reports.path().join("again.json");
    let out = hawser(
        "push",
        &[
            "--json",
            again.to_str().unwrap(),
            &from,
            &format!("{}:/replica", a.addr),
            &format!("{}:copies/", b.addr),
        ],
    );
    assert_succeeded(&out, "second push to two targets");
    let report = json_of(&again);
    assert_eq!(report["fanout"]["bytes_read"].as_u64(), Some(0), "{report}");
    for target in report["targets"].as_array().unwrap() {
        assert_eq!(target["end"]["bytes"].as_u64(), Some(0), "{target}");
    }
}

#[test]
fn refused_and_unreachable_targets_are_reported_and_the_other_completes() {
    let src = TempDir::new("fanout-src");
    let (root_a, root_b) = (TempDir::new("fanout-a"), TempDir::new("fanout-b"));
    std::fs::write(src.path().join("data.bin"), random_bytes(21, 700_000)).unwrap();
    std::fs::write(src.path().join("note"), b"note").unwrap();
    let (a, b) = (
        ServeProcess::start(root_a.path()),
        ServeProcess::start(root_b.path()),
    );
    let nowhere = format!("127.0.0.1:{}:x", refusing_port());
    let escaping = format!("{}:../outside", b.addr);
    let from = format!("{}/", src.path().display());
    let out = push_reporting(&[
        "--block-size",
        "128K",
        &from,
        &escaping,
        &nowhere,
        &format!("{}:good", a.addr),
    ]);
    assert!(!out.status.success(), "a failed target fails the run");
    assert_same_tree(src.path(), &root_a.path().join("good"));
    assert!(!root_b.path().parent().unwrap().join("outside").exists());

    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        stdout.contains("3 targets: 1 completed, 2 failed"),
        "{stdout}"
    );
    assert!(stderr.contains("2 of 3 targets failed"), "{stderr}");
    // Each failed target named, with why.
    assert!(
        stderr.contains(&escaping) && stderr.contains("refused"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&nowhere) && stderr.contains("cannot connect"),
        "{stderr}"
    );
    assert!(!stderr.contains(&format!("{}:good (", a.addr)), "{stderr}");
}

#[test]
fn a_target_killed_mid_run_fails_alone() {
    let src = TempDir::new("fanout-src");
    let (root_a, root_b) = (TempDir::new("fanout-a"), TempDir::new("fanout-b"));
    let reports = TempDir::new("fanout-reports");
    let total = 40usize << 20;
    std::fs::write(src.path().join("big"), random_bytes(22, total)).unwrap();
    let a = ServeProcess::start(root_a.path());
    let mut b = ServeProcess::start(root_b.path());
    let json = reports.path().join("killed.json");
    let from = format!("{}/", src.path().display());
    // Paced, so that the push is still running when the second server dies.
    let push = Command::new(env!("CARGO_BIN_EXE_hawser"))
        .args([
            "push",
            "--quiet",
            "--connections",
            "2",
            "--block-size",
            "1M",
        ])
        .args(["--rate", "20M", "--timeout", "2", "--json"])
        .arg(&json)
        .arg(&from)
        .arg(format!("{}:r", a.addr))
        .arg(format!("{}:r", b.addr))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let journal = root_b.path().join("r/.hawser-partial/big.journal");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::metadata(&journal).map_or(0, |m| m.len()) < 64 {
        assert!(
            Instant::now() < deadline,
            "no progress on the second target"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    b.kill();
    let out = push.wait_with_output().unwrap();
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("1 of 2 targets failed"), "{stderr}");
    assert!(stderr.contains("--resume"), "{stderr}");
    assert_same_tree(src.path(), &root_a.path().join("r"));
    let report = json_of(&json);
    assert_eq!(report["targets"][0]["ok"], true, "{report}");
    assert_eq!(report["targets"][1]["ok"], false, "{report}");
    assert_eq!(
        report["fanout"]["bytes_read"].as_u64(),
        Some(total as u64),
        "the survivor's blocks were read once: {report}"
    );
}

#[test]
fn dtp_refuses_several_targets_in_words() {
    let src = TempDir::new("fanout-src");
    std::fs::write(src.path().join("f"), b"data").unwrap();
    let from = src.path().join("f");
    let out = hawser(
        "push",
        &[
            "--transport",
            "dtp",
            from.to_str().unwrap(),
            "127.0.0.1:1:a",
            "127.0.0.1:2:b",
        ],
    );
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("--transport tcp"), "{stderr}");
}
