//! What the two sides talk through: pipelined request → response.
//!
//! The source hands requests to a [`Transport`] and takes completions back in any order;
//! it never waits for one answer before sending the next request it may send.
//! [`PipelineTransport`](crate::service::PipelineTransport) implements this trait over a
//! runtime pipeline: each request is one exchange with its kind's exchange id
//! (`ordered` maps to `CallOptions::ordered`), and a remote exception becomes a
//! [`RemoteError`]. [`MemoryTransport`] runs a [`Target`] in the same thread, for tests.
//! A [`FanoutTransport`] is one a push to several targets can wait on together with the
//! others.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::error::{RemoteError, TransportError};
use super::proto::{BLOCK_HEADER_LEN, MessageKind};
use super::target::Target;

/// A request from the source.
#[derive(Debug, Clone)]
pub struct Request {
    /// The source's handle for it; its completion carries the same token.
    pub token: u64,
    /// Its kind; the exchange id is `kind.exchange_id()`.
    pub kind: MessageKind,
    /// Must be delivered after the ordered requests sent before it (manifest batches:
    /// a directory arrives before its contents).
    pub ordered: bool,
    /// The message, tag included. Blocks are large; the transport should send this
    /// buffer as it is (it is a pooled buffer the source wants back unique).
    pub body: Bytes,
    /// May be compressed on the wire (if the session agreed to compress at all): false
    /// under `compress off`, and under `auto` until the job found that it pays (see
    /// `auto_compress`).
    pub compress: bool,
}

/// A finished request.
#[derive(Debug, Clone)]
pub struct Completion {
    /// The request's token.
    pub token: u64,
    /// The response body, or the target's failure.
    pub result: Result<Bytes, RemoteError>,
}

/// Pipelined request/response between the source and the target.
pub trait Transport {
    /// Sends a request; does not wait for its answer.
    fn send(&mut self, request: Request) -> Result<(), TransportError>;
    /// Waits for the next completion (in any order); [`TransportError::Idle`] if nothing
    /// is outstanding.
    fn recv(&mut self) -> Result<Completion, TransportError>;
    /// How long the caller's thread has spent compressing request bodies in all (a
    /// batch's whole time: the thread waits for its helpers), or `None` if that cannot
    /// tell whether lz4 or the link is the bottleneck (this transport does not compress
    /// on it, or something else paces it). `--compress auto` judges by it.
    fn compressing_time(&self) -> Option<Duration> {
        None
    }
}

/// A transport one thread drives together with others: a fan-out sends to each and
/// waits for the first answer of any (see [`Fanout`](crate::Fanout)).
pub trait FanoutTransport: Transport {
    /// The next completion if one is ready, without waiting (`Ok(None)`: none yet).
    fn try_recv(&mut self) -> Result<Option<Completion>, TransportError>;
    /// When this transport gives its target up if no answer comes by then (`None`:
    /// nothing outstanding, or it never gives up).
    fn deadline(&self) -> Option<Instant>;
    /// Waits until one of `transports` may have a completion ready, or until `until`;
    /// returns at once when none has anything outstanding.
    fn wait_any(transports: &[&Self], until: Instant)
    where
        Self: Sized;
}

/// A transport into a [`Target`] in the same process: requests are executed as they are
/// sent, and completions come back in a seeded shuffled order to exercise pipelining.
#[derive(Debug)]
pub struct MemoryTransport {
    target: Option<Target>,
    done: VecDeque<Completion>,
    /// Draws the order of the answers (`None`: send order).
    shuffle: Option<Xoshiro256PlusPlus>,
    requests_left: Option<u64>,
    body_bytes: u64,
    requests: u64,
    corrupt_every: Option<u64>,
    blocks_seen: u64,
}

impl MemoryTransport {
    /// Answers in send order.
    pub fn new(target: Target) -> Self {
        MemoryTransport {
            target: Some(target),
            done: VecDeque::new(),
            shuffle: None,
            requests_left: None,
            body_bytes: 0,
            requests: 0,
            corrupt_every: None,
            blocks_seen: 0,
        }
    }

    /// Answers in an order drawn from `seed`.
    pub fn shuffled(mut self, seed: u64) -> Self {
        self.shuffle = Some(Xoshiro256PlusPlus::seed_from_u64(seed));
        self
    }

    /// Simulates the target dying after `requests` more requests: the next send fails
    /// with [`TransportError::Disconnected`], and the target (its open files) is dropped.
    pub fn fail_after(mut self, requests: u64) -> Self {
        self.requests_left = Some(requests);
        self
    }

    /// Flips a bit in the data of every `every`-th block on its way (a copy is damaged,
    /// not the source's buffer), as a corrupting link past the session digest would.
    pub fn corrupting_blocks(mut self, every: u64) -> Self {
        self.corrupt_every = Some(every.max(1));
        self
    }

    /// Requests carried so far.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// Request body bytes carried so far.
    pub fn body_bytes(&self) -> u64 {
        self.body_bytes
    }

    /// The target, unless it was killed.
    pub fn into_target(self) -> Option<Target> {
        self.target
    }
}

impl FanoutTransport for MemoryTransport {
    fn try_recv(&mut self) -> Result<Option<Completion>, TransportError> {
        match self.recv() {
            Ok(completion) => Ok(Some(completion)),
            Err(TransportError::Idle) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn deadline(&self) -> Option<Instant> {
        None
    }

    fn wait_any(_transports: &[&Self], _until: Instant) {
        // Every request is answered as it is sent: nothing to wait for.
    }
}

impl Transport for MemoryTransport {
    fn send(&mut self, request: Request) -> Result<(), TransportError> {
        if let Some(left) = &mut self.requests_left {
            if *left == 0 {
                self.target = None;
                return Err(TransportError::Disconnected);
            }
            *left -= 1;
        }
        let target = self.target.as_mut().ok_or(TransportError::Disconnected)?;
        self.body_bytes += request.body.len() as u64;
        self.requests += 1;
        let mut damaged = None;
        if request.kind == MessageKind::Block
            && let Some(every) = self.corrupt_every
            && request.body.len() > BLOCK_HEADER_LEN
        {
            self.blocks_seen += 1;
            if self.blocks_seen.is_multiple_of(every) {
                let mut copy = request.body.to_vec();
                if let Some(last) = copy.last_mut() {
                    *last ^= 0x01;
                }
                damaged = Some(copy);
            }
        }
        let body = damaged.as_deref().unwrap_or(&request.body);
        let result = target.handle(body).map_err(|e| e.to_remote());
        // The body is dropped here, as a real transport drops it once sent and answered.
        drop(request.body);
        self.done.push_back(Completion {
            token: request.token,
            result,
        });
        Ok(())
    }

    fn recv(&mut self) -> Result<Completion, TransportError> {
        if self.done.is_empty() {
            return Err(TransportError::Idle);
        }
        let index = match &mut self.shuffle {
            Some(rng) => (rng.next_u64() % self.done.len() as u64) as usize,
            None => 0,
        };
        self.done.remove(index).ok_or(TransportError::Idle)
    }
}
