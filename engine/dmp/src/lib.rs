//! DMP, the direct message protocol: message *sinks* (many publishers) and *feeds* (one
//! consumer each) on a server, wired over a nexus and fed over direct connections that
//! carry nothing but messages.
//!
//! - [`broker`]: the sans-IO state of one server's sinks, feeds, bindings and leases.
//! - [`direct`]: the shards protocol of a direct connection (the seed's dialog, then
//!   messages one way) and its heartbeat.
//! - [`service`]: the wiring exchanges over a nexus and the direct-connection protocol,
//!   as one runtime [`Service`](hawser_runtime::Service).
//! - [`client`]: [`Publisher`], [`Consumer`] and the wiring calls.
//!
//! The bytes are in `docs/PROTOCOL.md` ("DMP direct messages", "DMP wiring exchanges").

pub mod broker;
pub mod client;
pub mod config;
pub mod direct;
pub mod pattern;
mod registry;
pub mod service;

pub use client::{Consumer, Delivery, DmpError, Publisher, Wiring};
pub use config::{BindingDeclaration, DmpConfig, DmpLimits, FeedDeclaration, SinkDeclaration};
pub use hawser_wire::dmp::wiring::FlowPolicy;
pub use service::{DmpService, exchange};
