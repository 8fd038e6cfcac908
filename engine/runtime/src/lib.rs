//! hawser's runtime: the sans-IO session endpoints of `hawser-session` run on the io_uring
//! shards of `hawser-shards`, behind a blocking API — serve exchanges and call them over a
//! trunked nexus, from ordinary (non-async) threads.
//!
//! Place in the house: `wire ← session ← runtime ← {replicate, …} ← cli`, and
//! `shards ← runtime`. Services built on the runtime (the replication task) use only this
//! crate's API, never the session or the shards directly.
//!
//! A [`Server`] runs the session server on its own io_uring shard and executes the
//! handlers of its [`Service`]s; a [`Client`] runs one nexus over `N` connections on its
//! own shard, reconnecting with backoff and retrying outstanding requests on loss
//! (exactly once: a retried request is answered from the server's reply cache, never run
//! twice). Calls from any thread travel to the shard over a channel with a doorbell; no
//! lock is taken on the data path.
//!
//! - [`Client::call`]: one exchange, waits for its answer.
//! - [`Client::start_call`] → [`PendingCall`]: pipelining; [`PendingCall::wait`] later.
//! - [`Client::call_many`]: a batch, answers in order.
//! - [`Client::call_then`] / [`ShardCaller`]: the completion runs on the client's shard
//!   (no thread hop), and may start the next call from there.
//! - [`PendingCall::cancel`]: remote cancellation (the handler sees
//!   [`RequestContext::is_cancelled`]; the call ends with [`CallError::Cancelled`]).
//! - [`Client::stats`], [`Server::stats`]: nexus and connection counters with HDR
//!   histograms (per-exchange latency, heartbeat RTT).
//! - Full duplex: a client serves [`ClientOptions::backchannel`]; the server calls it with
//!   [`Server::call`] / [`Server::start_call`] on a nexus from [`Server::nexuses`], or
//!   through a [`Backchannel`] ([`Server::backchannel`], or
//!   [`RequestContext::backchannel`] inside a handler: call back the client that sent
//!   the request), which also offers ordered calls and a [`Pipeline`].
//!
//! Handlers: [`Service::handler`] runs on the server's shard (it must not block);
//! [`Service::blocking_handler`] runs on a worker thread and may block or poll for
//! cancellation. A handler error travels back as a typed [`RemoteException`]
//! ([`CallError::Remote`]).
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use hawser_runtime::{Client, ClientOptions, ExchangeId, ServerBuilder, Service};
//!
//! const ECHO: ExchangeId = ExchangeId(1);
//! let echo = Service::new("echo").handler(ECHO, "echo", |_ctx, body| Ok(body));
//! let server = ServerBuilder::new().service(echo).listen("127.0.0.1:0")?;
//!
//! let config = ClientOptions { connections: 2, ..ClientOptions::default() };
//! let client = Client::connect(server.local_addr(), config)?;
//! let answer = client.call(ECHO, Bytes::from_static(b"hello, hawser"))?;
//! assert_eq!(&answer[..], b"hello, hawser");
//!
//! // Pipelined: many calls in flight over both connections.
//! let answers = client.call_many(ECHO, (0..100u32).map(|i| Bytes::from(i.to_le_bytes().to_vec())));
//! assert!(answers.iter().all(|a| a.is_ok()));
//!
//! client.close();
//! server.shutdown();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Transports
//!
//! An [`Address`] names its transport: `host:port` or `tcp://…`, `unix:///path`,
//! `shm://name` or `shm:///path` (shared memory), `udp://…`. [`ServerBuilder::listen_on`]
//! listens on several at once and [`Client::connect_to`] connects over any; the
//! [`transport`] module holds the transports, their capabilities and the layers composed
//! on them ([`transport::ProtocolStack`] refuses DSP on a datagram transport, in words).
//! The session runs the same on every reliable stream.
//!
//! # Placement
//!
//! A nexus and all its connections live on one shard (the session layer requires it):
//! a server's nexuses share the shard it runs on ([`ServerBuilder::runtime`] chooses it).
//! Inside, `driver` binds each endpoint to its shard (a host per endpoint, a shards
//! protocol per connection); `command` is how other threads reach a host; `service` the
//! handlers; `call`, `client`, `server`, `backchannel` and `on_shard` the API.

mod address;
mod backchannel;
mod call;
mod client;
mod command;
mod driver;
mod error;
pub mod job_log;
mod on_shard;
mod runtime;
mod server;
mod service;
mod stats;
pub mod tls;
/// The SASL side: mechanisms and the user database's entries.
pub use hawser_session::auth;
pub mod transport;

pub use address::{Address, AddressError, SHM_DIR};
pub use backchannel::Backchannel;
pub use call::{FinishedCall, PendingCall, Pipeline, WaitTimedOut};
pub use client::{Client, ClientOptions};
pub use error::ApiError;
pub use hawser_session::{
    CallError, CallOptions, ClientTls, ConnectionStats, ExchangeId, Footprint, Mechanism, NexusId,
    NexusStats, RemoteException, ScramEntry, ServerLimits, ServerTls, TlsFailure,
};
pub use hawser_session::{LocalCredentials, NexusOwner, Peer, ServerCredentials, ServerLoad};
pub use on_shard::ShardCaller;
pub use runtime::{Runtime, RuntimeConfig};
pub use server::{DEFAULT_PORT, Server, ServerBuilder, anonymous_allowed};
pub use service::{DirectFactory, HandlerError, RequestContext, Service};

/// What a direct-connection protocol (see [`Service::direct_protocol`]) is made of: the
/// shards' sans-IO connection interface.
pub mod direct {
    pub use hawser_shards::{
        AppMessage, CloseReason, ConnId, PeerCredentials, Protocol, Received, Transmit,
        wake_connection,
    };
}
pub use stats::{NexusDetail, StatsHandle, StatsReport};

// Read-only mappings of file ranges, for sending a file's bytes from where the page cache
// holds them: a request body of one is safe to send even if the file shrinks first.
pub use hawser_shards::{MAX_MAPPED_RANGES, MappedRange};
