//! Calls from a server to the client of one nexus (the backchannel).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use crossbeam::channel;

use super::{CallError, CallOptions, ExchangeId, NexusId, PendingCall, Pipeline};
use crate::command::{Caller, HostCommand};
use hawser_session::NexusStats;

/// Calls to the client of one nexus, served by its [`ClientOptions::backchannel`]
/// handlers: from [`Server::backchannel`], or from a handler through
/// [`RequestContext::backchannel`] (the client that sent the request). Cheap to clone
/// and `Send`: a blocking handler can keep calls in flight and wait for their answers,
/// which the server's shard receives meanwhile.
///
/// Ordered calls ([`CallOptions::ordered`]) are delivered to the client's handlers after
/// every earlier ordered call of the same nexus, as on the fore channel. Delivered, not
/// finished: two ordered calls in flight can still run at once on two of the client's
/// handler threads.
///
/// [`ClientOptions::backchannel`]: super::ClientOptions::backchannel
/// [`Server::backchannel`]: super::Server::backchannel
/// [`RequestContext::backchannel`]: super::RequestContext::backchannel
#[derive(Debug, Clone)]
pub struct Backchannel {
    caller: Arc<Caller>,
    nexus: NexusId,
}

impl Backchannel {
    pub(crate) fn new(caller: Arc<Caller>, nexus: NexusId) -> Self {
        Backchannel { caller, nexus }
    }

    /// The nexus whose client is called.
    pub fn nexus(&self) -> NexusId {
        self.nexus
    }

    /// Calls `exchange` on the client and waits for the answer.
    pub fn call(&self, exchange: ExchangeId, request: Bytes) -> Result<Bytes, CallError> {
        self.start_call_with(exchange, request, CallOptions::default())
            .wait()
    }

    /// Starts a call with options and returns at once.
    pub fn start_call_with(
        &self,
        exchange: ExchangeId,
        request: Bytes,
        options: CallOptions,
    ) -> PendingCall {
        let (tx, rx) = channel::bounded(1);
        let token = self
            .caller
            .start(Some(self.nexus), exchange, request, options, &tx);
        PendingCall {
            token,
            spin: Duration::ZERO,
            rx,
            commands: self.caller.commands.clone(),
        }
    }

    /// Many calls in flight with one completion queue, as [`Client::pipeline`] offers on
    /// the fore channel.
    ///
    /// [`Client::pipeline`]: super::Client::pipeline
    pub fn pipeline(&self) -> Pipeline<'_> {
        Pipeline::new(&self.caller, Some(self.nexus), Duration::ZERO)
    }

    /// The nexus's counters (backchannel retries among them); `None` once it is gone.
    pub fn stats(&self) -> Option<NexusStats> {
        let (tx, rx) = channel::bounded(1);
        if !self.caller.commands.send(HostCommand::Stats { reply: tx }) {
            return None;
        }
        rx.recv_timeout(Duration::from_secs(5))
            .ok()?
            .nexuses
            .into_iter()
            .find(|(nexus, _)| *nexus == self.nexus)
            .map(|(_, stats)| stats)
    }
}
