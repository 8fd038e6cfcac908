//! The source side: walks the trees, then produces requests in a bounded pipeline and
//! consumes their answers.
//!
//! [`Source`] is a state machine over a [`Transport`]-agnostic interface: the driver
//! asks [`Source::poll_request`] for requests until it returns `None`, sends them, and
//! feeds each answer to [`Source::handle_completion`]. It reads files itself (that is its
//! I/O), but never waits on the network: any number of manifest batches, blocks and
//! commits can be in flight at once, up to the configured windows, so a trunk of
//! connections stays busy and no file costs a round trip of its own.
//!
//! Memory is bounded by configuration: at most `window_blocks` block buffers exist (a
//! pool, reused), and at most `manifest_window` batches of `batch_bytes` are in flight.
//!
//! This file holds the job's state and decides what to send next; [`manifest`] builds
//! the batches and takes their verdicts, [`blocks`] reads the wanted files into blocks
//! (with a [`file_reader`]) and queues their commits, [`completion`] takes the answers,
//! and [`verify`] rereads a committed file under `--verify`. [`fanout`] runs one job per
//! target over one walk, with a [`shared_reads`] reader feeding every job's blocks
//! ([`fed`] is a job's side of that).

mod blocks;
mod completion;
mod config;
mod fanout;
mod fed;
mod file_reader;
mod manifest;
mod shared_reads;
mod verify;

pub use config::SourceConfig;
pub use fanout::{Fanout, FanoutReport};

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::auto_compress::AutoCompress;
use super::error::{EntryFailure, ReplicateError, TransportError};
use super::excludes::Excludes;
use super::pool::BlockPool;
use super::proto::{
    BLOCK_HEADER_LEN, Begin, CompressPolicy, DeleteRequest, EntryKind, Finish, MessageKind,
    PROTOCOL_VERSION,
};
use super::report::Report;
use super::transport::{Request, Transport};
use super::walk::{self, SourceEntry, SourceRoot};
use blocks::{Awaiting, FileWork, SentBlock, Supply};

/// What a request in flight was, to take its answer.
#[derive(Debug)]
enum InFlight {
    Begin,
    /// The batch of entries `first..end`.
    Manifest {
        first: usize,
        end: usize,
    },
    Block(SentBlock),
    Commit {
        file_id: u32,
        hash: u128,
    },
    Delete,
    Finish,
}

/// A regular file found by the walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalkedFile {
    /// Its path relative to the destination.
    pub rel: Vec<u8>,
    /// Bytes, at the walk.
    pub size: u64,
    /// Permission bits.
    pub mode: u32,
    /// Modification time in nanoseconds since the epoch.
    pub mtime_ns: i64,
    root: usize,
}

/// The source side of a replication job.
#[derive(Debug)]
pub struct Source {
    config: SourceConfig,
    /// The directories the trees are read beneath.
    roots: Vec<SourceRoot>,
    entries: Vec<SourceEntry>,
    begin_sent: bool,
    begin_acked: bool,
    dest_existed: bool,
    next_entry: usize,
    manifests_in_flight: usize,
    work: VecDeque<FileWork>,
    /// Where its blocks come from: its own reads, or a fan-out's shared reader.
    supply: Supply,
    awaiting: HashMap<u32, Awaiting>,
    ready: VecDeque<(MessageKind, Bytes, InFlight)>,
    in_flight: HashMap<u64, InFlight>,
    next_token: u64,
    blocks_in_flight: usize,
    delete_sent: bool,
    delete_done: bool,
    finish_sent: bool,
    finished: bool,
    failures: Vec<EntryFailure>,
    report: Report,
    started: Option<Instant>,
    /// `--compress auto`'s measurement (`None` under another policy).
    auto: Option<AutoCompress>,
}

impl Source {
    /// Walks `roots` and prepares the job. A root with a trailing `/` sends its contents;
    /// without, the root itself under its name (see [`SourceRoot::local`]).
    pub fn new(config: SourceConfig, roots: &[PathBuf]) -> Result<Self, ReplicateError> {
        let roots = roots
            .iter()
            .map(|root| SourceRoot::local(root))
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_roots(config, roots)
    }

    /// Walks trees already opened (a server's pull sends from beneath its root, see
    /// [`resolve_pull_source`](super::resolve_pull_source)) and prepares the job.
    pub fn from_roots(
        config: SourceConfig,
        roots: Vec<SourceRoot>,
    ) -> Result<Self, ReplicateError> {
        let excludes = Excludes::new(&config.excludes)?;
        let entries = walk::walk(&roots, &excludes)?;
        let block_capacity = BLOCK_HEADER_LEN + config.options.block_size as usize;
        let pool = BlockPool::new(block_capacity, config.window_blocks.max(1));
        Self::from_walk(config, roots, entries, Supply::own(pool))
    }

