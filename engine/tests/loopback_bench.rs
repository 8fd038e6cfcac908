//! `hawser bench` end to end (short runs): the JSON fields and the `.hgrm` file.

use std::process::Command;

fn hawser() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hawser"))
}

#[test]
fn bench_rpc_json_and_histogram() {
    let dir = std::env::temp_dir().join(format!("hawser-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let hgrm = dir.join("rpc.hgrm");
    let out = hawser()
        .args([
            "bench",
            "--mode",
            "rpc",
            "--duration",
            "0.3",
            "--json",
            "--histogram",
        ])
        .arg(&hgrm)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["exchanges_per_sec"].as_f64().unwrap() > 0.0);
    assert!(v["throughput_bytes_per_sec"].as_f64().unwrap() > 0.0);
    for p in ["p50", "p90", "p99", "p999", "max"] {
        assert!(v["latency_ns"][p].as_u64().unwrap() > 0, "{p}");
    }
    let text = std::fs::read_to_string(&hgrm).unwrap();
    assert!(text.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)"));
    assert!(text.contains("#[Max     ="));
    assert!(text.contains("#[Buckets ="));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bench_bulk_with_digest_and_pipelined_rpc() {
    let out = hawser()
        .args([
            "bench",
            "--mode",
            "bulk",
            "--digest",
            "--duration",
            "0.3",
            "--connections",
            "2",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("hawser bench bulk: 1048576 B requests"),
        "{text}"
    );
    let out = hawser()
        .args([
            "bench",
            "--mode",
            "rpc",
            "--pipeline",
            "64",
            "--shards",
            "1",
            "--duration",
            "0.3",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["pipeline"].as_u64(), Some(64));
    assert_eq!(v["errors"].as_u64(), Some(0));
}
