//! The message systems: each connects one consumer and N publishers, which the driver in
//! `main.rs` then runs on their own threads.

pub mod nats;
pub mod rabbitmq;
pub mod zmq;

use anyhow::Result;

use crate::measure::{Feed, Recorder};

/// One publisher's connection.
pub trait Publisher: Send {
    /// Sends `size`-byte messages filled by `feed` until [`Feed::next`] says the window
    /// is over, then flushes what the client still buffers (briefly: the run is over).
    fn run(&mut self, feed: &mut Feed, size: usize) -> Result<()>;
}

/// The consumer's connection.
pub trait Consumer: Send {
    /// Hands every message to `recorder` until [`Recorder::on_message`] says the window is
    /// over, or the window ends while no message arrives.
    fn run(&mut self, recorder: &mut Recorder) -> Result<()>;
}

/// A consumer and its publishers, connected and ready: the consumer is subscribed (or its
/// queue bound) before any publisher exists, so no message is published into the void.
pub struct Connected {
    /// The consumer.
    pub consumer: Box<dyn Consumer>,
    /// The publishers, one connection each.
    pub publishers: Vec<Box<dyn Publisher>>,
}

impl std::fmt::Debug for Connected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connected")
            .field("publishers", &self.publishers.len())
            .finish_non_exhaustive()
    }
}

/// A name unique to this process, so runs sharing a server never see each other's
/// messages.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", std::process::id())
}
