//! [`BulkSource`] and [`BulkSink`]: one end sends a byte count by repeating a shared body
//! without copying it, the other counts (and optionally hashes) what arrives and reports
//! it when the connection closes.

use std::time::Instant;

use bytes::Bytes;

use crate::protocol::{CloseReason, Protocol, Received, Transmit};

/// What a [`BulkSink`] reports when its connection closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SinkReport {
    /// Bytes received.
    pub bytes: u64,
    /// xxh3-64 of the received stream, if digesting was on.
    pub digest: Option<u64>,
}

/// Swallows everything it receives, optionally hashing every byte with xxh3 (a CPU-bound
/// load per byte), and reports the total when the connection closes.
pub struct BulkSink {
    bytes: u64,
    /// Send 40 bytes back per MiB received (see [`BulkSink::answering`]).
    answering: bool,
    answers_due: u64,
    hasher: Option<Box<twox_hash::XxHash3_64>>,
    report: Option<crossbeam::channel::Sender<SinkReport>>,
    eof: bool,
}

impl std::fmt::Debug for BulkSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulkSink")
            .field("bytes", &self.bytes)
            .finish()
    }
}

impl BulkSink {
    /// A sink; `digest` turns on xxh3 over every byte; `report` receives the totals on close.
    pub fn new(digest: bool, report: Option<crossbeam::channel::Sender<SinkReport>>) -> Self {
        BulkSink {
            bytes: 0,
            answering: false,
            answers_due: 0,
            hasher: digest.then(|| Box::new(twox_hash::XxHash3_64::new())),
            report,
            eof: false,
        }
    }
}

/// What an answering [`BulkSink`] sends back per MiB received: the size of a session's
/// answer to a 1 MiB request.
const ANSWER: [u8; 40] = [0; 40];

impl BulkSink {
    /// Also sends 40 bytes back per MiB received, so that the connection carries data
    /// both ways as a session's does.
    pub fn answering(mut self) -> Self {
        self.answering = true;
        self
    }
}

impl Protocol for BulkSink {
    fn handle_input(&mut self, _now: Instant, input: Received<'_>) {
        let before = self.bytes;
        self.bytes += input.len() as u64;
        if self.answering {
            self.answers_due += (self.bytes >> 20) - (before >> 20);
        }
        if let Some(h) = self.hasher.as_mut() {
            std::hash::Hasher::write(&mut **h, &input);
        }
    }

    fn handle_eof(&mut self, _now: Instant) {
        self.eof = true;
    }

    fn poll_transmit(&mut self, _now: Instant, out: &mut Transmit) {
        while self.answers_due > 0 {
            out.write(&ANSWER);
            self.answers_due -= 1;
        }
    }

    fn wants_close(&self) -> bool {
        self.eof && self.answers_due == 0
    }

    fn on_close(&mut self, _now: Instant, _reason: &CloseReason) {
        if let Some(tx) = self.report.take() {
            let digest = self
                .hasher
                .as_ref()
                .map(|h| std::hash::Hasher::finish(&**h));
            let _ = tx.send(SinkReport {
                bytes: self.bytes,
                digest,
            });
        }
    }
}

/// Sends `total` bytes by repeating one shared body (zero-copy), then closes.
#[derive(Debug)]
pub struct BulkSource {
    body: Bytes,
    remaining: u64,
    max_queued: usize,
    /// Answer bytes still to come from an answering sink before closing (closing with
    /// unread bytes would reset the connection and lose what is still in flight).
    answers_pending: u64,
}

impl BulkSource {
    /// Sends `body` repeatedly (the last piece truncated) until `total` bytes went out.
    pub fn new(body: Bytes, total: u64) -> Self {
        let max_queued = body.len().max(1) * 2;
        BulkSource {
            body,
            remaining: total,
            max_queued,
            answers_pending: 0,
        }
    }

    /// Waits for an answering sink's answers ([`BulkSink::answering`]) before closing.
    pub fn expecting_answers(mut self) -> Self {
        self.answers_pending = (self.remaining >> 20) * ANSWER.len() as u64;
        self
    }
}

impl Protocol for BulkSource {
    fn handle_input(&mut self, _now: Instant, input: Received<'_>) {
        self.answers_pending = self.answers_pending.saturating_sub(input.len() as u64);
    }

    fn poll_transmit(&mut self, _now: Instant, out: &mut Transmit) {
        while self.remaining > 0 && out.queued() < self.max_queued {
            let n = (self.body.len() as u64).min(self.remaining) as usize;
            out.write_bytes(self.body.slice(..n));
            self.remaining -= n as u64;
        }
    }

    fn wants_close(&self) -> bool {
        self.remaining == 0 && self.answers_pending == 0
    }
}
