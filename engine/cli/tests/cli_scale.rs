//! Many nexuses on one `hawser serve`: what each costs the server (its RSS, read from
//! /proc), and that a thousand of them calling at once are all answered.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use hawser_runtime::{Address, Client, ClientOptions, ExchangeId, Runtime};
use support::{ServeProcess, TempDir};

fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// The control plane's exchange and a `hawser.jobs` call (cheap, answered by the server).
const CONTROL: ExchangeId = ExchangeId(0x4444_4601);

fn jobs_request() -> Bytes {
    Bytes::from_static(b"hawser.jobs 4 0\n")
}

/// Opens `count` nexuses (one connection each) on one serve of `shards` shards, then has
/// `active` of them call at once; returns the server's RSS growth per nexus in bytes.
fn nexuses_on_one_serve(count: usize, active: usize, shards: &str) -> u64 {
    let dir = TempDir::new("cli-scale");
    let limit = (count + 100).to_string();
    let server = ServeProcess::start_with(
        dir.path(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--max-nexuses",
            &limit,
            "--max-connections-per-address",
            &limit,
            "--max-handshakes",
            &limit,
            "--shards",
            shards,
        ],
        1,
    );
    let pid = server.child.id();
    let address = Address::parse(&server.addr).unwrap();
    let runtime = Runtime::new(1).unwrap();
    let options = || ClientOptions {
        connections: 1,
        connect_timeout: Duration::from_secs(20),
        ..ClientOptions::default()
    };
    // One nexus first, so the baseline has the server's first-use allocations.
    let first = Client::connect_to_with(&address, options(), &runtime, 0).unwrap();
    first.call(CONTROL, jobs_request()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let baseline = resident_kib(pid);
    let started = Instant::now();
    let clients: Vec<Client> = (1..count)
        .map(|i| {
            if i % 1000 == 0 {
                eprintln!("{i} nexuses after {:.1} s", started.elapsed().as_secs_f64());
            }
            Client::connect_to_with(&address, options(), &runtime, 0).unwrap()
        })
        .collect();
    let opened = started.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    let grown_kib = resident_kib(pid).saturating_sub(baseline);
    let per_nexus = grown_kib * 1024 / count as u64;
    // `active` of them call at once: every call is answered.
    let calls: Vec<_> = clients
        .iter()
        .take(active)
        .map(|c| c.start_call(CONTROL, jobs_request()))
        .collect();
    for call in calls {
        let answer = call.wait().unwrap();
        assert!(answer.starts_with(b"hawser.jobs 4 2\n"));
    }
    // The control plane counts them all.
    let stats = first
        .call(CONTROL, Bytes::from_static(b"hawser.stats 4 0\n"))
        .unwrap();
    let needle = format!("nexus_count 8 {count}\n");
    assert!(
        stats.windows(needle.len()).any(|w| w == needle.as_bytes()),
        "the server does not count {count} nexuses"
    );
    eprintln!(
        "{count} nexuses opened in {:.1} s; the server grew {grown_kib} KiB: {per_nexus} bytes per nexus with its connection; {active} called at once",
        opened.as_secs_f64()
    );
    drop(clients);
    drop(first);
    per_nexus
}

#[test]
fn two_thousand_nexuses_on_two_shards_cost_bounded_memory_and_answer_at_once() {
    let per_nexus = nexuses_on_one_serve(2_000, 1_000, "2");
    assert!(per_nexus < 96 * 1024, "{per_nexus} bytes per nexus");
}

#[test]
#[ignore = "stress: 10,000 nexuses on one serve (about a minute)"]
fn ten_thousand_nexuses_cost_bounded_memory_and_a_thousand_answer_at_once() {
    let per_nexus = nexuses_on_one_serve(10_000, 1_000, "1");
    assert!(per_nexus < 96 * 1024, "{per_nexus} bytes per nexus");
}
