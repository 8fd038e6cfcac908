//! The source's [`Transport`] over a runtime [`Pipeline`]: every request is one exchange
//! of a client's nexus (or, for a pull, of a server's backchannel), many in flight
//! across the trunk's connections; manifest batches travel as ordered exchanges. Bodies
//! to compress are compressed on the job's threads ([`Compressor`]), not on the shard. A
//! push to several targets waits on the pipelines of all its clients at once
//! ([`FanoutTransport`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hawser_runtime::{CallError, CallOptions, Client, ExchangeId, Pipeline};

use super::DEFAULT_STALL_TIMEOUT;
use super::compressor::{Compressor, default_compress_threads};
use super::progress::Progress;
use crate::proto::MessageKind;
use crate::{Completion, FanoutTransport, RemoteError, Request, Transport, TransportError};

/// A request sent and not answered yet.
#[derive(Debug)]
struct InFlight {
    source_token: u64,
    kind: MessageKind,
    len: u64,
    /// The body of a manifest batch: its answer says which of its files are done.
    manifest: Option<bytes::Bytes>,
}

/// The source's transport over a client pipeline.
#[derive(Debug)]
pub struct PipelineTransport<'c> {
    pipeline: Pipeline<'c>,
    /// Pipeline token → the request's source token, kind, body length, and body when
    /// its answer is counted in [`Progress`] (a manifest batch).
    in_flight: HashMap<u64, InFlight>,
    progress: Arc<Progress>,
    stall_timeout: Duration,
    /// `None`: the session compresses, on the shard's thread.
    compressor: Option<Compressor>,
    /// Requests to compress, in send order, until a batch is full.
    to_compress: Vec<Request>,
    /// The time spent in [`Compressor::compress_batch`] so far.
    compressing: Duration,
    /// Under a `--rate` cap (which counts bytes before compression).
    rate_capped: bool,
    /// The last answer, or the send that found nothing outstanding: the stall timeout
    /// runs from there.
    last_heard: Instant,
}

impl<'c> PipelineTransport<'c> {
    /// A transport over a new pipeline of `client`.
    pub fn new(client: &'c Client, progress: Arc<Progress>) -> Self {
        Self::over(client.pipeline(), progress)
    }

    /// A transport over `pipeline` (a pull's source sends over a backchannel pipeline).
    pub fn over(pipeline: Pipeline<'c>, progress: Arc<Progress>) -> Self {
        PipelineTransport {
            pipeline,
            in_flight: HashMap::new(),
            progress,
            stall_timeout: DEFAULT_STALL_TIMEOUT,
            compressor: Some(Compressor::new(default_compress_threads())),
            to_compress: Vec::new(),
            compressing: Duration::ZERO,
            rate_capped: false,
            last_heard: Instant::now(),
        }
    }

    /// Compresses request bodies on `threads` threads of the job (the caller's among
    /// them); 0 leaves it to the session, on the shard's thread.
    pub fn compress_threads(mut self, threads: usize) -> Self {
        self.compressor = (threads > 0).then(|| Compressor::new(threads));
        self
    }

    /// Caps the bytes of request bodies sent at `bytes_per_sec` (`None` or 0: no cap;
    /// see [`Pipeline::rate_limit`]).
    pub fn rate_limit(mut self, bytes_per_sec: Option<u64>) -> Self {
        self.pipeline = self.pipeline.rate_limit(bytes_per_sec);
        self.rate_capped = bytes_per_sec.is_some_and(|r| r > 0);
        self
    }

    /// Gives up (the job fails with [`TransportError::Disconnected`], to be continued
    /// with `resume`) when no answer arrives for `timeout`: the client reconnects and
    /// retries for as long as it runs, so a target that is gone would otherwise be
    /// waited for forever.
    pub fn stall_timeout(mut self, timeout: Duration) -> Self {
        self.stall_timeout = timeout;
        self
    }

    /// Turns the pipeline's completion `token` into the source's, counting it in the
    /// progress.
    fn complete(
        &mut self,
        token: u64,
        result: Result<Bytes, CallError>,
    ) -> Result<Completion, TransportError> {
        self.last_heard = Instant::now();
        let InFlight {
            source_token,
            kind,
            len,
            manifest,
        } = self
            .in_flight
            .remove(&token)
            .ok_or_else(|| TransportError::Other(format!("unknown completion {token}")))?;
        let result = match result {
            Ok(body) => {
                self.progress.requests.fetch_add(1, Ordering::Relaxed);
                if matches!(kind, MessageKind::Block | MessageKind::Manifest) {
                    self.progress.bytes.fetch_add(len, Ordering::Relaxed);
                }
                if kind == MessageKind::Block {
                    self.progress.blocks.fetch_add(1, Ordering::Relaxed);
                }
                self.progress
                    .count_answer(kind, manifest.as_deref().unwrap_or_default(), &body);
                Ok(body)
            }
            Err(CallError::Remote(exception)) => Err(RemoteError {
                type_name: exception.type_name,
                message: exception.message,
            }),
            // The nexus is gone for good (the client already retried over its trunk and
            // reconnected while the grace period lasted): the job ends, `--resume` goes on.
            Err(other) => return Err(TransportError::Other(other.to_string())),
        };
        Ok(Completion {
            token: source_token,
            result,
        })
    }
}