    /// Prepares the job of a walk already made, its blocks from `supply`.
    fn from_walk(
        mut config: SourceConfig,
        roots: Vec<SourceRoot>,
        entries: Vec<SourceEntry>,
        supply: Supply,
    ) -> Result<Self, ReplicateError> {
        // `dir/` means "into the directory dir"; only a job of one regular file named
        // as such (not a directory's contents) may have its destination name the file.
        let into_dir = config.dest.ends_with('/');
        config
            .dest
            .truncate(config.dest.trim_end_matches('/').len());
        let one_named_file = matches!(&roots[..], [root] if root.name().is_some())
            && matches!(&entries[..], [only] if only.kind == EntryKind::File);
        config.options.dest_may_be_file &= !into_dir && !config.dest.is_empty() && one_named_file;
        if u32::try_from(entries.len()).is_err() {
            return Err(ReplicateError::TooManyEntries);
        }
        let mut report = Report::new();
        report.bytes_total = entries
            .iter()
            .filter(|e| e.kind == EntryKind::File)
            .map(|e| e.size)
            .sum();
        let auto = (config.options.compress == CompressPolicy::Auto)
            .then(|| AutoCompress::new(config.compress_threads));
        Ok(Source {
            config,
            roots,
            entries,
            begin_sent: false,
            begin_acked: false,
            dest_existed: true,
            next_entry: 0,
            manifests_in_flight: 0,
            work: VecDeque::new(),
            supply,
            awaiting: HashMap::new(),
            ready: VecDeque::new(),
            in_flight: HashMap::new(),
            next_token: 1,
            blocks_in_flight: 0,
            delete_sent: false,
            delete_done: false,
            finish_sent: false,
            finished: false,
            failures: Vec::new(),
            auto,
            report,
            started: None,
        })
    }

    /// The regular files the walk found, in walk order (for a transport that moves file
    /// data by itself and leaves the rest of the tree to the job).
    pub fn regular_files(&self) -> Vec<WalkedFile> {
        self.entries
            .iter()
            .filter(|e| e.kind == EntryKind::File)
            .map(|e| WalkedFile {
                rel: e.rel.clone(),
                size: e.size,
                mode: e.mode & 0o7777,
                mtime_ns: e.mtime_ns,
                root: e.root,
            })
            .collect()
    }

    /// Opens a file of [`Source::regular_files`] beneath its root: refused if it, or a
    /// directory on the way, has become a symlink or something else since the walk.
    pub fn open(&self, file: &WalkedFile) -> Result<std::fs::File, ReplicateError> {
        let root = self
            .roots
            .get(file.root)
            .ok_or_else(|| ReplicateError::Io {
                path: String::from_utf8_lossy(&file.rel).into_owned().into(),
                source: std::io::Error::other("not a file of this job's walk"),
            })?;
        walk::open_file(root, &file.rel)
    }

    /// The destination directory, relative to the target's root (empty: the root).
    pub fn dest(&self) -> &str {
        &self.config.dest
    }

    /// The target says the destination names the job's one file: it travels under the
    /// destination's last component, into the destination's parent.
    fn send_as_destination(&mut self) -> Result<(), ReplicateError> {
        let name = self.config.dest.rsplit('/').next().unwrap_or_default();
        match &mut self.entries[..] {
            [only] if self.config.options.dest_may_be_file && !name.is_empty() => {
                only.sent_as = Some(name.as_bytes().to_vec());
                // The target sweeps nothing beside a single file.
                self.config.options.delete = false;
                Ok(())
            }
            _ => Err(ReplicateError::Unexpected(
                "the target took the destination for a file the source did not offer",
            )),
        }
    }

    /// Regular files found by the walk, and their bytes: a progress display's totals.
    pub fn file_totals(&self) -> (u64, u64) {
        let files = self
            .entries
            .iter()
            .filter(|e| e.kind == EntryKind::File)
            .count() as u64;
        (files, self.report.bytes_total)
    }

    /// Entries found by the walk.
    pub fn entry_count(&self) -> usize {
        self.entries.len()
    }

