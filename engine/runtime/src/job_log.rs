//! The log lines of a server's jobs (replications, pulls, DTP transfers, DMP direct
//! connections): one when a job starts and one when it ends, with its figures, under the
//! target `hawser::job`. Their fields are a contract: `event` (`start`, `end`), `kind`,
//! `identity`, `anonymous`, `peer`, `nexus`, and at the end `outcome` (`ok`, `failed`,
//! `abandoned`), `bytes`, `files`, `messages`, `seconds` and `rate` (bytes per second);
//! the CLI's metrics count jobs from them.

use std::time::{Duration, Instant};

use hawser_session::{NexusId, Peer};

use crate::RequestContext;

/// The target of job lines.
pub const JOB_TARGET: &str = "hawser::job";

/// A job being run: what its lines say about it.
#[derive(Debug, Clone)]
pub struct JobLog {
    kind: &'static str,
    nexus: NexusId,
    identity: String,
    anonymous: bool,
    peer: String,
    started: Instant,
}

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome {
    /// Its work was done.
    Ok,
    /// It failed (the error is logged with it).
    Failed,
    /// Its client went away before ending it.
    Abandoned,
}

impl JobOutcome {
    fn name(self) -> &'static str {
        match self {
            JobOutcome::Ok => "ok",
            JobOutcome::Failed => "failed",
            JobOutcome::Abandoned => "abandoned",
        }
    }
}

/// What a job moved, for its end line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobFigures {
    /// Bytes of file data (or messages) moved.
    pub bytes: u64,
    /// Files written or sent.
    pub files: u64,
    /// Messages published or delivered (DMP).
    pub messages: u64,
}

impl JobLog {
    /// A job of `kind` (`push`, `pull`, `dtp-push`, ...) for the request `ctx`, starting
    /// now; logs its start line.
    pub fn start(kind: &'static str, ctx: &RequestContext) -> JobLog {
        match ctx.owner() {
            Some(owner) => Self::start_for(
                kind,
                ctx.request.nexus,
                &owner.identity,
                owner.anonymous,
                &owner.peer,
            ),
            None => Self::start_for(kind, ctx.request.nexus, "", true, &Peer::Unknown),
        }
    }

    /// A job of `kind` for `identity` (claimed only, if `anonymous`) on `nexus`, from
    /// `peer`, starting now; logs its start line. For jobs that run outside a request
    /// (a DMP direct connection redeeming its nexus's lease).
    pub fn start_for(
        kind: &'static str,
        nexus: NexusId,
        identity: &str,
        anonymous: bool,
        peer: &Peer,
    ) -> JobLog {
        let job = JobLog {
            kind,
            nexus,
            identity: identity.to_owned(),
            anonymous,
            peer: peer.to_string(),
            started: Instant::now(),
        };
        tracing::info!(
            target: JOB_TARGET,
            event = "start",
            kind = job.kind,
            identity = %job.identity,
            anonymous = job.anonymous,
            peer = %job.peer,
            nexus = %job.nexus,
            "job started"
        );
        job
    }

    /// The nexus the job runs on.
    pub fn nexus(&self) -> NexusId {
        self.nexus
    }

    /// How long the job has run.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Logs the job's end line: `figures`, its duration and rate, and `error` if it failed
    /// (a warning then, an info line otherwise).
    pub fn end(&self, outcome: JobOutcome, figures: JobFigures, error: Option<&str>) {
        let seconds = self.elapsed().as_secs_f64();
        let rate = if seconds > 0.0 {
            (figures.bytes as f64 / seconds) as u64
        } else {
            0
        };
        macro_rules! end_line {
            ($level:ident, $message:expr) => {
                tracing::$level!(
                    target: JOB_TARGET,
                    event = "end",
                    kind = self.kind,
                    identity = %self.identity,
                    anonymous = self.anonymous,
                    peer = %self.peer,
                    nexus = %self.nexus,
                    outcome = outcome.name(),
                    bytes = figures.bytes,
                    files = figures.files,
                    messages = figures.messages,
                    seconds = (seconds * 1000.0).round() / 1000.0,
                    rate,
                    error = error.unwrap_or(""),
                    $message
                )
            };
        }
        match outcome {
            JobOutcome::Ok => end_line!(info, "job finished"),
            JobOutcome::Failed => end_line!(warn, "job failed"),
            JobOutcome::Abandoned => end_line!(warn, "job abandoned by its client"),
        }
    }
}