impl PipelineTransport<'_> {
    /// Compresses the requests waiting for it and submits them, in send order.
    fn flush_compressed(&mut self) {
        if self.to_compress.is_empty() {
            return;
        }
        let requests = std::mem::take(&mut self.to_compress);
        let bodies: Vec<_> = requests.iter().map(|r| r.body.clone()).collect();
        let started = Instant::now();
        let compressed = match &mut self.compressor {
            Some(c) => c.compress_batch(&bodies),
            None => vec![None; bodies.len()],
        };
        self.compressing += started.elapsed();
        for (request, compressed) in requests.into_iter().zip(compressed) {
            self.submit(request, compressed);
        }
    }

    /// A batch not yet full waits for answers to free the window, unless so few
    /// requests are out that the link would idle.
    fn flush_if_idle(&mut self) {
        let batch = self.compressor.as_ref().map_or(0, Compressor::threads);
        if self.in_flight.len() < batch.max(1) {
            self.flush_compressed();
        }
    }

    /// Hands a request to the pipeline: its body as the job made it, or `compressed`.
    fn submit(&mut self, request: Request, compressed: Option<Bytes>) {
        if self.in_flight.is_empty() {
            self.last_heard = Instant::now();
        }
        let len = request.body.len() as u64;
        let manifest = (request.kind == MessageKind::Manifest).then(|| request.body.clone());
        let (source_token, kind) = (request.token, request.kind);
        // Compressed here, or found not worth it here: the session need not try again.
        let by_session = request.compress && self.compressor.is_none();
        let options = CallOptions {
            ordered: request.ordered,
            uncompressed: !by_session,
            precompressed: compressed.is_some(),
        };
        let body = compressed.unwrap_or(request.body);
        let token =
            self.pipeline
                .submit_with(ExchangeId(request.kind.exchange_id()), body, options);
        self.in_flight.insert(
            token,
            InFlight {
                source_token,
                kind,
                len,
                manifest,
            },
        );
    }
}

impl Transport for PipelineTransport<'_> {
    fn send(&mut self, request: Request) -> Result<(), TransportError> {
        let batch = self.compressor.as_ref().map_or(0, Compressor::threads);
        if batch > 0 && request.compress && request.body.len() >= hawser_wire::dsp::MIN_COMPRESS_LEN
        {
            self.to_compress.push(request);
            if self.to_compress.len() >= batch {
                self.flush_compressed();
            }
            return Ok(());
        }
        self.flush_compressed();
        self.submit(request, None);
        Ok(())
    }

    fn recv(&mut self) -> Result<Completion, TransportError> {
        self.flush_if_idle();
        let (token, result) = self
            .pipeline
            .next_completion_timeout(self.stall_timeout)
            .map_err(|_timed_out| TransportError::Disconnected)?
            .ok_or(TransportError::Idle)?;
        self.complete(token, result)
    }

    /// `None` under a `--rate` cap too: the thread then waits for the cap, which
    /// compressing cannot lift, and waiting would read as a link slower than lz4.
    fn compressing_time(&self) -> Option<Duration> {
        let told = self.compressor.is_some() && !self.rate_capped;
        told.then_some(self.compressing)
    }
}

impl FanoutTransport for PipelineTransport<'_> {
    fn try_recv(&mut self) -> Result<Option<Completion>, TransportError> {
        self.flush_if_idle();
        match self.pipeline.try_next_completion() {
            Some((token, result)) => self.complete(token, result).map(Some),
            None => Ok(None),
        }
    }

    fn deadline(&self) -> Option<Instant> {
        (!self.in_flight.is_empty()).then(|| self.last_heard + self.stall_timeout)
    }

    fn wait_any(transports: &[&Self], until: Instant) {
        let pipelines: Vec<&Pipeline<'_>> = transports.iter().map(|t| &t.pipeline).collect();
        let timeout = until.saturating_duration_since(Instant::now());
        Pipeline::wait_any(&pipelines, timeout);
    }
}
