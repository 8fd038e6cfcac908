//! How a source runs a job: its options, destination, excludes and windows.

use crate::proto::JobOptions;

/// How a source runs a job.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// Options both sides know.
    pub options: JobOptions,
    /// Destination directory relative to the target's root (empty: the root).
    pub dest: String,
    /// `--exclude` patterns (see [`Excludes`](crate::Excludes)).
    pub excludes: Vec<String>,
    /// Blocks in flight at most (each up to `block_size` bytes of memory).
    pub window_blocks: usize,
    /// Requests of any kind in flight at most.
    pub max_in_flight: usize,
    /// Manifest batches in flight at most.
    pub manifest_window: usize,
    /// Largest manifest batch in bytes (a single entry larger than this still goes, alone):
    /// at most the session's `max_request_size`, as blocks need `block_size + 21`.
    pub batch_bytes: usize,
    /// Files up to this size travel inside their manifest entry; 0 turns it off. Only
    /// used when the destination is new: otherwise the target probably has the data
    /// already (and always under `checksum` or `resume`), so it answers first.
    pub inline_max: u32,
    /// Paths listed in the report of `--delete` at most.
    pub max_deleted_listed: u32,
    /// Identifies the job.
    pub job_id: u128,
    /// Threads the transport compresses on (what `auto` counts its lz4 speed for; see
    /// [`PipelineTransport::compress_threads`](crate::service::PipelineTransport::compress_threads)).
    pub compress_threads: usize,
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig {
            options: JobOptions::default(),
            dest: String::new(),
            excludes: Vec::new(),
            window_blocks: 8,
            max_in_flight: 256,
            manifest_window: 4,
            batch_bytes: 1 << 20,
            inline_max: 64 * 1024,
            max_deleted_listed: 1000,
            job_id: 0,
            compress_threads: crate::service::default_compress_threads(),
        }
    }
}
