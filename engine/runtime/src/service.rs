//! Services: the handlers of a server's (or a client's backchannel's) exchanges, and
//! what a handler sees of its request.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use hawser_session::{ExchangeId, IncomingRequest, NexusId, NexusOwner, RemoteException, Reply};

use crate::Backchannel;
use crate::command::Caller;

/// A handler's view of its request.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The request's identity (nexus, slot, sequence, exchange).
    pub request: IncomingRequest,
    pub(crate) cancelled: Arc<AtomicBool>,
    /// The server's caller, for backchannel calls to this request's nexus; `None` for
    /// the backchannel handlers of a client.
    pub(crate) caller: Option<Arc<Caller>>,
    /// Who created the request's nexus (a server's handlers; `None` on a client).
    pub(crate) owner: Option<NexusOwner>,
}

impl RequestContext {
    /// Who created this request's nexus: its authenticated identity and the peer of the
    /// connection that created it (`None` for a client's backchannel handlers).
    pub fn owner(&self) -> Option<&NexusOwner> {
        self.owner.as_ref()
    }

    /// Whether the initiator cancelled this request: stop and return
    /// [`HandlerError::Cancelled`].
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    /// Calls back to the client that sent this request, on its nexus's backchannel
    /// (handlers of a server; `None` for a client's backchannel handlers). A blocking
    /// handler may keep many such calls in flight and wait for them: their answers are
    /// received by the shard, not by a handler thread.
    pub fn backchannel(&self) -> Option<Backchannel> {
        self.caller
            .as_ref()
            .map(|caller| Backchannel::new(Arc::clone(caller), self.request.nexus))
    }
}

/// How a handler fails.
#[derive(Debug, Clone)]
pub enum HandlerError {
    /// A failure reported to the caller as a typed remote exception.
    Exception(RemoteException),
    /// The handler stopped because the request was cancelled.
    Cancelled,
}

impl From<RemoteException> for HandlerError {
    fn from(e: RemoteException) -> Self {
        HandlerError::Exception(e)
    }
}

type InlineFn = dyn Fn(&RequestContext, Bytes) -> Result<Bytes, HandlerError> + Send + Sync;

/// One exchange's handler.
#[derive(Clone)]
pub(crate) enum Handler {
    /// Runs on the shard; must not block.
    Inline(Arc<InlineFn>),
    /// Runs on a worker thread.
    Blocking(Arc<InlineFn>),
}

/// Told, on the server's shard, that a nexus is gone (destroyed or expired).
pub(crate) type NexusEndFn = dyn Fn(NexusId) + Send + Sync;

/// Builds the shards protocol of a direct connection (see [`Service::direct_protocol`]);
/// called on the shard that accepted it.
pub type DirectFactory = Arc<dyn Fn() -> Box<dyn hawser_shards::Protocol> + Send + Sync>;

/// Handlers by exchange id, with their names (for reports), what is told of nexuses
/// ending, and the direct-connection protocols by their first four bytes.
#[derive(Clone, Default)]
pub(crate) struct HandlerTable {
    pub(crate) handlers: HashMap<ExchangeId, (String, Handler)>,
    pub(crate) nexus_end: Vec<Arc<NexusEndFn>>,
    pub(crate) direct: Vec<([u8; 4], DirectFactory)>,
}

impl HandlerTable {
    /// Adds a service's handlers, hooks and direct protocols.
    pub(crate) fn extend(&mut self, other: HandlerTable) {
        self.handlers.extend(other.handlers);
        self.nexus_end.extend(other.nexus_end);
        self.direct.extend(other.direct);
    }
}

pub(crate) fn to_reply(result: Result<Bytes, HandlerError>) -> Reply {
    match result {
        Ok(b) => Reply::Ok(b),
        Err(HandlerError::Exception(e)) => Reply::Err(e),
        Err(HandlerError::Cancelled) => Reply::Cancelled,
    }
}

/// A blocking handler's work item.
pub(crate) struct Job {
    pub(crate) ctx: RequestContext,
    pub(crate) body: Bytes,
    pub(crate) handler: Arc<InlineFn>,
}

/// A set of exchange handlers.
#[derive(Clone, Default)]
pub struct Service {
    name: String,
    pub(crate) table: HandlerTable,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<_> = self
            .table
            .handlers
            .iter()
            .map(|(id, (n, _))| (id.0, n.as_str()))
            .collect();
        names.sort_unstable();
        f.debug_struct("Service")
            .field("name", &self.name)
            .field("exchanges", &names)
            .finish()
    }
}

impl Service {
    /// An empty service.
    pub fn new(name: impl Into<String>) -> Self {
        Service {
            name: name.into(),
            table: HandlerTable::default(),
        }
    }

    /// Registers a handler run on the server's shard, in the loop iteration that received
    /// the request: it must not block.
    pub fn handler<F>(mut self, exchange: ExchangeId, name: impl Into<String>, f: F) -> Self
    where
        F: Fn(&RequestContext, Bytes) -> Result<Bytes, HandlerError> + Send + Sync + 'static,
    {
        self.table
            .handlers
            .insert(exchange, (name.into(), Handler::Inline(Arc::new(f))));
        self
    }

    /// Registers a handler run on a worker thread: it may block, and should poll
    /// [`RequestContext::is_cancelled`] when it runs long.
    pub fn blocking_handler<F>(
        mut self,
        exchange: ExchangeId,
        name: impl Into<String>,
        f: F,
    ) -> Self
    where
        F: Fn(&RequestContext, Bytes) -> Result<Bytes, HandlerError> + Send + Sync + 'static,
    {
        self.table
            .handlers
            .insert(exchange, (name.into(), Handler::Blocking(Arc::new(f))));
        self
    }

    /// Runs `f` on the server's shard when one of its nexuses is gone (destroyed by its
    /// client, or expired after its grace period): for what a service ties to a nexus.
    pub fn on_nexus_end<F>(mut self, f: F) -> Self
    where
        F: Fn(NexusId) + Send + Sync + 'static,
    {
        self.table.nexus_end.push(Arc::new(f));
        self
    }

    /// Serves connections whose first four bytes are `magic` with the protocol `factory`
    /// builds, on the server's own listening addresses: the bytes read to tell them from
    /// DSP are handed to it as its first receive. The protocol must receive into its own
    /// buffer ([`Protocol::receives_into_own_buffer`](hawser_shards::Protocol)).
    pub fn direct_protocol(mut self, magic: [u8; 4], factory: DirectFactory) -> Self {
        self.table.direct.push((magic, factory));
        self
    }

    /// The exchange id registered under `name`.
    pub fn exchange(&self, name: &str) -> Option<ExchangeId> {
        self.table
            .handlers
            .iter()
            .find(|(_, (n, _))| n == name)
            .map(|(id, _)| *id)
    }
}
