//! How other threads talk to a host on its shard: commands over a channel, a doorbell
//! that wakes the shard only when needed, and the tokens that name calls.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use crossbeam::channel::Sender;
use hawser_session::{
    CallError, CallOptions, ExchangeId, IncomingRequest, NexusId, Reply, ServerCredentials,
    ServerLimits,
};
use hawser_shards::Shards;

use crate::stats::StatsReport;

/// What the application thread asks a host to do.
pub(crate) enum HostCommand {
    /// Start a call (on the server: a backchannel call to `nexus`); the result goes to
    /// `reply` tagged with `token`.
    Call {
        token: u64,
        nexus: Option<NexusId>,
        exchange: ExchangeId,
        body: Bytes,
        options: CallOptions,
        reply: ReplyTo,
    },
    /// Cancel the call started with `token`.
    Cancel { token: u64 },
    /// A blocking handler finished.
    Respond {
        request: IncomingRequest,
        reply: Reply,
    },
    /// Test hook: shut down (shutdown(2)) the `index`-th open connection.
    #[cfg(feature = "testing")]
    KillConnection { index: usize },
    /// Read statistics.
    Stats { reply: Sender<StatsReport> },
    /// Destroy the nexus (client).
    Destroy,
    /// Replace a server's credentials and limits (an operator's reload).
    Reconfigure {
        credentials: Box<ServerCredentials>,
        limits: ServerLimits,
    },
}

/// The end of one call.
#[derive(Debug)]
pub(crate) struct CallCompletion {
    pub(crate) token: u64,
    pub(crate) result: Result<Bytes, CallError>,
}

/// What runs a call's completion on the host's shard (see [`ReplyTo::Callback`]).
pub(crate) type CompletionFn = Box<dyn FnOnce(Result<Bytes, CallError>) + Send>;

/// Where a call's completion goes.
pub(crate) enum ReplyTo {
    /// To a waiting thread (or a pipeline's queue), tagged with the call's token.
    Channel(Sender<CallCompletion>),
    /// Run on the host's shard thread, in the loop iteration that received the answer:
    /// no thread hop, no wake-up of another thread.
    Callback(CompletionFn),
}

impl ReplyTo {
    pub(crate) fn deliver(self, token: u64, result: Result<Bytes, CallError>) {
        match self {
            ReplyTo::Channel(tx) => {
                let _ = tx.send(CallCompletion { token, result });
            }
            ReplyTo::Callback(done) => done(result),
        }
    }
}

/// How a client's connection attempt ended, before the nexus existed.
#[derive(Debug, Clone)]
pub(crate) enum Readiness {
    Established,
    Refused(String),
    /// The server holds the create (the identity's previous nexus still exists); it may
    /// still be established when the hold ends.
    Held {
        nexus: NexusId,
        remaining: Option<Duration>,
        reason: String,
    },
}

/// Starts calls on one host from any thread: its command channel and the tokens naming
/// the calls (one counter per host, so that a token names one call for cancellation).
#[derive(Debug)]
pub(crate) struct Caller {
    pub(crate) commands: CommandSender,
    next_token: AtomicU64,
}

impl Caller {
    pub(crate) fn new(commands: CommandSender) -> Self {
        Caller {
            commands,
            next_token: AtomicU64::new(1),
        }
    }

    /// Starts a call (`nexus`: the backchannel of that nexus, on a server) whose
    /// completion goes to `reply`; returns its token.
    pub(crate) fn start(
        &self,
        nexus: Option<NexusId>,
        exchange: ExchangeId,
        body: Bytes,
        options: CallOptions,
        reply: &Sender<CallCompletion>,
    ) -> u64 {
        self.start_to(
            nexus,
            exchange,
            body,
            options,
            ReplyTo::Channel(reply.clone()),
        )
    }

    /// Starts a call whose completion goes to `reply`; returns its token.
    pub(crate) fn start_to(
        &self,
        nexus: Option<NexusId>,
        exchange: ExchangeId,
        body: Bytes,
        options: CallOptions,
        reply: ReplyTo,
    ) -> u64 {
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let refused = self.commands.send_or_return(HostCommand::Call {
            token,
            nexus,
            exchange,
            body,
            options,
            reply,
        });
        if let Some(HostCommand::Call { reply, .. }) = refused {
            reply.deliver(token, Err(CallError::NoNexus));
        }
        token
    }
}

/// Lets a foreign thread (or a protocol callback without a context) get a host's shard to
/// run its commands and actions.
#[derive(Clone)]
pub(crate) struct Waker {
    pub(crate) shards: Weak<Shards>,
    pub(crate) shard: usize,
    pub(crate) scheduled: Arc<AtomicBool>,
    /// Set before the owner tears the shards down: no upgrade of `shards` after that, so
    /// the last `Arc<Shards>` is always dropped by its owner, never on a shard thread.
    pub(crate) shutdown: Arc<AtomicBool>,
    /// Posts the host's task on its shard (the driver's: this module does not know it).
    post: fn(&Shards, usize),
}

impl Waker {
    /// A waker for the host on `shard`, whose task `post` schedules there (it should
    /// post a zero-sized task, so that scheduling allocates nothing).
    pub(crate) fn new(shards: &Arc<Shards>, shard: usize, post: fn(&Shards, usize)) -> Self {
        Waker {
            shards: Arc::downgrade(shards),
            shard,
            scheduled: Arc::new(AtomicBool::new(false)),
            shutdown: Arc::new(AtomicBool::new(false)),
            post,
        }
    }

    pub(crate) fn wake(&self) {
        // SeqCst pairs with the fence in `run_host`: either the task's drain sees the
        // command sent before this swap, or this swap sees `false` and posts a new task.
        if self.scheduled.swap(true, Ordering::SeqCst) || self.shutdown.load(Ordering::Acquire) {
            return;
        }
        if let Some(shards) = self.shards.upgrade() {
            (self.post)(&shards, self.shard);
        }
    }

    pub(crate) fn begin_shutdown(&self) {
        self.shutdown.store(true, Ordering::Release);
    }
}

/// Sends a command to a host and makes sure its shard will look.
#[derive(Clone)]
pub(crate) struct CommandSender {
    pub(crate) tx: Sender<HostCommand>,
    pub(crate) waker: Waker,
}

impl CommandSender {
    /// The host's statistics (empty if the host is gone or does not answer in 5 s).
    pub(crate) fn stats(&self) -> StatsReport {
        let (tx, rx) = crossbeam::channel::bounded(1);
        if !self.send(HostCommand::Stats { reply: tx }) {
            return StatsReport::default();
        }
        rx.recv_timeout(Duration::from_secs(5)).unwrap_or_default()
    }

    pub(crate) fn send(&self, cmd: HostCommand) -> bool {
        self.send_or_return(cmd).is_none()
    }

    /// Sends `cmd`, or hands it back if the host is gone.
    pub(crate) fn send_or_return(&self, cmd: HostCommand) -> Option<HostCommand> {
        if let Err(refused) = self.tx.send(cmd) {
            return Some(refused.into_inner());
        }
        self.waker.wake();
        None
    }
}

impl std::fmt::Debug for CommandSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CommandSender")
    }
}
