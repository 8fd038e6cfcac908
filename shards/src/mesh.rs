//! The mesh of bounded SPSC rings between every ordered pair of shards, and the eventfd
//! doorbell that wakes a parked consumer.
//!
//! Producers batch: messages for a peer collect in a local outbox during a loop iteration
//! and move into the ring with one `write_chunk_uninit` per peer per iteration; consumers
//! drain with one `read_chunk` per peer. The doorbell is rung only when the consumer said it
//! is about to park, so a busy mesh costs no system calls.

use std::collections::VecDeque;
use std::fmt;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering, fence};

use rtrb::{Consumer, Producer, RingBuffer};

use crate::pool::BufHandle;
use crate::shard::{ConnId, ShardCtx};
use crate::sys;

/// An eventfd plus the flag saying whether its shard is (about to be) parked.
pub(crate) struct Doorbell {
    pub(crate) fd: RawFd,
    parked: AtomicBool,
}

impl fmt::Debug for Doorbell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Doorbell").field("fd", &self.fd).finish()
    }
}

impl Doorbell {
    pub(crate) fn new() -> std::io::Result<Arc<Self>> {
        Ok(Arc::new(Doorbell {
            fd: sys::eventfd()?,
            parked: AtomicBool::new(false),
        }))
    }

    /// Called by a producer after publishing work for this shard.
    pub(crate) fn ring_if_parked(&self) {
        // Pairs with the fence in `begin_park`: either the consumer sees our message when it
        // re-checks its inputs, or we see its parked flag here.
        fence(Ordering::SeqCst);
        if self.parked.load(Ordering::Relaxed) && self.parked.swap(false, Ordering::AcqRel) {
            sys::eventfd_ring(self.fd);
        }
    }

    /// Unconditional wake-up (shutdown, commands from outside).
    pub(crate) fn ring(&self) {
        sys::eventfd_ring(self.fd);
    }

    pub(crate) fn begin_park(&self) {
        self.parked.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }

    pub(crate) fn end_park(&self) {
        self.parked.store(false, Ordering::Relaxed);
    }
}

impl Drop for Doorbell {
    fn drop(&mut self) {
        sys::close(self.fd);
    }
}

/// A small message for a shard's handler or one of its connections' protocols, optionally
/// carrying a buffer (lent zero-copy: the buffer goes home when the receiver drops it).
#[derive(Debug)]
pub struct AppMessage {
    /// What the message means, for the receiver to dispatch on.
    pub tag: u64,
    /// A small payload.
    pub value: u64,
    /// A lent buffer, if any.
    pub buf: Option<BufHandle>,
}

impl AppMessage {
    /// A message without a buffer.
    pub fn new(tag: u64, value: u64) -> Self {
        AppMessage {
            tag,
            value,
            buf: None,
        }
    }

    /// A message lending `buf`.
    pub fn with_buf(tag: u64, value: u64, buf: BufHandle) -> Self {
        AppMessage {
            tag,
            value,
            buf: Some(buf),
        }
    }
}

/// A task run on a shard with access to its context.
pub type ShardTask = Box<dyn FnOnce(&mut ShardCtx<'_>) + Send>;

/// What travels over the mesh.
pub(crate) enum Envelope {
    ReturnBuffer(u16),
    App {
        from: usize,
        msg: AppMessage,
    },
    ToConn {
        conn: ConnId,
        msg: AppMessage,
    },
    Task(ShardTask),
    /// An accepted connection handed over by an acceptor shard (closed if dropped unread).
    Adopt {
        fd: std::os::fd::OwnedFd,
        factory: crate::shard::ProtocolFactory,
    },
}

/// One shard's ends of the mesh.
pub(crate) struct MeshEndpoint {
    pub(crate) producers: Vec<Option<Producer<Envelope>>>,
    pub(crate) consumers: Vec<Option<Consumer<Envelope>>>,
    pub(crate) outboxes: Vec<VecDeque<Envelope>>,
    pub(crate) doorbells: Vec<Arc<Doorbell>>,
}

/// Builds the full mesh: endpoint `i` gets a producer to and a consumer from every `j != i`.
pub(crate) fn build_mesh(doorbells: &[Arc<Doorbell>], capacity: usize) -> Vec<MeshEndpoint> {
    let n = doorbells.len();
    let mut endpoints: Vec<MeshEndpoint> = (0..n)
        .map(|_| MeshEndpoint {
            producers: (0..n).map(|_| None).collect(),
            consumers: (0..n).map(|_| None).collect(),
            outboxes: (0..n).map(|_| VecDeque::with_capacity(capacity)).collect(),
            doorbells: doorbells.to_vec(),
        })
        .collect();
    for from in 0..n {
        for to in 0..n {
            if from != to {
                let (p, c) = RingBuffer::new(capacity);
                endpoints[from].producers[to] = Some(p);
                endpoints[to].consumers[from] = Some(c);
            }
        }
    }
    endpoints
}

impl MeshEndpoint {
    /// Moves queued messages into the rings, one chunk per peer. Returns messages moved.
    pub(crate) fn flush(&mut self) -> usize {
        let mut moved = 0;
        for (to, outbox) in self.outboxes.iter_mut().enumerate() {
            if outbox.is_empty() {
                continue;
            }
            let Some(producer) = self.producers[to].as_mut() else {
                continue;
            };
            let n = outbox.len().min(producer.slots());
            if n == 0 {
                continue;
            }
            if let Ok(chunk) = producer.write_chunk_uninit(n) {
                moved += chunk.fill_from_iter(outbox.drain(..n));
                self.doorbells[to].ring_if_parked();
            }
        }
        moved
    }

    /// Whether any inbound ring holds messages.
    pub(crate) fn has_inbound(&self) -> bool {
        self.consumers.iter().flatten().any(|c| !c.is_empty())
    }

    /// Messages waiting in inbound rings (ring occupancy).
    pub(crate) fn inbound_len(&self) -> usize {
        self.consumers.iter().flatten().map(|c| c.slots()).sum()
    }

    pub(crate) fn has_outbound(&self) -> bool {
        self.outboxes.iter().any(|o| !o.is_empty())
    }
}
