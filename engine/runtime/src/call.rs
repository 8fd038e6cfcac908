//! Calls in flight: a single pending call, and pipelines of many with one completion
//! queue.

use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam::channel::{self, Receiver};
use hawser_session::{CallError, CallOptions, ExchangeId, NexusId, ThrottleConfig, TokenBucket};

use crate::command::{CallCompletion, Caller, HostCommand};

/// A call in flight (see [`Client::start_call`](crate::Client::start_call)).
#[derive(Debug)]
pub struct PendingCall {
    pub(crate) token: u64,
    pub(crate) spin: Duration,
    pub(crate) rx: Receiver<CallCompletion>,
    pub(crate) commands: crate::command::CommandSender,
}

impl PendingCall {
    /// Waits for the answer.
    pub fn wait(self) -> Result<Bytes, CallError> {
        recv_spinning(&self.rx, self.spin)
            .map(|c| c.result)
            .unwrap_or(Err(CallError::NoNexus))
    }

    /// Waits at most `timeout`; `None` if still running.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<Result<Bytes, CallError>> {
        match self.rx.recv_timeout(timeout) {
            Ok(c) => Some(c.result),
            Err(channel::RecvTimeoutError::Timeout) => None,
            Err(channel::RecvTimeoutError::Disconnected) => Some(Err(CallError::NoNexus)),
        }
    }

    /// Asks the server to cancel it; the call still completes (usually with
    /// [`CallError::Cancelled`], or with its answer if that won the race).
    pub fn cancel(&self) {
        self.commands
            .send(HostCommand::Cancel { token: self.token });
    }
}

/// Receives a completion, first polling for up to `spin` (a blocked thread's futex
/// wake-up costs tens of microseconds on a loaded machine; a short poll catches fast
/// answers without it).
pub(crate) fn recv_spinning(
    rx: &Receiver<CallCompletion>,
    spin: Duration,
) -> Option<CallCompletion> {
    if !spin.is_zero() {
        let start = std::time::Instant::now();
        loop {
            match rx.try_recv() {
                Ok(c) => return Some(c),
                Err(channel::TryRecvError::Disconnected) => return None,
                Err(channel::TryRecvError::Empty) => {}
            }
            if start.elapsed() >= spin {
                break;
            }
            std::hint::spin_loop();
        }
    }
    rx.recv().ok()
}

/// No call of a pipeline finished within the time waited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no call finished within the time waited")]
pub struct WaitTimedOut;

/// A finished pipeline call: its token and its result.
pub type FinishedCall = (u64, Result<Bytes, CallError>);

/// Calls in flight with one completion queue (see [`Client::pipeline`](crate::Client::pipeline) and, for
/// backchannel calls, [`Backchannel::pipeline`](crate::Backchannel::pipeline)).
#[derive(Debug)]
pub struct Pipeline<'c> {
    caller: &'c Caller,
    /// The nexus whose backchannel the calls go to (a server's pipeline); `None` on a
    /// client.
    nexus: Option<NexusId>,
    spin: Duration,
    tx: channel::Sender<CallCompletion>,
    rx: Receiver<CallCompletion>,
    outstanding: usize,
    /// Request bytes wait here before they go (see [`rate_limit`](Self::rate_limit)).
    rate: Option<TokenBucket>,
}

impl<'c> Pipeline<'c> {
    pub(crate) fn new(caller: &'c Caller, nexus: Option<NexusId>, spin: Duration) -> Self {
        let (tx, rx) = channel::unbounded();
        Pipeline {
            caller,
            nexus,
            spin,
            tx,
            rx,
            outstanding: 0,
            rate: None,
        }
    }

