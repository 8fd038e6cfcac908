//! What the state machines tell the application and the driver.

use bytes::Bytes;

use super::error::{CallError, LinkCloseReason};
use super::exception::RemoteException;
use super::types::{Channel, ExchangeId, LinkId, NexusId, RequestId};

/// A request delivered to this side's handler. Answer it with `respond` on the endpoint
/// (exactly once); it stays valid across connection losses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IncomingRequest {
    /// The nexus it arrived on.
    pub nexus: NexusId,
    /// The channel (fore on the server, back on the client).
    pub channel: Channel,
    /// Its slot in the channel's table.
    pub slot: u32,
    /// Its sequence id in that slot.
    pub seq: u32,
    /// The initiator's id for it.
    pub request: RequestId,
    /// Which exchange it is.
    pub exchange: ExchangeId,
}

/// A handler's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Success, with the response body.
    Ok(Bytes),
    /// Failure: travels back as a remote exception.
    Err(RemoteException),
    /// The handler stopped because the initiator cancelled.
    Cancelled,
}

/// Something the application or the driver must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Client: open one more transport connection and hand it over with
    /// `add_connection` (or report `connect_failed`).
    WantConnection,
    /// The nexus exists (client: created by the server; server: created for a client).
    NexusEstablished {
        /// Its id.
        nexus: NexusId,
    },
    /// Client: the server holds this client's NexusCreate because the identity's
    /// previous nexus still exists; it answers again when that nexus is reinstated
    /// (refused), expires or is destroyed (created). The connection stays open meanwhile.
    NexusHeld {
        /// The previous nexus, the one the create waits for.
        nexus: NexusId,
        /// Until it expires, if it has no connection left (`None`: it is in use).
        remaining: Option<std::time::Duration>,
        /// The server's explanation.
        reason: String,
    },
    /// A connection finished its handshake and joined the nexus.
    ConnectionBound {
        /// The connection.
        conn: LinkId,
        /// The nexus it joined.
        nexus: NexusId,
    },
    /// The endpoint is done with a connection: send what `poll_transmit` still returns for
    /// it (a GoAway, usually), then close the socket. Also emitted after `connection_lost`.
    ConnectionClosed {
        /// The connection.
        conn: LinkId,
        /// Why.
        reason: LinkCloseReason,
    },
    /// An outgoing request finished: exactly one such event per request id.
    Completed {
        /// The nexus it ran on.
        nexus: NexusId,
        /// The id `call` returned.
        request: RequestId,
        /// The response body, or why there is none.
        result: Result<Bytes, CallError>,
    },
    /// A request for this side's handler: delivered once per (nexus, channel, slot, seq).
    Request {
        /// The handle to answer with.
        request: IncomingRequest,
        /// The request body.
        body: Bytes,
    },
    /// The initiator cancelled a request this side is executing: stop and answer with
    /// [`Reply::Cancelled`] (or with the result, if it is already done).
    CancelRequested {
        /// The request.
        request: IncomingRequest,
    },
    /// The nexus is gone (client: it could not be recovered; server: its grace period
    /// expired). Outstanding requests completed with [`CallError::NexusLost`].
    NexusLost {
        /// Its id.
        nexus: NexusId,
    },
    /// The nexus was destroyed on the client's request.
    NexusDestroyed {
        /// Its id.
        nexus: NexusId,
    },
}
