//! The DSP session layer as sans-IO state machines (the quinn-proto model).
//!
//! In hawser's layers (`wire ← session ← runtime ← {replicate, dmp, dtp} ← cli`), this
//! crate sits between the frame codecs of `hawser_wire::dsp`, which it speaks, and the
//! runtime, which drives it on io_uring shards; it knows nothing of either shards or
//! runtime.
//!
//! A **nexus** (session) is a logical conduit between a client and a server with an id of
//! its own, carried over a trunk of transport connections that come and go. It has two
//! channels: the **fore channel** carries requests from the client to the server, the
//! **backchannel** requests from the server to the client; each has its own negotiated
//! [`ChannelAttributes`] (slots, maximum request and response size, reply cache size).
//!
//! Nothing here touches a socket, a thread or a clock. A driver (the runtime's shard loop
//! in production, a simulator in tests) owns the transports and feeds the two endpoints,
//! [`ClientEndpoint`] and [`ServerEndpoint`]: one [`Endpoint`] type with a
//! [`ClientSide`] or a [`ServerSide`], sharing everything done per connection:
//!
//! | driver → endpoint | endpoint → driver |
//! |---|---|
//! | `ClientEndpoint::add_connection(now, nonce)` / `ServerEndpoint::accept(now, nonce)`: a transport is up | [`Event::WantConnection`]: open one more (client) |
//! | `handle_input(now, conn, &bytes)`, or `recv_buffer` / `handle_received`: bytes arrived | `poll_transmit(now, conn, &mut impl TransmitSink)`: bytes to send |
//! | `connection_lost(now, conn)`: the transport failed | [`Event::ConnectionClosed`]: flush, then close it |
//! | `handle_timeout(now)` when `poll_timeout()` passes | `poll_timeout() -> Option<Instant>` |
//! | `call`, `cancel`, `respond`, `destroy` (the application) | `poll_event()`: [`Event`]s for the application |
//!
//! Every call takes `now`; nonces come from the driver. So a simulator can run both
//! endpoints in virtual time with seeded faults and replay any history exactly (see
//! `tests/sim/`).
//!
//! **Exactly-once.** A request takes a slot of its channel and the slot's next sequence id
//! when first sent, and keeps both across every retry. The responder keeps, per slot, the
//! last sequence id and the cached reply — per nexus, not per connection: the next
//! sequence id is executed once and its reply cached, the same sequence id is answered
//! from the cache, anything else is refused as misordered. So a retry over any
//! connection, after any reconnection, never runs a handler twice. The slot count is also
//! the channel's window: at most that many requests are in flight.
//!
//! The full semantics (handshake, lifecycle, retries, cancellation, credits, heartbeats)
//! are in `docs/PROTOCOL.md` ("Session layer").
//!
//! # Example
//!
//! A client and a server wired back to back through memory: the loop below is all a
//! driver does.
//!
//! ```
//! use std::time::Instant;
//! use bytes::{Bytes, BytesMut};
//! use hawser_session::{
//!     CallOptions, ClientEndpoint, ClientConfig, ClientCredentials, Event, ExchangeId, Reply,
//!     ServerEndpoint, ServerConfig, ServerCredentials,
//! };
//!
//! let now = Instant::now();
//! let mut server = ServerEndpoint::new(ServerConfig::new(ServerCredentials::anonymous()), 7);
//! let mut config = ClientConfig::new("example-client", ClientCredentials::Anonymous);
//! config.connections = 2; // a trunk of two connections
//! let mut client = ClientEndpoint::new(config, now);
//!
//! // Calls may start before the nexus exists; they wait for a slot and a connection.
//! let call = client
//!     .call(now, ExchangeId(1), Bytes::from_static(b"hello"), CallOptions::default())
//!     .unwrap();
//!
//! let mut connections = Vec::new(); // (client side, server side) of each "transport"
//! let mut buf = BytesMut::new();
//! let mut answer = None;
//! while answer.is_none() {
//!     while let Some(event) = client.poll_event() {
//!         match event {
//!             Event::WantConnection => {
//!                 // A real driver connects a socket; nonces must be random.
//!                 let c = client.add_connection(now, [1; 16]);
//!                 let s = server.accept(now, [2; 16]);
//!                 connections.push((c, s));
//!             }
//!             Event::Completed { request, result, .. } if request == call => {
//!                 answer = Some(result)
//!             }
//!             _ => {}
//!         }
//!     }
//!     while let Some(event) = server.poll_event() {
//!         if let Event::Request { request, body } = event {
//!             // The handler of exchange 1 echoes its request.
//!             server.respond(now, &request, Reply::Ok(body));
//!         }
//!     }
//!     for &(c, s) in &connections {
//!         buf.clear();
//!         client.poll_transmit(now, c, &mut buf);
//!         server.handle_input(now, s, &buf);
//!         buf.clear();
//!         server.poll_transmit(now, s, &mut buf);
//!         client.handle_input(now, c, &buf);
//!     }
//! }
//! assert_eq!(answer, Some(Ok(Bytes::from_static(b"hello"))));
//! assert_eq!(client.bound_connections().len(), 2);
//! assert_eq!(client.stats().requests_completed, 1);
//! ```
pub mod auth;
mod budget;
mod client;
mod codec;
mod config;
mod deadlines;
mod endpoint;
mod error;
mod event;
mod exception;
mod frames;
mod guard;
#[cfg(test)]
mod hostile_tests;
mod initiator;
mod link;
mod links;
mod nexus;
mod peer;
mod responder;
mod server;
mod stats;
mod throttle;
pub mod tls;
mod types;

pub use auth::{ClientCredentials, Mechanism, ScramEntry, ServerCredentials};
pub use budget::{BUDGETED_FRAME_MIN, ReceiveBudget, Reservation};
pub use client::{CallOptions, ClientEndpoint, ClientSide};
pub use codec::FrameError;
pub use config::{
    AuthThrottleConfig, ChannelAttributes, ClientConfig, DEFAULT_RECEIVE_BUDGET, ServerConfig,
    ServerLimits, StorageAdvice, Timers,
};
pub use endpoint::Endpoint;
pub use error::{CallError, LinkCloseReason, ProtocolError};
pub use event::{Event, IncomingRequest, Reply};
pub use exception::RemoteException;
pub use link::TransmitSink;
pub use nexus::Footprint;
pub use peer::{LocalCredentials, Peer};
pub use server::{NexusOwner, ServerEndpoint, ServerLoad, ServerSide};
pub use stats::{ConnectionStats, ConnectionTotals, NexusStats};
pub use throttle::ThrottleConfig;
pub use throttle::TokenBucket;
pub use tls::{ClientTls, ServerTls, TlsFailure};
pub use types::{Channel, ExchangeId, IdMap, LinkId, NexusId, RequestId};
