//! Many idle connections, over several rounds: what they cost the server while open and
//! that the memory comes back once they close (this process's RSS, the server being in
//! it). Found: 2,000 idle connections cost 80 KiB each and the memory never came back;
//! then a flood of connections refused by the per-address limit piled up wake-ups in the
//! shard's inbox, whose storage never shrinks.

use std::net::TcpStream;
use std::time::Duration;

use hawser_runtime::{ServerBuilder, ServerLimits};

fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Opens `count` connections that say nothing, holds them, closes them; returns the RSS
/// growth (KiB) while they were open.
fn idle_round(addr: std::net::SocketAddr, count: usize, baseline: u64) -> u64 {
    let open: Vec<_> = (0..count)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(800));
    let grown = resident_kib().saturating_sub(baseline);
    drop(open);
    std::thread::sleep(Duration::from_millis(800));
    grown
}

#[test]
fn idle_connections_cost_little_and_their_memory_comes_back() {
    // Every connection accepted and held (limits raised), then a server with its
    // default limits refusing all but 64 of each round.
    let generous = ServerLimits {
        connections_per_address: 10_000,
        handshakes_in_progress: 10_000,
        ..ServerLimits::default()
    };
    for (limits, per_connection_kib) in [(generous, 24), (ServerLimits::default(), 8)] {
        let server = ServerBuilder::new()
            .limits(limits)
            .listen("127.0.0.1:0")
            .unwrap();
        let addr = server.local_addr();
        std::thread::sleep(Duration::from_millis(200));
        let baseline = resident_kib();
        let mut peak = 0;
        for _ in 0..4 {
            peak = peak.max(idle_round(addr, 1500, baseline));
        }
        assert!(
            peak < 1500 * per_connection_kib + 4096,
            "1,500 idle connections grew the process by {peak} KiB ({limits:?})"
        );
        // Idle handler threads give freed memory back within a few seconds.
        std::thread::sleep(Duration::from_secs(6));
        let after = resident_kib().saturating_sub(baseline);
        assert!(
            after < 8 * 1024,
            "{after} KiB still held after four rounds closed ({limits:?})"
        );
    }
}
