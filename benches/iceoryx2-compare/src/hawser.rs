//! hawser's side: the loopback bulk demo over shared-memory links and Unix sockets, and a
//! 64-byte ping-pong between two shards through the public API.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::time::{Duration, Instant};

use hawser_shards::demo::{Echo, LoopbackBulk, LoopbackTransport, loopback_bulk_over};
use hawser_shards::{ConnId, Protocol, Received, Shards, ShardsConfig, Transmit};

use crate::{MSG, Res, WithContext};

/// Bytes per second of one stream of `bytes` from shard 0 to shard 1 over `transport`: a
/// [`hawser_shards::demo::BulkSource`] repeats a 1 MiB body (copied into the ring, or
/// into the socket, by the sending shard) and a sink counts what the receiving shard
/// copied out of the ring into its pool buffers, without reading it.
pub(crate) fn bulk(transport: LoopbackTransport, bytes: u64) -> Res<f64> {
    let run = LoopbackBulk {
        connections: 1,
        bytes,
        digest: false,
        local: false,
        answers: false,
    };
    let config = ShardsConfig {
        shards: 2,
        ..ShardsConfig::default()
    };
    loopback_bulk_over(config, &run, transport).ctx("hawser loopback bulk")
}

/// Which socket a ping-pong runs over.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Link {
    Shm,
    Unix,
}

/// Mean round trip of a 64-byte message from shard 1 to an [`Echo`] on shard 0 and back,
/// over `rounds` exchanges after `warmup` untimed ones. `busy_poll`: the shards spin
/// before parking (`None`: they park at once and the peer rings their doorbell).
pub(crate) fn ping_pong(
    link: Link,
    busy_poll: Option<Duration>,
    warmup: u64,
    rounds: u64,
) -> Res<Duration> {
    static RUN: AtomicU64 = AtomicU64::new(0);
    let config = ShardsConfig {
        shards: 2,
        busy_poll,
        ..ShardsConfig::default()
    };
    let shards = Shards::start(config).ctx("starting the shards")?;
    let path = SocketFile(std::env::temp_dir().join(format!(
        "hawser-iceoryx2-compare-{}-{}.sock",
        std::process::id(),
        RUN.fetch_add(1, Ordering::Relaxed)
    )));
    let (tx, rx) = mpsc::channel();
    let client = PingPong::new(warmup, rounds, tx);
    match link {
        Link::Shm => {
            shards
                .listen_shm(0, &path.0, |_| Echo::new())
                .ctx("listen_shm")?;
            shards.connect_shm(1, &path.0, client).ctx("connect_shm")?;
        }
        Link::Unix => {
            shards
                .listen_unix(0, &path.0, |_| Echo::new())
                .ctx("listen_unix")?;
            shards
                .connect_unix(1, &path.0, client)
                .ctx("connect_unix")?;
        }
    }
    let result = rx
        .recv_timeout(Duration::from_secs(120))
        .ctx("waiting for the ping-pong");
    shards.shutdown();
    let elapsed = result??;
    Ok(elapsed / rounds as u32)
}

/// Removes the rendezvous socket file however the run ends.
struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Sends a 64-byte message carrying a counter, waits for all of it to come back, checks
/// the counter and sends the next; reports the time of the last `rounds` exchanges.
struct PingPong {
    warmup: u64,
    rounds: u64,
    /// Messages sent so far (the counter of the one in flight is `sent - 1`).
    sent: u64,
    pending: Vec<u8>,
    received: Vec<u8>,
    started: Option<Instant>,
    done: Option<Sender<Res<Duration>>>,
}

impl PingPong {
    fn new(warmup: u64, rounds: u64, done: Sender<Res<Duration>>) -> Self {
        PingPong {
            warmup,
            rounds,
            sent: 0,
            pending: Vec::with_capacity(MSG),
            received: Vec::with_capacity(2 * MSG),
            started: None,
            done: Some(done),
        }
    }

    fn queue_next(&mut self) {
        let mut msg = [0u8; MSG];
        msg[..8].copy_from_slice(&self.sent.to_le_bytes());
        self.pending.extend_from_slice(&msg);
        self.sent += 1;
    }

    fn finish(&mut self, result: Res<Duration>) {
        if let Some(tx) = self.done.take() {
            let _ = tx.send(result);
        }
    }
}

impl Protocol for PingPong {
    fn on_open(&mut self, _now: Instant, _conn: ConnId) {
        if self.warmup == 0 {
            self.started = Some(Instant::now());
        }
        self.queue_next();
    }

    fn handle_input(&mut self, _now: Instant, input: Received<'_>) {
        self.received.extend_from_slice(&input);
        while self.received.len() >= MSG {
            let back = u64::from_le_bytes(self.received[..8].try_into().expect("8 bytes"));
            self.received.drain(..MSG);
            if back != self.sent - 1 {
                let expected = self.sent - 1;
                self.finish(Err(format!("echo {back} came back, expected {expected}")));
                return;
            }
            if self.sent == self.warmup {
                self.started = Some(Instant::now());
            }
            if self.sent == self.warmup + self.rounds {
                let elapsed = self.started.map(|s| s.elapsed()).unwrap_or_default();
                self.finish(Ok(elapsed));
            } else {
                self.queue_next();
            }
        }
    }

    fn poll_transmit(&mut self, _now: Instant, out: &mut Transmit) {
        if !self.pending.is_empty() {
            out.write(&self.pending);
            self.pending.clear();
        }
    }

    fn wants_close(&self) -> bool {
        self.done.is_none()
    }

    fn on_close(&mut self, _now: Instant, reason: &hawser_shards::CloseReason) {
        self.finish(Err(format!("the ping-pong connection closed: {reason:?}")));
    }
}
