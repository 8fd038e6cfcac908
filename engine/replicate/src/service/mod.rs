//! The replication task bound to the runtime: what `hawser serve`, `push`, `pull` and
//! `hawser bench` run.
//!
//! - [`PipelineTransport`]: the source's transport over a client's (or a backchannel's)
//!   pipeline; each request is one exchange, id `0x52455000 | tag`.
//! - [`replication_service`]: the target side for `hawser serve`, one job per nexus.
//! - [`pull_service`]: a server's answer to `hawser pull`, a job run as the source over
//!   the requesting nexus's backchannel; [`pull_target_service`]: the pulling client's
//!   backchannel service, the one job's target.
//!
//! Data path: the source reads a block once, hashing it while it is in the cache, and its
//! buffer goes to the socket as it is; the target receives each frame into its own
//! storage, placed so a Block's data starts on a page, checks its digest and writes it
//! with `O_DIRECT` from where it arrived (see [`Target`](crate::Target)).

mod compressor;
mod progress;
mod pull;
mod target;
mod transport;

use std::time::Duration;

use hawser_runtime::{HandlerError, RemoteException};

pub use compressor::default_compress_threads;
pub use progress::Progress;
pub use pull::{pull_service, pull_target_service};
pub use target::{
    DEFAULT_PARTIAL_MAX_AGE, EXPIRY_INTERVAL, ReplicationJobs, ServiceLimits, replication_service,
    replication_service_with_jobs,
};
pub use transport::PipelineTransport;

use crate::SourceConfig;
use crate::proto::{BLOCK_HEADER_LEN, JobOptions, MessageKind};

/// Room a session request needs beyond a block's data: the block header, plus slack for
/// a manifest batch of `batch_bytes` ≤ this.
const REQUEST_SLACK: u32 = 4096;

/// How long a push waits for any answer before it declares the target gone.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The session request size a job with blocks of `block_size` needs.
pub fn max_request_size(block_size: u32) -> u32 {
    block_size
        .saturating_add(BLOCK_HEADER_LEN as u32)
        .saturating_add(REQUEST_SLACK)
}

/// The requests of a job, by exchange: what a target serves (`hawser serve`, and a
/// pulling client on its backchannel).
pub const TARGET_EXCHANGES: [(MessageKind, &str); 6] = [
    (MessageKind::Begin, "replicate.begin"),
    (MessageKind::Manifest, "replicate.manifest"),
    (MessageKind::Block, "replicate.block"),
    (MessageKind::Commit, "replicate.commit"),
    (MessageKind::Delete, "replicate.delete"),
    (MessageKind::Finish, "replicate.finish"),
];

/// The source configuration of a job that runs over a session: its manifest batches fit
/// the session's request limit, and one is in flight at a time (the target runs a job's
/// requests on whichever handler thread is free, and a directory must be created before
/// its contents).
pub fn session_source_config(
    options: JobOptions,
    dest: String,
    excludes: Vec<String>,
    window_blocks: usize,
    job_id: u128,
) -> SourceConfig {
    let mut config = SourceConfig {
        options,
        dest,
        excludes,
        window_blocks: window_blocks.max(1),
        job_id,
        ..SourceConfig::default()
    };
    config.batch_bytes = config
        .batch_bytes
        .min(max_request_size(options.block_size) as usize);
    config.manifest_window = 1;
    config
}

fn exception(type_name: &str, message: impl Into<String>) -> HandlerError {
    HandlerError::Exception(RemoteException::new(type_name, message.into()))
}
