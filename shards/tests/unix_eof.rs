//! Regression test: Unix stream connections carrying bulk data between shards must all
//! see their peer's end of stream.
//!
//! A multishot receive on a Unix stream socket could miss it on Linux 6.18: after a read
//! that left the socket empty (a Unix socket reports the bytes left since 6.17) the
//! receive went back to waiting, the wake-up of the peer's shutdown had already been
//! counted as consumed, and the receive waited forever on a socket at end of stream. It
//! showed at the end of long transfers with both shards busy sending and receiving (a
//! connection in a few hundred), never over TCP. The shards now receive on Unix stream
//! sockets with single-shot receives.

use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam::channel;
use hawser_shards::demo::{BulkSink, BulkSource, SinkReport};
use hawser_shards::{Shards, ShardsConfig};

/// Bytes per connection: the stall needs transfers long enough for the receiving shard to
/// fall behind (4 MiB ones never showed it, 32 MiB ones about one in 500).
const PER_CONNECTION: u64 = 32 << 20;

#[test]
fn unix_bulk_connections_both_ways_all_reach_end_of_stream() {
    let base = std::env::temp_dir().join(format!("hawser-unix-eof-{}", std::process::id()));
    let paths = [base.with_extension("0.sock"), base.with_extension("1.sock")];
    let shards = Shards::start(ShardsConfig {
        shards: 2,
        ..ShardsConfig::default()
    })
    .unwrap();
    let (tx, rx) = channel::unbounded::<SinkReport>();
    for (shard, path) in paths.iter().enumerate() {
        let _ = std::fs::remove_file(path);
        let tx = tx.clone();
        shards
            .listen_unix(shard, path, move |_| BulkSink::new(false, Some(tx.clone())))
            .unwrap();
    }
    let body = Bytes::from(vec![7u8; 1 << 20]);
    let started = Instant::now();
    let mut done = 0;
    // A budget in connections and in time, whichever runs out first.
    while done < 4000 && started.elapsed() < Duration::from_secs(15) {
        // One connection each way, so that each shard sends and receives at once.
        for from in 0..2 {
            let source = BulkSource::new(body.clone(), PER_CONNECTION);
            shards.connect_unix(from, &paths[1 - from], source).unwrap();
        }
        for _ in 0..2 {
            let report = rx.recv_timeout(Duration::from_secs(5)).unwrap_or_else(|_| {
                panic!("after {done} connections: a sink never saw its peer's end of stream")
            });
            assert_eq!(report.bytes, PER_CONNECTION);
            done += 1;
        }
    }
    shards.shutdown();
    for path in &paths {
        let _ = std::fs::remove_file(path);
    }
}
