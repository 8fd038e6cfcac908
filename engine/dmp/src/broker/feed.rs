//! A feed: its bounded queue of message bytes, its water marks and slow-consumer
//! policy, its one consumer, and its counters.

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};
use hawser_runtime::direct::ConnId;
use hawser_wire::dmp::wiring::FlowPolicy;
use serde::{Deserialize, Serialize};

use super::EntityId;

/// A run of whole messages shorter than this share of its receive buffer is copied
/// into the feed's own buffer, so that a feed taking a few messages of each receive does
/// not keep every receive buffer alive.
const COPY_BELOW_SHARE: usize = 8;
/// Runs at most this long are always copied (cheaper than an iovec of their own).
const COPY_ALWAYS_BELOW: usize = 256;

/// Counters of one feed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedCounters {
    /// Messages routed to it.
    pub received: u64,
    /// Messages handed to its consumer's socket.
    pub delivered: u64,
    /// Messages dropped by its policy (`drop-oldest`, or `disconnect` without a consumer).
    pub dropped: u64,
    /// Consumers disconnected by the `disconnect` policy.
    pub disconnects: u64,
    /// Times its queue reached the high-water mark under `block`.
    pub blocked: u64,
}

/// The queue: shared slices of the publishers' receive buffers (whole messages, in
/// order), then a buffer of copied short runs.
#[derive(Debug, Default)]
pub struct FeedQueue {
    segments: VecDeque<(Bytes, u64)>,
    staging: BytesMut,
    staged_messages: u64,
    bytes: u64,
    messages: u64,
}

impl FeedQueue {
    /// Bytes queued.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Messages queued.
    pub fn messages(&self) -> u64 {
        self.messages
    }

    /// Appends `messages` whole messages: `run` of the receive buffer `chunk`, whose
    /// slices keep an allocation of `backing` bytes alive.
    pub fn push(
        &mut self,
        chunk: &Bytes,
        backing: usize,
        run: std::ops::Range<usize>,
        messages: u64,
    ) {
        let len = run.len();
        self.bytes += len as u64;
        self.messages += messages;
        if len < COPY_ALWAYS_BELOW || len * COPY_BELOW_SHARE < backing {
            self.staging.extend_from_slice(&chunk[run]);
            self.staged_messages += messages;
        } else {
            self.flush_staging();
            self.segments.push_back((chunk.slice(run), messages));
        }
    }

    fn flush_staging(&mut self) {
        if !self.staging.is_empty() {
            let staged = self.staging.split().freeze();
            self.segments
                .push_back((staged, std::mem::take(&mut self.staged_messages)));
        }
    }

    /// Takes whole segments for sending, up to about `budget` bytes (at least one when
    /// any is queued). Returns the messages taken.
    pub fn take(&mut self, budget: usize, mut send: impl FnMut(Bytes)) -> u64 {
        if self.segments.is_empty() {
            self.flush_staging();
        }
        let mut taken_bytes = 0usize;
        let mut taken = 0u64;
        while taken_bytes < budget {
            let Some((segment, messages)) = self.segments.pop_front() else {
                if self.staging.is_empty() {
                    break;
                }
                self.flush_staging();
                continue;
            };
            taken_bytes += segment.len();
            taken += messages;
            send(segment);
        }
        self.bytes -= taken_bytes as u64;
        self.messages -= taken;
        taken
    }

    /// Drops the oldest messages until at most `keep` bytes remain. Returns how many.
    pub fn drop_oldest(&mut self, keep: u64) -> u64 {
        let mut dropped = 0;
        while self.bytes > keep {
            if self.segments.is_empty() {
                self.flush_staging();
            }
            let Some((front, messages)) = self.segments.front_mut() else {
                break;
            };
            // Each segment is whole messages; the first starts with its size field.
            let size = u32::from_be_bytes([front[0], front[1], front[2], front[3]]) as usize;
            let len = (4 + size).min(front.len());
            front.advance(len);
            *messages -= 1;
            self.bytes -= len as u64;
            self.messages -= 1;
            dropped += 1;
            if front.is_empty() {
                self.segments.pop_front();
            }
        }
        dropped
    }

    /// Empties the queue. Returns the messages dropped.
    pub fn clear(&mut self) -> u64 {
        let n = self.messages;
        self.segments.clear();
        self.staging.clear();
        self.staged_messages = 0;
        self.bytes = 0;
        self.messages = 0;
        n
    }
}