    /// Caps the request bytes this pipeline sends at `bytes_per_sec` (`None` or 0: no
    /// cap): [`submit`](Self::submit) waits until a token bucket holding 50 ms of them
    /// (at least 64 KiB) has the request's bytes. A request larger than the bucket goes
    /// once the bucket is full and leaves it in debt, so the average holds whatever the
    /// request size.
    pub fn rate_limit(mut self, bytes_per_sec: Option<u64>) -> Self {
        self.rate = bytes_per_sec.filter(|&r| r > 0).map(|rate| {
            TokenBucket::new(
                ThrottleConfig {
                    bytes_per_second: rate,
                    burst_bytes: (rate / 20).max(64 * 1024),
                },
                Instant::now(),
            )
        });
        self
    }

    /// Starts a call; returns its token (as [`next_completion`](Self::next_completion)
    /// reports it).
    pub fn submit(&mut self, exchange: ExchangeId, request: Bytes) -> u64 {
        self.submit_with(exchange, request, CallOptions::default())
    }

    /// Starts a call with options (`ordered`: delivered after every earlier ordered call).
    pub fn submit_with(
        &mut self,
        exchange: ExchangeId,
        request: Bytes,
        options: CallOptions,
    ) -> u64 {
        if let Some(bucket) = &mut self.rate {
            // Answers queue up in the session while this thread sleeps, and are taken
            // when it next waits for one. A cap counts bytes before compression.
            let len = options.body_size(&request) as u64;
            loop {
                let now = Instant::now();
                if bucket.try_take(now, len) {
                    break;
                }
                std::thread::sleep(bucket.ready_at(len).saturating_duration_since(now));
            }
        }
        let token = self
            .caller
            .start(self.nexus, exchange, request, options, &self.tx);
        self.outstanding += 1;
        token
    }

    /// Cancels the call `token`.
    pub fn cancel(&self, token: u64) {
        self.caller.commands.send(HostCommand::Cancel { token });
    }

    /// Calls submitted and not yet returned by `next_completion`.
    pub fn outstanding(&self) -> usize {
        self.outstanding
    }

    /// The next finished call if one is ready, without waiting.
    pub fn try_next_completion(&mut self) -> Option<(u64, Result<Bytes, CallError>)> {
        if self.outstanding == 0 {
            return None;
        }
        let c = self.rx.try_recv().ok()?;
        self.outstanding -= 1;
        Some((c.token, c.result))
    }

    /// Waits at most `timeout` for the next call to finish: `Ok(None)` when none is
    /// outstanding, [`WaitTimedOut`] when none finished in time.
    pub fn next_completion_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<FinishedCall>, WaitTimedOut> {
        if self.outstanding == 0 {
            return Ok(None);
        }
        match self.rx.recv_timeout(timeout) {
            Ok(c) => {
                self.outstanding -= 1;
                Ok(Some((c.token, c.result)))
            }
            Err(channel::RecvTimeoutError::Timeout) => Err(WaitTimedOut),
            Err(channel::RecvTimeoutError::Disconnected) => Ok(None),
        }
    }

    /// Waits until one of `pipelines` has a finished call to take (with
    /// [`try_next_completion`](Self::try_next_completion)), at most `timeout`: that
    /// pipeline's index, or `None` when the time ran out or none has a call outstanding.
    /// One thread thus drives pipelines to several servers (a push to several targets).
    /// An index may rarely be returned with nothing to take: take what is there.
    pub fn wait_any(pipelines: &[&Pipeline<'_>], timeout: Duration) -> Option<usize> {
        let mut select = channel::Select::new();
        let mut indexes = Vec::new();
        for (index, pipeline) in pipelines.iter().enumerate() {
            if pipeline.outstanding > 0 {
                select.recv(&pipeline.rx);
                indexes.push(index);
            }
        }
        if indexes.is_empty() {
            return None;
        }
        let ready = select.ready_timeout(timeout).ok()?;
        indexes.get(ready).copied()
    }

    /// Waits for the next call to finish; `None` when none is outstanding.
    pub fn next_completion(&mut self) -> Option<(u64, Result<Bytes, CallError>)> {
        if self.outstanding == 0 {
            return None;
        }
        let c = recv_spinning(&self.rx, self.spin)?;
        self.outstanding -= 1;
        Some((c.token, c.result))
    }
}
