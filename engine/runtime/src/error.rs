//! What can go wrong setting a server or client up.

use std::net::{SocketAddr, ToSocketAddrs};

use crate::address::Address;
use std::time::Duration;

use hawser_session::NexusId;

/// What can go wrong setting a server or client up.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The shards could not start or listen (the message says what to do).
    #[error(transparent)]
    Shards(#[from] hawser_shards::ShardError),
    /// The address does not parse or resolve.
    #[error(transparent)]
    Address(#[from] crate::address::AddressError),
    /// A layer cannot run on the address's transport (DSP over `udp://`).
    #[error(transparent)]
    Pipeline(#[from] crate::transport::CompositionError),
    /// A transport cannot do what was asked of it.
    #[error("{address}: {source}")]
    Transport {
        /// Where.
        address: crate::address::Address,
        /// Why.
        source: std::io::Error,
    },
    /// The address did not resolve.
    #[error("cannot resolve {addr}: {source}")]
    Resolve {
        /// What was given.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The server refused the connection (authentication failed, nexus refused, ...).
    #[error("{addr} refused the session: {reason}")]
    Refused {
        /// The server.
        addr: Address,
        /// What the session layer reported.
        reason: String,
    },
    /// The server holds the new nexus: the identity's previous nexus still exists (a
    /// client that did not end cleanly, or one still running), and the server never runs
    /// two of one identity's nexuses side by side.
    #[error(
        "{addr} holds the session (held: one nexus per identity at a time): {reason}; wait \
         until that nexus has ended or expired, or replace it (ClientOptions::replace_nexus = \
         {nexus}) if no client uses it any more"
    )]
    Held {
        /// The server.
        addr: Address,
        /// The previous nexus.
        nexus: NexusId,
        /// Until it expires (`None`: it still has connections, so it is in use).
        remaining: Option<Duration>,
        /// The server's explanation.
        reason: String,
    },
    /// No nexus could be established in time (server down or unreachable).
    /// A configuration that cannot be used (TLS certificates, keys, pins).
    #[error("{0}")]
    Config(String),
    #[error("no session with {addr} within {timeout:?}")]
    Timeout {
        /// The server.
        addr: Address,
        /// The configured connect timeout.
        timeout: Duration,
    },
}

/// The first address `addr` resolves to.
pub(crate) fn resolve(addr: impl ToSocketAddrs + std::fmt::Debug) -> Result<SocketAddr, ApiError> {
    let text = format!("{addr:?}");
    addr.to_socket_addrs()
        .and_then(|mut a| {
            a.next()
                .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address"))
        })
        .map_err(|source| ApiError::Resolve { addr: text, source })
}
