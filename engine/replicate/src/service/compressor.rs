//! lz4 of request bodies on threads of the job, so that compression runs beside the
//! shard that sends and on several cores at once: the session then only flags the
//! frames ([`CallOptions::precompressed`](hawser_runtime::CallOptions)).
//!
//! Bodies are compressed in batches: the job's thread takes one body and hands the others
//! to the pool's threads, then waits for all of them. A batch is at most the pool's size,
//! so memory beyond the blocks already in flight is one compressed copy per thread.

use std::thread::JoinHandle;

use bytes::Bytes;
use crossbeam::channel;

/// Compressing threads a job uses by default: the host's cores, at most 4.
pub fn default_compress_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4)
}

/// A body to compress, and what became of it: `Some` once compressed (`None` in the
/// answer: compressing does not pay, send it raw).
type Work = (usize, Bytes);
type Done = (usize, Option<Bytes>);

/// The job's thread plus `threads - 1` helpers.
#[derive(Debug)]
pub(crate) struct Compressor {
    threads: usize,
    work: Option<channel::Sender<Work>>,
    done: channel::Receiver<Done>,
    /// Kept so that sending never fails while helpers are alive.
    done_tx: channel::Sender<Done>,
    helpers: Vec<JoinHandle<()>>,
}

impl Compressor {
    /// A pool of `threads` (at least 1: the caller's own); helpers start on first use.
    pub(crate) fn new(threads: usize) -> Self {
        let (done_tx, done) = channel::unbounded();
        Compressor {
            threads: threads.max(1),
            work: None,
            done,
            done_tx,
            helpers: Vec::new(),
        }
    }

    /// How many bodies one batch takes.
    pub(crate) fn threads(&self) -> usize {
        self.threads
    }

    fn start_helpers(&mut self) {
        if self.work.is_some() || self.threads == 1 {
            return;
        }
        let (work_tx, work_rx) = channel::unbounded::<Work>();
        for i in 1..self.threads {
            let work_rx = work_rx.clone();
            let done = self.done_tx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("hawser-lz4-{i}"))
                .spawn(move || {
                    for (index, body) in work_rx {
                        if done.send((index, compress(&body))).is_err() {
                            return;
                        }
                    }
                });
            // Without a helper the batch runs on fewer threads; it still completes.
            if let Ok(handle) = spawned {
                self.helpers.push(handle);
            }
        }
        self.work = Some(work_tx);
    }

    /// Compresses every body of `bodies`, in parallel; each answer is the compressed
    /// form, or `None` where compressing does not pay.
    pub(crate) fn compress_batch(&mut self, bodies: &[Bytes]) -> Vec<Option<Bytes>> {
        let mut out = vec![None; bodies.len()];
        let Some((mine, others)) = bodies.split_first() else {
            return out;
        };
        self.start_helpers();
        let mut handed = 0;
        for (i, body) in others.iter().enumerate() {
            let sent = !self.helpers.is_empty()
                && self
                    .work
                    .as_ref()
                    .is_some_and(|w| w.send((i + 1, body.clone())).is_ok());
            if sent {
                handed += 1;
            } else {
                out[i + 1] = compress(body);
            }
        }
        out[0] = compress(mine);
        for _ in 0..handed {
            match self.done.recv() {
                Ok((index, compressed)) => out[index] = compressed,
                // Unreachable while `done_tx` lives; the bodies left go raw.
                Err(_) => break,
            }
        }
        out
    }
}

impl Drop for Compressor {
    fn drop(&mut self) {
        // Closing the work channel ends the helpers.
        self.work = None;
        for h in self.helpers.drain(..) {
            let _ = h.join();
        }
    }
}

fn compress(body: &Bytes) -> Option<Bytes> {
    hawser_wire::dsp::compress_body(body).map(Bytes::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_compresses_what_shrinks_and_leaves_the_rest() {
        let text: Bytes = (0..(300 * 1024))
            .map(|i: u32| b"replication log line "[i as usize % 21])
            .collect::<Vec<u8>>()
            .into();
        let mut noise = vec![0u8; 300 * 1024];
        let mut x = 0x9e37_79b9_u32;
        for b in &mut noise {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = x as u8;
        }
        let noise = Bytes::from(noise);
        for threads in [1, 3] {
            let mut pool = Compressor::new(threads);
            let batch = [
                text.clone(),
                noise.clone(),
                text.clone(),
                Bytes::from_static(b"tiny"),
            ];
            let out = pool.compress_batch(&batch);
            assert_eq!(out.len(), 4);
            for i in [0, 2] {
                let c = out[i].as_ref().expect("text shrinks");
                assert!(c.len() < text.len() / 4);
                let back = hawser_wire::dsp::decompress_body(c, text.len()).unwrap();
                assert_eq!(back, text);
            }
            assert!(out[1].is_none(), "noise goes raw");
            assert!(out[3].is_none(), "too short to try");
        }
    }
}