    /// True once the target's final report arrived.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Requests sent and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The next request to send, or `None` when the windows are full or everything is
    /// sent (then wait for completions).
    pub fn poll_request(&mut self) -> Result<Option<Request>, ReplicateError> {
        if self.finished || self.in_flight.len() >= self.config.max_in_flight {
            return Ok(None);
        }
        if !self.begin_sent {
            self.begin_sent = true;
            self.started = Some(Instant::now());
            let mut body = BytesMut::new();
            Begin {
                version: PROTOCOL_VERSION,
                job_id: self.config.job_id,
                options: self.config.options,
                dest: self.config.dest.as_bytes(),
            }
            .encode(&mut body)?;
            return Ok(Some(self.issue(
                MessageKind::Begin,
                body.freeze(),
                InFlight::Begin,
                false,
            )));
        }
        if !self.begin_acked {
            return Ok(None);
        }
        if let Some((kind, body, what)) = self.ready.pop_front() {
            return Ok(Some(self.issue(kind, body, what, false)));
        }
        if self.next_entry < self.entries.len()
            && self.manifests_in_flight < self.config.manifest_window
        {
            return self.next_manifest().map(Some);
        }
        if self.blocks_in_flight < self.config.window_blocks.max(1)
            && let Some(request) = self.next_block()?
        {
            return Ok(Some(request));
        }
        // `next_block` may have finished a file and queued its commit.
        if let Some((kind, body, what)) = self.ready.pop_front() {
            return Ok(Some(self.issue(kind, body, what, false)));
        }
        let transferred = self.next_entry == self.entries.len()
            && self.in_flight.is_empty()
            && self.work.is_empty()
            && !self.supply.is_reading()
            && self.awaiting.is_empty();
        if !transferred {
            return Ok(None);
        }
        if self.config.options.delete && !self.delete_sent {
            self.delete_sent = true;
            let mut body = BytesMut::new();
            DeleteRequest {
                max_listed: self.config.max_deleted_listed,
            }
            .encode(&mut body);
            return Ok(Some(self.issue(
                MessageKind::Delete,
                body.freeze(),
                InFlight::Delete,
                false,
            )));
        }
        if (!self.config.options.delete || self.delete_done) && !self.finish_sent {
            self.finish_sent = true;
            let mut body = BytesMut::new();
            Finish.encode(&mut body);
            return Ok(Some(self.issue(
                MessageKind::Finish,
                body.freeze(),
                InFlight::Finish,
                false,
            )));
        }
        Ok(None)
    }

    /// Hands out a request, remembering what it is until its answer comes.
    fn issue(&mut self, kind: MessageKind, body: Bytes, what: InFlight, ordered: bool) -> Request {
        let token = self.next_token;
        self.next_token += 1;
        self.report.wire_bytes += body.len() as u64;
        self.in_flight.insert(token, what);
        let compress = match (&mut self.auto, self.config.options.compress) {
            (_, CompressPolicy::Off) => false,
            (Some(auto), _) => {
                auto.offer_sample(&body);
                auto.compressing()
            }
            (None, _) => true,
        };
        Request {
            token,
            kind,
            ordered,
            body,
            compress,
        }
    }

    /// The transport's [`compressing_time`](Transport::compressing_time), told before
    /// each completion is handed over (`--compress auto` judges by it whether lz4 or the
    /// link is the bottleneck).
    pub fn compressing_time(&mut self, time: Option<Duration>) {
        if let (Some(auto), Some(time)) = (&mut self.auto, time) {
            auto.compressor_busy(time);
        }
    }

    /// The report; an error listing the failed entries if any failed.
    pub fn finish(self) -> Result<Report, ReplicateError> {
        if !self.finished {
            return Err(ReplicateError::Unexpected("job not finished"));
        }
        if self.failures.is_empty() {
            Ok(self.report)
        } else {
            Err(ReplicateError::Incomplete {
                failures: self.failures,
                report: Box::new(self.report),
            })
        }
    }
}

/// Runs a job to its end over `transport`: keeps every window full, then waits for one
/// answer at a time.
pub fn run(mut source: Source, transport: &mut impl Transport) -> Result<Report, ReplicateError> {
    while !source.is_finished() {
        while let Some(request) = source.poll_request()? {
            transport.send(request)?;
        }
        if source.is_finished() {
            break;
        }
        match transport.recv() {
            Ok(completion) => {
                source.compressing_time(transport.compressing_time());
                source.handle_completion(completion)?
            }
            Err(TransportError::Idle) => {
                return Err(ReplicateError::Unexpected("stalled with nothing in flight"));
            }
            Err(e) => return Err(e.into()),
        }
    }
    source.finish()
}
