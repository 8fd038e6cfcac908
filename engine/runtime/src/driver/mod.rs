//! Runs the sans-IO session endpoints ([`hawser_session::ClientEndpoint`],
//! [`hawser_session::ServerEndpoint`]) on `hawser-shards`.
//!
//! # Shape
//!
//! One endpoint lives on one shard, in a `Host` kept in that shard thread's local
//! registry (`Rc<RefCell<_>>`: a shard is single-threaded, so no lock anywhere). Each TCP
//! connection of the endpoint is a `SessionConn` — the shards [`Protocol`] — that holds
//! the same `Rc` and feeds the endpoint with bytes and `now`. Hence every connection of a
//! nexus lives on the shard that owns the nexus, as the session layer requires.
//!
//! A protocol callback has no [`ShardCtx`], yet the endpoint's reaction to one
//! connection's bytes may need one: a freed slot sends a queued request on *another*
//! connection, a `WantConnection` opens a socket, a deadline arms a timer. The host
//! therefore polls every other connection's output into a per-connection stash right
//! away and queues the context-bound work as `Action`s; a task on the same shard
//! (scheduled at most once at a time) executes them with the context, waking exactly the
//! connections that have something to send.
//!
//! # Foreign threads
//!
//! The blocking API and the blocking-handler workers talk to a host through a crossbeam
//! channel of `HostCommand`s plus a "scheduled" flag: the sender that flips the flag posts
//! one zero-sized task through [`Shards::run_on`] (boxing a zero-sized closure does not
//! allocate; the shard's doorbell is rung only when the shard is parked). The task drains
//! every command queued by then. No Mutex on the data path.
//!
//! # Handlers
//!
//! Inline handlers run on the shard, in the loop iteration that received the request:
//! the cheapest path, for handlers that never block (echo, lookups, queueing work).
//! Blocking handlers run on a small pool of worker threads owned by the server and
//! answer through the command channel; they see cancellation through
//! [`RequestContext::is_cancelled`].

mod conn;
mod host;
mod install;
mod refusals;
mod route;
mod sniff;
mod workers;

pub(crate) use host::Serving;
pub(crate) use install::{HostHandle, install_client, install_server, shards_config, uninstall};
pub(crate) use workers::{Drain, spawn_workers};