/// One feed.
#[derive(Debug)]
pub struct Feed {
    /// Its id (a name deleted and declared again gets a new one).
    pub id: EntityId,
    /// Its name.
    pub name: String,
    /// What happens past the high-water mark.
    pub policy: FlowPolicy,
    /// Bytes at which the policy acts.
    pub high_water: u64,
    /// Bytes below which blocked publishers resume (and to which drops go).
    pub low_water: u64,
    /// Lives until deleted (otherwise with the application that declared it).
    pub durable: bool,
    /// The application that declared it (for its lifetime), if any.
    pub app: Option<u128>,
    /// Who may bind, consume or delete it.
    pub owner: super::Owner,
    /// Its queue.
    pub queue: FeedQueue,
    /// The connection reading it.
    pub consumer: Option<ConnId>,
    /// Its queue is past the high-water mark under `block`.
    pub blocked: bool,
    /// Publishers paused until it drains to the low-water mark.
    pub waiting: Vec<ConnId>,
    /// Its counters.
    pub counters: FeedCounters,
}

/// What a feed's policy decided after messages arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Under the high-water mark.
    None,
    /// `block`: publishers must pause.
    Block,
    /// `disconnect`: this consumer must go.
    Disconnect(ConnId),
}

impl Feed {
    /// Applies the policy once messages were queued.
    pub fn after_push(&mut self) -> Overflow {
        if self.queue.bytes() <= self.high_water {
            return Overflow::None;
        }
        match (self.policy, self.consumer) {
            (FlowPolicy::Block, Some(_)) => {
                if !self.blocked {
                    self.blocked = true;
                    self.counters.blocked += 1;
                }
                Overflow::Block
            }
            // Without a reader: `admit` drops what comes past the mark.
            (FlowPolicy::Block, None) => Overflow::None,
            (FlowPolicy::Disconnect, Some(consumer)) => {
                self.consumer = None;
                self.counters.disconnects += 1;
                Overflow::Disconnect(consumer)
            }
            (FlowPolicy::DropOldest | FlowPolicy::Disconnect, _) => {
                self.counters.dropped += self.queue.drop_oldest(self.low_water);
                Overflow::None
            }
        }
    }

    /// Queues a run of `messages` whole messages of `chunk`, unless the feed is a `block`
    /// feed without a consumer past its mark: with no reader to wait for, an abandoned
    /// feed must not stall its sink, so it keeps its oldest messages and drops newcomers.
    pub fn admit(
        &mut self,
        chunk: &Bytes,
        backing: usize,
        run: std::ops::Range<usize>,
        messages: u64,
    ) {
        if self.policy == FlowPolicy::Block
            && self.consumer.is_none()
            && self.queue.bytes() >= self.high_water
        {
            self.counters.dropped += messages;
        } else {
            self.queue.push(chunk, backing, run, messages);
        }
    }

    /// Whether blocked publishers may go on.
    pub fn drained(&self) -> bool {
        self.queue.bytes() <= self.low_water
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` messages of `body` bytes each, as a publisher sends them (size field first).
    fn messages(n: usize, body: usize) -> Bytes {
        let mut out = Vec::new();
        for i in 0..n {
            out.extend_from_slice(&(body as u32).to_be_bytes());
            out.extend(std::iter::repeat_n(i as u8, body));
        }
        out.into()
    }

    #[test]
    fn long_runs_are_shared_and_short_ones_copied_in_order() {
        let chunk = messages(100, 60); // 6400 bytes
        let mut q = FeedQueue::default();
        q.push(&chunk, 6400, 0..6400, 100);
        q.push(&chunk, 6400, 0..64, 1);
        q.push(&chunk, 6400, 64..128, 1);
        assert_eq!((q.bytes(), q.messages()), (6528, 102));
        let mut sent = Vec::new();
        let n = q.take(usize::MAX, |b| sent.push(b));
        assert_eq!(n, 102);
        assert_eq!(sent.len(), 2, "one shared segment, one copied");
        assert_eq!(
            sent[0].as_ptr(),
            chunk.as_ptr(),
            "the long run is not copied"
        );
        assert_eq!(sent[1][..], chunk[..128]);
        assert_eq!((q.bytes(), q.messages()), (0, 0));
    }

    #[test]
    fn drop_oldest_drops_whole_messages_from_the_front() {
        let chunk = messages(10, 96); // 100 bytes each
        let mut q = FeedQueue::default();
        q.push(&chunk, 1000, 0..1000, 10);
        assert_eq!(q.drop_oldest(450), 6);
        assert_eq!((q.bytes(), q.messages()), (400, 4));
        let mut sent = Vec::new();
        q.take(usize::MAX, |b| sent.push(b));
        assert_eq!(sent[0][4], 6, "the first left is message 6");
    }
}
