//! The callers that keep a bench's calls in flight and time each one: chains of calls
//! started from completions on the client's shard (`--caller shard`), or application
//! threads through the blocking API's pipeline (`--caller thread`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hawser_runtime::{CallError, Client, ExchangeId, ShardCaller};
use hdrhistogram::Histogram;

use crate::histogram::new_latency_histogram;

/// One of the `depth` call chains of [`measure_on_shard`]: each completion records its
/// latency and starts the chain's next call, on the client's shard.
struct Chain {
    caller: ShardCaller,
    exchange: ExchangeId,
    body: Bytes,
    end: Instant,
    done: u64,
    failed: u64,
    /// Chains still running; the last one to finish hands in the shard's histogram.
    running: Arc<AtomicUsize>,
    finished: std::sync::mpsc::Sender<ChainEnd>,
}

/// What a chain reports when it stops: its counts, and from the last chain the latencies
/// of them all.
struct ChainEnd {
    done: u64,
    failed: u64,
    histogram: Option<Histogram<u64>>,
}

thread_local! {
    /// The latencies recorded by the chains, on the client's shard thread: one histogram
    /// that stays in the cache instead of one per chain.
    static SHARD_LATENCIES: RefCell<Option<Histogram<u64>>> = const { RefCell::new(None) };
}

/// Starts `chain`'s next call, whose completion fires the one after; once its time is up,
/// reports the chain instead.
fn fire(mut chain: Box<Chain>) {
    // Read before submitting, as in `measure`.
    let t0 = Instant::now();
    if t0 >= chain.end {
        let histogram = (chain.running.fetch_sub(1, Ordering::AcqRel) == 1)
            .then(|| SHARD_LATENCIES.with_borrow_mut(Option::take))
            .flatten();
        let _ = chain.finished.send(ChainEnd {
            done: chain.done,
            failed: chain.failed,
            histogram,
        });
        return;
    }
    let (caller, body) = (chain.caller.clone(), chain.body.clone());
    caller.call_then(chain.exchange, body, move |result| {
        let latency = t0.elapsed().as_nanos().max(1) as u64;
        SHARD_LATENCIES.with_borrow_mut(|h| {
            h.get_or_insert_with(new_latency_histogram)
                .saturating_record(latency);
        });
        match result {
            Ok(_) => chain.done += 1,
            Err(_) => chain.failed += 1,
        }
        fire(chain);
    });
}

/// Keeps `depth` call chains going on each client's shard for `duration` (each call
/// started by the previous one's completion); returns the latencies, (completed,
/// failed) and the elapsed time.
pub(crate) fn measure_on_shard(
    clients: &[Client],
    exchange: ExchangeId,
    body: &Bytes,
    depth: usize,
    duration: Duration,
) -> (Histogram<u64>, u64, u64, Duration) {
    let (finished, ends) = std::sync::mpsc::channel();
    let depth = depth.max(1);
    let start = Instant::now();
    for client in clients {
        // Per client: its chains all run on its shard's thread, whose histogram the
        // client's last chain hands in.
        let running = Arc::new(AtomicUsize::new(depth));
        for _ in 0..depth {
            fire(Box::new(Chain {
                caller: client.shard_caller(),
                exchange,
                body: body.clone(),
                end: start + duration,
                done: 0,
                failed: 0,
                running: Arc::clone(&running),
                finished: finished.clone(),
            }));
        }
    }
    drop(finished);
    let mut histogram = new_latency_histogram();
    let (mut done, mut failed) = (0, 0);
    // Every chain reports once its last call completes (or the client is gone).
    for end in ends.iter() {
        if let Some(h) = end.histogram {
            let _ = histogram.add(&h);
        }
        done += end.done;
        failed += end.failed;
    }
    (histogram, done, failed, start.elapsed())
}

/// [`measure`] on every client at once, one caller thread each; returns the merged
/// latencies, (completed, failed) and the elapsed time.
pub(crate) fn measure_threads(
    clients: &[Client],
    exchange: ExchangeId,
    body: &Bytes,
    depth: usize,
    duration: Duration,
) -> (Histogram<u64>, u64, u64, Duration) {
    let start = Instant::now();
    let per_client: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = clients
            .iter()
            .map(|client| {
                scope.spawn(move || {
                    let mut histogram = new_latency_histogram();
                    let (done, failed, _) = measure(
                        client,
                        exchange,
                        body,
                        depth,
                        duration,
                        Some(&mut histogram),
                    );
                    (histogram, done, failed)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("caller thread"))
            .collect()
    });
    let mut histogram = new_latency_histogram();
    let (mut done, mut failed) = (0, 0);
    for (h, d, f) in per_client {
        let _ = histogram.add(&h);
        done += d;
        failed += f;
    }
    (histogram, done, failed, start.elapsed())
}

/// Keeps `depth` calls in flight for `duration`; returns (completed, failed, elapsed).
fn measure(
    client: &Client,
    exchange: ExchangeId,
    body: &Bytes,
    depth: usize,
    duration: Duration,
    mut histogram: Option<&mut Histogram<u64>>,
) -> (u64, u64, Duration) {
    let mut pipe = client.pipeline();
    let mut started: HashMap<u64, Instant> = HashMap::default();
    let start = Instant::now();
    let end = start + duration;
    let (mut done, mut failed) = (0u64, 0u64);
    let mut now = start;
    loop {
        while now < end && pipe.outstanding() < depth.max(1) {
            // The clock is read before submitting: the submission may wake a shard that
            // preempts this thread until the answer is back.
            let t0 = Instant::now();
            let token = pipe.submit(exchange, body.clone());
            started.insert(token, t0);
            now = t0;
        }
        let Some((token, result)) = pipe.next_completion() else {
            break;
        };
        now = Instant::now();
        if let Some(t0) = started.remove(&token)
            && let Some(h) = histogram.as_deref_mut()
        {
            h.saturating_record((now - t0).as_nanos().max(1) as u64);
        }
        match result {
            Ok(_) => done += 1,
            Err(CallError::Cancelled) | Err(_) => failed += 1,
        }
    }
    (done, failed, start.elapsed())
}
