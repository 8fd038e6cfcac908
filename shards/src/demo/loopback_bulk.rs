//! A loopback bulk run of shards with nothing above the transport: [`BulkSource`]s stream
//! one shared 1 MiB body into [`BulkSink`]s over TCP, Unix sockets or shared memory, and
//! the rate is the bytes received over the time from the first connect to the last report.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{BulkSink, BulkSource};
use crate::{Result, ShardError, Shards, ShardsConfig};

/// What to run.
#[derive(Debug, Clone)]
pub struct LoopbackBulk {
    /// Connections, opened round-robin from the shards.
    pub connections: usize,
    /// Bytes in all (split evenly over the connections).
    pub bytes: u64,
    /// xxh3 over every received byte (the CPU-bound variant).
    pub digest: bool,
    /// Both ends of each connection on one shard (`true`), or each connection from a
    /// shard to the next (`false`: every byte crosses cores).
    pub local: bool,
    /// Each sink sends 40 bytes back per MiB received ([`BulkSink::answering`]): the
    /// traffic shape of a session's bulk requests and answers.
    pub answers: bool,
}

/// What carries a [`loopback_bulk_over`] run's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoopbackTransport {
    /// TCP over the loopback interface.
    Tcp,
    /// Unix stream sockets.
    Unix,
    /// Shared-memory links ([`Shards::listen_shm`]; ring size from the configuration).
    Shm,
}

/// Where a shard listens for a run (a socket file is removed with it).
enum Endpoint {
    Tcp(SocketAddr),
    Path(PathBuf),
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        if let Endpoint::Path(path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Starts `config`'s shards (each listening on its own port), moves `run.bytes` over TCP
/// and returns bytes per second, from the first connect to the last sink's report.
pub fn loopback_bulk(config: ShardsConfig, run: &LoopbackBulk) -> Result<f64> {
    loopback_bulk_over(config, run, LoopbackTransport::Tcp)
}

/// [`loopback_bulk`] over the transport named: each shard listens on its own port or
/// socket path.
pub fn loopback_bulk_over(
    config: ShardsConfig,
    run: &LoopbackBulk,
    transport: LoopbackTransport,
) -> Result<f64> {
    let shards = Shards::start(config)?;
    let count = shards.len();
    let (tx, rx) = crossbeam::channel::unbounded();
    let mut endpoints: Vec<Endpoint> = Vec::with_capacity(count);
    for shard in 0..count {
        let tx = tx.clone();
        let (digest, answers) = (run.digest, run.answers);
        let factory = move |_| {
            let sink = BulkSink::new(digest, Some(tx.clone()));
            if answers { sink.answering() } else { sink }
        };
        endpoints.push(match transport {
            LoopbackTransport::Tcp => Endpoint::Tcp(shards.listen_tcp_on(
                shard,
                SocketAddr::from(([127, 0, 0, 1], 0)),
                factory,
            )?),
            LoopbackTransport::Unix | LoopbackTransport::Shm => {
                static RUN: AtomicU64 = AtomicU64::new(0);
                let path = std::env::temp_dir().join(format!(
                    "hawser-bulk-{}-{}-{shard}.sock",
                    std::process::id(),
                    RUN.fetch_add(1, Ordering::Relaxed)
                ));
                let _ = std::fs::remove_file(&path);
                if transport == LoopbackTransport::Unix {
                    shards.listen_unix(shard, &path, factory)?;
                } else {
                    shards.listen_shm(shard, &path, factory)?;
                }
                Endpoint::Path(path)
            }
        });
    }
    let body = Bytes::from(
        (0..1usize << 20)
            .map(|i| (i * 31 % 251) as u8)
            .collect::<Vec<u8>>(),
    );
    let connections = run.connections.max(1);
    let per_connection = run.bytes / connections as u64;
    let start = Instant::now();
    for i in 0..connections {
        let from = i % count;
        let to = if run.local { from } else { (from + 1) % count };
        let source = if run.answers {
            BulkSource::new(body.clone(), per_connection).expecting_answers()
        } else {
            BulkSource::new(body.clone(), per_connection)
        };
        match (&endpoints[to], transport) {
            (Endpoint::Tcp(addr), _) => shards.connect_tcp(from, *addr, source)?,
            (Endpoint::Path(path), LoopbackTransport::Unix) => {
                shards.connect_unix(from, path, source)?
            }
            (Endpoint::Path(path), _) => shards.connect_shm(from, path, source)?,
        };
    }
    let mut bytes = 0;
    for _ in 0..connections {
        let report = rx.recv_timeout(Duration::from_secs(300)).map_err(|_| {
            ShardError::io(
                "waiting for the bulk sinks",
                std::io::ErrorKind::TimedOut.into(),
            )
        })?;
        bytes += report.bytes;
    }
    let elapsed = start.elapsed();
    shards.shutdown();
    let sent = per_connection * connections as u64;
    if bytes != sent {
        // A rate over bytes that did not all arrive would flatter the run.
        return Err(ShardError::io(
            "the bulk sinks' byte count",
            std::io::Error::other(format!("received {bytes} of {sent} bytes")),
        ));
    }
    Ok(bytes as f64 / elapsed.as_secs_f64())
}
