//! Errors of the session layer: what a call can end with, and what a peer can do wrong.

use super::exception::RemoteException;

/// How an outgoing request ended when it did not produce a response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The remote handler failed; its exception (with its cause chain) travelled back.
    #[error("remote exception: {0}")]
    Remote(RemoteException),
    /// The request was cancelled (by the initiator; the responder agreed or had not
    /// started it).
    #[error("cancelled")]
    Cancelled,
    /// The nexus was lost (grace period expired, or the server no longer knows it) while
    /// the request was outstanding: it may or may not have executed, at most once.
    #[error("nexus lost before the request completed: it ran at most once")]
    NexusLost,
    /// The nexus was destroyed by the client.
    #[error("nexus destroyed")]
    NexusDestroyed,
    /// The request ran, but its reply was larger than the negotiated reply cache and was
    /// lost with a connection, so it cannot be replayed.
    #[error("request executed but its reply was too large to cache and was lost")]
    ReplyNotCached,
    /// The request is larger than the channel's negotiated maximum request size.
    #[error("request of {size} bytes exceeds the negotiated maximum of {max}")]
    RequestTooLarge {
        /// The request's size in bytes.
        size: usize,
        /// The negotiated maximum.
        max: u32,
    },
    /// The responder refused the request as larger than its maximum request size; it did
    /// not run. Its message names the limit.
    #[error("the peer refused a request of {size} bytes as too large: {message}")]
    RefusedTooLarge {
        /// The request's size in bytes.
        size: usize,
        /// The responder's words.
        message: String,
    },
    /// The response was larger than the channel's negotiated maximum response size.
    #[error("response exceeds the negotiated maximum response size")]
    ResponseTooLarge,
    /// The peer reported the slot/sequence pair as misordered (a protocol bug).
    #[error("the peer reported a misordered slot sequence")]
    Misordered,
    /// The endpoint cannot accept calls (nexus not established yet, lost, or destroyed).
    #[error("no usable nexus")]
    NoNexus,
}

/// What a peer did wrong; the connection that carried it is closed with a GoAway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The bytes do not form a valid frame (bad magic, checksum, digest, length, ...).
    #[error("malformed frame: {0}")]
    Frame(#[from] super::codec::FrameError),
    /// A frame arrived that is not allowed in the connection's current state.
    #[error("unexpected {0} frame in this state")]
    Unexpected(&'static str),
    /// The peer speaks no protocol version we do.
    #[error("no common protocol version")]
    Version,
    /// Authentication failed.
    #[error("authentication failed")]
    AuthFailed,
    /// The authentication mechanism is not enabled here.
    #[error("authentication mechanism not supported")]
    AuthMechanism,
    /// A request used a slot outside the negotiated table.
    #[error("slot out of range")]
    BadSlot,
    /// A frame's payload is larger than the negotiated maximum.
    #[error("frame payload exceeds the negotiated maximum")]
    TooLarge,
    /// Nothing was received within the heartbeat dead time.
    #[error("peer silent beyond the heartbeat dead time")]
    Dead,
    /// TLS failed, or was not agreed where it had to be.
    #[error("{0}")]
    Tls(#[from] super::tls::TlsFailure),
    /// The handshake did not finish in time.
    #[error("handshake timed out")]
    HandshakeTimeout,
    /// A frame did not arrive whole within the frame timeout after it started.
    #[error(
        "a frame of {len} bytes was not complete {seconds} s after it started ({received} received)"
    )]
    FrameTimeout {
        /// The frame's length (or what had arrived of a header).
        len: usize,
        /// Bytes of it received.
        received: usize,
        /// The timeout.
        seconds: u64,
    },
}

/// Why the endpoint closed (or asks the driver to close) a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkCloseReason {
    /// The peer violated the protocol (or sent corrupt bytes).
    Protocol(ProtocolError),
    /// The peer sent a GoAway with this code and text.
    PeerGoAway {
        /// The peer's GoAway code.
        code: u16,
        /// The peer's explanation.
        reason: String,
    },
    /// The driver reported the transport gone (reset, EOF, ...).
    TransportLost,
    /// The server refused the connection, its authentication or the nexus operation
    /// (over a limit, wrong credentials, unknown nexus, identity mismatch, ...): its words.
    Refused(String),
    /// Closed on purpose (nexus destroyed, surplus connection).
    Local,
}

impl std::fmt::Display for LinkCloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LinkCloseReason::Protocol(e) => write!(f, "{e}"),
            LinkCloseReason::PeerGoAway { code, reason } if reason.is_empty() => {
                write!(
                    f,
                    "closed by the peer ({})",
                    hawser_wire::dsp::GoAwayCode(*code)
                )
            }
            LinkCloseReason::PeerGoAway { code, reason } => write!(
                f,
                "closed by the peer ({}): {reason}",
                hawser_wire::dsp::GoAwayCode(*code)
            ),
            LinkCloseReason::TransportLost => f.write_str("connection lost"),
            LinkCloseReason::Refused(why) => f.write_str(why),
            LinkCloseReason::Local => f.write_str("closed locally"),
        }
    }
}
