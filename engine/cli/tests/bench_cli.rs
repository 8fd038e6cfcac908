//! `hawser bench` end to end (short runs): the JSON fields and the `.hgrm` file.

use std::process::Command;

/// Runs `hawser bench ARGS`, which must succeed; its standard output.
fn bench(args: &[&str]) -> Vec<u8> {
    let out = Command::new(env!("CARGO_BIN_EXE_hawser"))
        .arg("bench")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// [`bench`] with `--json`: the report.
fn bench_json(args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.push("--json");
    serde_json::from_slice(&bench(&all)).unwrap()
}

#[test]
fn bench_rpc_json_and_histogram() {
    let dir = std::env::temp_dir().join(format!("hawser-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let hgrm = dir.join("rpc.hgrm");
    let svg = dir.join("rpc.svg");
    let v = bench_json(&[
        "--mode",
        "rpc",
        "--duration",
        "0.3",
        "--histogram",
        hgrm.to_str().unwrap(),
        "--plot",
        svg.to_str().unwrap(),
    ]);
    assert!(v["exchanges_per_sec"].as_f64().unwrap() > 0.0);
    assert!(v["throughput_bytes_per_sec"].as_f64().unwrap() > 0.0);
    for p in ["p50", "p90", "p99", "p999", "max"] {
        assert!(v["latency_ns"][p].as_u64().unwrap() > 0, "{p}");
    }
    let text = std::fs::read_to_string(&hgrm).unwrap();
    assert!(text.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)"));
    assert!(text.contains("#[Max     ="));
    assert!(text.contains("#[Buckets ="));
    let plot = std::fs::read_to_string(&svg).unwrap();
    assert!(plot.starts_with("<svg") && plot.trim_end().ends_with("</svg>"));
    assert!(plot.contains("<polyline") && plot.contains("99%"), "{plot}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bench_bulk_with_digest_and_pipelined_rpc() {
    let out = bench(&[
        "--mode",
        "bulk",
        "--digest",
        "--duration",
        "0.3",
        "--connections",
        "2",
    ]);
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.contains("hawser bench bulk: 1048576 B requests"),
        "{text}"
    );
    let v = bench_json(&[
        "--mode",
        "rpc",
        "--pipeline",
        "64",
        "--shards",
        "1",
        "--duration",
        "0.3",
    ]);
    assert_eq!(v["pipeline"].as_u64(), Some(64));
    assert_eq!(v["errors"].as_u64(), Some(0));
}

/// `--json` carries iperf3-like intervals from the first call: contiguous, each with the
/// bytes completed in it, and together at least the measured part's bytes.
#[test]
fn bench_json_has_contiguous_intervals_covering_the_run() {
    let v = bench_json(&["--mode", "bulk", "--duration", "1.2", "--connections", "2"]);
    let intervals = v["intervals"].as_array().expect("intervals");
    assert!(intervals.len() >= 2, "{intervals:?}");
    let mut previous_end = 0.0;
    let mut bytes = 0;
    for i in intervals {
        let (start, end) = (i["start"].as_f64().unwrap(), i["end"].as_f64().unwrap());
        assert!(
            (start - previous_end).abs() < 1e-9,
            "contiguous: {intervals:?}"
        );
        assert!(end > start);
        assert!(i["bits_per_second"].as_f64().unwrap() > 0.0, "{i}");
        bytes += i["bytes"].as_u64().unwrap();
        previous_end = end;
    }
    let measured = v["exchanges"].as_u64().unwrap() * v["size"].as_u64().unwrap();
    // The intervals start with the warm-up and end at the last sample before the stop,
    // at most one interval short of the end.
    let last_interval_bytes = intervals.last().unwrap()["bytes"].as_u64().unwrap();
    assert!(
        bytes + 2 * last_interval_bytes >= measured,
        "{bytes} B in intervals, {measured} B measured"
    );
}

/// `--congestion` reaches the report of the session and raw modes (reno is built into
/// every Linux kernel), an unknown name is a usage error that says what is available,
/// and a raw run sizes itself to about `--duration` whatever the machine's rate.
#[test]
fn bench_congestion_option_and_raw_duration() {
    for mode in ["bulk", "raw"] {
        let v = bench_json(&[
            "--mode",
            mode,
            "--connections",
            "2",
            "--duration",
            "0.5",
            "--congestion",
            "reno",
        ]);
        assert_eq!(v["congestion"].as_str(), Some("reno"), "{mode}");
        assert!(v["throughput_bytes_per_sec"].as_f64().unwrap() > 0.0);
        if mode == "raw" {
            let secs = v["duration_sec"].as_f64().unwrap();
            assert!((0.1..5.0).contains(&secs), "raw measured {secs} s for 0.5");
        }
    }
    let out = Command::new(env!("CARGO_BIN_EXE_hawser"))
        .args(["bench", "--mode", "raw", "--congestion", "no-such-cc"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no-such-cc") && stderr.contains("available"),
        "{stderr}"
    );
}

/// `--mode raw --answers`: sinks answer 40 bytes per MiB and every byte still arrives
/// (the run fails on a short count), and the report says so.
#[test]
fn bench_raw_with_answering_sinks() {
    let v = bench_json(&[
        "--mode",
        "raw",
        "--answers",
        "--connections",
        "2",
        "--duration",
        "0.3",
    ]);
    assert_eq!(v["answers"].as_bool(), Some(true));
    assert!(v["throughput_bytes_per_sec"].as_f64().unwrap() > 0.0);
    let out = bench(&["--mode", "raw", "--answers", "--duration", "0.2"]);
    assert!(
        String::from_utf8_lossy(&out).contains(", answering:"),
        "{}",
        String::from_utf8_lossy(&out)
    );
}
