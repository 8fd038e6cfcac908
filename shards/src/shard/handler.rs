//! The shard-level hooks of an application: what a shard calls for messages from other
//! shards, timers, file completions and datagrams.

use std::net::SocketAddr;
use std::sync::Arc;

use super::Core;
use super::ctx::ShardCtx;
use super::file::FileDone;
use super::udp::UdpId;
use crate::mesh::AppMessage;
use crate::pool::BufHandle;

/// Reacts to shard-level events: messages from other shards, timers, file completions.
pub trait ShardHandler {
    /// The shard started (its ring and pool are ready).
    fn on_start(&mut self, _ctx: &mut ShardCtx<'_>) {}
    /// A message from shard `from` (possibly this one).
    fn on_message(&mut self, _ctx: &mut ShardCtx<'_>, _from: usize, _msg: AppMessage) {}
    /// A timer set with [`ShardCtx::set_timer`] fired.
    fn on_timer(&mut self, _ctx: &mut ShardCtx<'_>, _token: u64) {}
    /// A file operation finished.
    fn on_file(&mut self, _ctx: &mut ShardCtx<'_>, _done: FileDone) {}
    /// A datagram arrived on a socket opened with [`ShardCtx::bind_udp`]. With GRO on,
    /// `payload` may hold several datagrams of `segment_size` bytes each (the last shorter).
    /// Dropping `payload` returns its buffer to the pool.
    fn on_datagram(
        &mut self,
        _ctx: &mut ShardCtx<'_>,
        _socket: UdpId,
        _from: Option<SocketAddr>,
        _payload: BufHandle,
        _segment_size: Option<u16>,
    ) {
    }
}

/// A handler that ignores everything (messages are dropped, their buffers go home).
#[derive(Debug, Default)]
pub struct NoHandler;
impl ShardHandler for NoHandler {}

/// Builds each shard's handler on that shard's thread.
pub type HandlerFactory = Arc<dyn Fn(usize) -> Box<dyn ShardHandler> + Send + Sync>;

impl Core {
    /// Calls the shard's handler with a context on this shard.
    pub(super) fn with_handler(
        &mut self,
        f: impl FnOnce(&mut dyn ShardHandler, &mut ShardCtx<'_>),
    ) {
        if let Some(mut h) = self.handler.take() {
            f(&mut *h, &mut ShardCtx { core: self });
            self.handler = Some(h);
        }
    }
}
