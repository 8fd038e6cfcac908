//! Calls whose completion runs on the client's shard: [`Client::call_then`] and
//! [`ShardCaller`].
//!
//! A blocking call crosses two threads twice: the caller hands the request to the
//! client's shard and sleeps, the shard wakes it with the answer. Where a wake-up costs
//! more than the exchange itself (as on small virtual machines), that hand-off dominates
//! a ping-pong. A completion callback runs on the shard, in the
//! loop iteration that received the answer, and may start the next call from there: the
//! exchange then wakes only the two shards, as a plain socket ping-pong wakes its two
//! threads. This is the form for thread-per-core applications (a handler calling another
//! service, a pipeline of dependent calls) and for the rpc benchmark.
//!
//! The callback must not block: it runs on the shard's event loop, between the
//! completions of every connection the shard owns.
//!
//! ```
//! use std::sync::mpsc;
//! use bytes::Bytes;
//! use hawser_runtime::{Client, ClientOptions, ExchangeId, ServerBuilder, Service, ShardCaller};
//!
//! const ECHO: ExchangeId = ExchangeId(1);
//! let echo = Service::new("echo").handler(ECHO, "echo", |_ctx, body| Ok(body));
//! let server = ServerBuilder::new().service(echo).listen("127.0.0.1:0")?;
//! let client = Client::connect(server.local_addr(), ClientOptions::default())?;
//!
//! // Three dependent calls, each started by the previous one's completion, on the shard.
//! fn chain(caller: ShardCaller, left: u32, done: mpsc::Sender<u32>) {
//!     let next = caller.clone();
//!     caller.call_then(ECHO, Bytes::from(left.to_le_bytes().to_vec()), move |answer| {
//!         let got = u32::from_le_bytes(answer.unwrap()[..4].try_into().unwrap());
//!         if got == 0 {
//!             done.send(got).unwrap();
//!         } else {
//!             chain(next, got - 1, done);
//!         }
//!     });
//! }
//! let (tx, rx) = mpsc::channel();
//! chain(client.shard_caller(), 2, tx);
//! assert_eq!(rx.recv()?, 0);
//!
//! client.close();
//! server.shutdown();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::sync::Arc;

use bytes::Bytes;

use super::{CallError, CallOptions, ExchangeId};
use crate::command::{Caller, ReplyTo};

/// Starts calls on a client's nexus whose completions run on the client's shard: no thread
/// hop, and the callback may start the next call from there. Cheap to clone, `Send` and `Sync`: move one into a
/// completion callback to start the next call from there.
#[derive(Debug, Clone)]
pub struct ShardCaller {
    caller: Arc<Caller>,
}

impl ShardCaller {
    pub(crate) fn new(caller: Arc<Caller>) -> Self {
        ShardCaller { caller }
    }

    /// Starts a call; `done` runs with its result on the client's shard thread when it
    /// completes (with [`CallError::NoNexus`] at once if the client is gone). `done` must
    /// not block.
    pub fn call_then<F>(&self, exchange: ExchangeId, request: Bytes, done: F)
    where
        F: FnOnce(Result<Bytes, CallError>) + Send + 'static,
    {
        self.call_then_with(exchange, request, CallOptions::default(), done);
    }

    /// [`call_then`](Self::call_then) with options (`ordered`).
    pub fn call_then_with<F>(
        &self,
        exchange: ExchangeId,
        request: Bytes,
        options: CallOptions,
        done: F,
    ) where
        F: FnOnce(Result<Bytes, CallError>) + Send + 'static,
    {
        self.caller.start_to(
            None,
            exchange,
            request,
            options,
            ReplyTo::Callback(Box::new(done)),
        );
    }
}
