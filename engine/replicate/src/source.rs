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

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::auto_compress::AutoCompress;
use super::error::{EntryFailure, FailureReason, ReplicateError, TransportError};
use super::file_digest::{self, FileDigest};
use super::glob::Excludes;
use super::pool::BlockPool;
use super::proto::{
    BLOCK_HEADER_LEN, BatchWriter, Begin, BeginAck, BlockAck, BlockHeader, BlockStatus, CommitAck,
    CommitFile, CommitStatus, CompressPolicy, DeleteList, DeleteRequest, EntryKind, Finish,
    FinishReport, JobOptions, ManifestAnswer, ManifestEntry, MessageKind, PROTOCOL_VERSION,
    Verdict,
};
use super::report::Report;
use super::sparse::{self, Piece};
use super::transport::{Completion, Request, Transport};
use super::walk::{self, SourceEntry, SourceRoot};

/// How a source runs a job.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// Options both sides know.
    pub options: JobOptions,
    /// Destination directory relative to the target's root (empty: the root).
    pub dest: String,
    /// `--exclude` patterns (see [`Excludes`]).
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
        }
    }
}

/// A block read attempt gives up after this many digest mismatches.
const MAX_BLOCK_ATTEMPTS: u32 = 4;

#[derive(Debug)]
enum InFlight {
    Begin,
    Manifest {
        first: usize,
        end: usize,
    },
    Block {
        file_id: u32,
        offset: u64,
        body: Bytes,
        sent_at: Instant,
        attempts: u32,
    },
    Commit {
        file_id: u32,
        hash: u128,
    },
    Delete,
    Finish,
}

/// A file whose data is wanted.
#[derive(Debug)]
struct FileWork {
    file_id: u32,
    /// `None`: every block; otherwise the block indexes to send.
    needed: Option<HashSet<u32>>,
}

/// The file being read into blocks.
struct Reading {
    file_id: u32,
    file: File,
    pieces: Vec<Piece>,
    next: usize,
    needed: Option<HashSet<u32>>,
    digest: FileDigest,
}

impl std::fmt::Debug for Reading {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reading")
            .field("file_id", &self.file_id)
            .field("next", &self.next)
            .field("pieces", &self.pieces.len())
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

/// A file all of whose blocks are read, or being read, awaiting acknowledgements.
#[derive(Debug, Default)]
struct Awaiting {
    outstanding: usize,
    hash: Option<u128>,
    failed: bool,
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
    reading: Option<Reading>,
    awaiting: HashMap<u32, Awaiting>,
    ready: VecDeque<(MessageKind, Bytes, InFlight)>,
    in_flight: HashMap<u64, InFlight>,
    next_token: u64,
    blocks_in_flight: usize,
    pool: BlockPool,
    scratch: Vec<u8>,
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
        if u32::try_from(entries.len()).is_err() {
            return Err(ReplicateError::TooManyEntries);
        }
        let block_capacity = BLOCK_HEADER_LEN + config.options.block_size as usize;
        let pool = BlockPool::new(block_capacity, config.window_blocks.max(1));
        let mut report = Report::new();
        report.bytes_total = entries
            .iter()
            .filter(|e| e.kind == EntryKind::File)
            .map(|e| e.size)
            .sum();
        let auto = (config.options.compress == CompressPolicy::Auto).then(AutoCompress::default);
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
            reading: None,
            awaiting: HashMap::new(),
            ready: VecDeque::new(),
            in_flight: HashMap::new(),
            next_token: 1,
            blocks_in_flight: 0,
            pool,
            scratch: Vec::new(),
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
            && self.reading.is_none()
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

    fn inline_allowed(&self) -> bool {
        let options = &self.config.options;
        self.config.inline_max > 0
            && !options.checksum
            && !options.resume
            && !options.dry_run
            && !self.dest_existed
    }

    fn next_manifest(&mut self) -> Result<Request, ReplicateError> {
        let first = self.next_entry;
        let mut writer = BatchWriter::new(self.config.batch_bytes.min(1 << 20) + 1024);
        let inline_allowed = self.inline_allowed();
        while self.next_entry < self.entries.len() {
            let index = self.next_entry;
            let e = &self.entries[index];
            let wants_inline = inline_allowed
                && e.kind == EntryKind::File
                && e.size <= u64::from(self.config.inline_max);
            // A batch never exceeds `batch_bytes` (the session's request size limit),
            // unless one entry alone does.
            if writer.count() > 0
                && writer.encoded_len() + encoded_len_bound(e, wants_inline)
                    > self.config.batch_bytes
            {
                break;
            }
            let root = &self.roots[e.root];
            let io = |source| ReplicateError::Io {
                path: walk::display(root, &e.rel),
                source,
            };
            let mut content_hash = None;
            let mut inline = None;
            if e.kind == EntryKind::File {
                if wants_inline {
                    let mut data = Vec::with_capacity(e.size as usize);
                    walk::open_file(root, &e.rel)?
                        .read_to_end(&mut data)
                        .map_err(io)?;
                    // The file changed since the walk: send what is there now, as a block.
                    if data.len() as u64 == e.size {
                        content_hash = Some(hawser_wire::xxh3::hash128(&data));
                        inline = Some(data);
                    }
                } else if self.config.options.checksum {
                    let file = walk::open_file(root, &e.rel)?;
                    content_hash = Some(sparse::hash_file(&file, e.size).map_err(io)?);
                }
            }
            writer.push(&ManifestEntry {
                file_id: index as u32,
                path: &e.rel,
                kind: e.kind,
                mode: e.mode,
                mtime_ns: e.mtime_ns,
                size: e.size,
                symlink_target: &e.link_target,
                extents: e.extents.clone(),
                content_hash,
                inline: inline.as_deref(),
            })?;
            if let Some(data) = &inline {
                self.report.bytes_sent += data.len() as u64;
            }
            self.next_entry += 1;
        }
        self.manifests_in_flight += 1;
        let end = self.next_entry;
        // Ordered: a directory must reach the target before its contents.
        Ok(self.issue(
            MessageKind::Manifest,
            writer.finish(),
            InFlight::Manifest { first, end },
            true,
        ))
    }

    /// Reads the next needed piece into a pooled buffer, or `None` when no file has data
    /// left to send.
    fn next_block(&mut self) -> Result<Option<Request>, ReplicateError> {
        loop {
            if self.reading.is_none() {
                let Some(work) = self.work.pop_front() else {
                    return Ok(None);
                };
                let entry = &self.entries[work.file_id as usize];
                let file = walk::open_file(&self.roots[entry.root], &entry.rel)?;
                self.awaiting.insert(work.file_id, Awaiting::default());
                self.reading = Some(Reading {
                    file_id: work.file_id,
                    file,
                    pieces: sparse::pieces(&entry.data_extents(), self.config.options.block_size),
                    next: 0,
                    needed: work.needed,
                    digest: FileDigest::new(entry.size),
                });
            }
            let block_size = self.config.options.block_size;
            let Some(reading) = self.reading.as_mut() else {
                continue;
            };
            let entry = &self.entries[reading.file_id as usize];
            let root = &self.roots[entry.root];
            let io = |source| ReplicateError::Io {
                path: walk::display(root, &entry.rel),
                source,
            };
            let Some(&piece) = reading.pieces.get(reading.next) else {
                // Every piece read: the whole-file digest is complete.
                let file_id = reading.file_id;
                let hash = reading.digest.finish();
                self.reading = None;
                if let Some(awaiting) = self.awaiting.get_mut(&file_id) {
                    awaiting.hash = Some(hash);
                }
                self.maybe_commit(file_id);
                continue;
            };
            reading.next += 1;
            let wanted = reading
                .needed
                .as_ref()
                .is_none_or(|set| set.contains(&piece.block_index(block_size)));
            if !wanted {
                // Complete on the target already; read it only for the whole-file digest
                // (the target checked its bytes against this piece's digest at resume).
                self.scratch.resize(piece.len as usize, 0);
                let digest = sparse::read_digested(&reading.file, piece.offset, &mut self.scratch)
                    .map_err(io)?;
                reading.digest.piece(piece, digest);
                continue;
            }
            let mut buf = self.pool.take();
            // A reused buffer keeps its length: shrinking it costs nothing, and only a
            // buffer's first use (or a longer piece) zero-fills.
            buf.resize(BLOCK_HEADER_LEN + piece.len as usize, 0);
            let digest =
                sparse::read_digested(&reading.file, piece.offset, &mut buf[BLOCK_HEADER_LEN..])
                    .map_err(io)?;
            reading.digest.piece(piece, digest);
            let header = BlockHeader {
                file_id: reading.file_id,
                offset: piece.offset,
                digest,
            };
            let mut head = [0u8; BLOCK_HEADER_LEN];
            header.write_into(&mut head);
            buf[..BLOCK_HEADER_LEN].copy_from_slice(&head);
            let file_id = reading.file_id;
            if let Some(awaiting) = self.awaiting.get_mut(&file_id) {
                awaiting.outstanding += 1;
            }
            let body = buf.freeze();
            self.blocks_in_flight += 1;
            self.report.blocks_sent += 1;
            self.report.bytes_sent += u64::from(piece.len);
            let what = InFlight::Block {
                file_id,
                offset: piece.offset,
                body: body.clone(),
                sent_at: Instant::now(),
                attempts: 1,
            };
            return Ok(Some(self.issue(MessageKind::Block, body, what, false)));
        }
    }

    /// Queues the commit of a file once it is fully read and every block acknowledged.
    fn maybe_commit(&mut self, file_id: u32) {
        let Some(awaiting) = self.awaiting.get(&file_id) else {
            return;
        };
        let Some(hash) = awaiting.hash else {
            return;
        };
        if awaiting.outstanding > 0 {
            return;
        }
        let failed = awaiting.failed;
        self.awaiting.remove(&file_id);
        if failed {
            return;
        }
        let entry = &self.entries[file_id as usize];
        let mut body = BytesMut::new();
        CommitFile {
            file_id,
            size: entry.size,
            content_hash: hash,
            mode: entry.mode,
            mtime_ns: entry.mtime_ns,
        }
        .encode(&mut body);
        self.ready.push_back((
            MessageKind::Commit,
            body.freeze(),
            InFlight::Commit { file_id, hash },
        ));
    }

    fn fail(&mut self, file_id: u32, reason: FailureReason) {
        let path = self
            .entries
            .get(file_id as usize)
            .map(|e| String::from_utf8_lossy(&e.rel).into_owned())
            .unwrap_or_default();
        self.failures.push(EntryFailure { path, reason });
    }

    /// Takes the answer to a request.
    pub fn handle_completion(&mut self, completion: Completion) -> Result<(), ReplicateError> {
        let what = self
            .in_flight
            .remove(&completion.token)
            .ok_or(ReplicateError::Unexpected("answer to no request"))?;
        let body = completion.result.map_err(ReplicateError::Remote)?;
        match what {
            InFlight::Begin => {
                let ack = BeginAck::decode(&body)?;
                if ack.version != PROTOCOL_VERSION {
                    return Err(ReplicateError::Unexpected(
                        "target speaks another protocol version",
                    ));
                }
                self.begin_acked = true;
                self.dest_existed = ack.dest_existed;
            }
            InFlight::Manifest { first, end } => {
                self.manifests_in_flight -= 1;
                self.manifest_answer(&body, first, end)?;
            }
            InFlight::Block {
                file_id,
                offset,
                body: sent,
                sent_at,
                attempts,
            } => {
                let ack = BlockAck::decode(&body)?;
                if ack.file_id != file_id || ack.offset != offset {
                    return Err(ReplicateError::Unexpected(
                        "block acknowledgement for another block",
                    ));
                }
                let rtt = sent_at.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64;
                let _ = self.report.block_rtt_ns.record(rtt.max(1));
                match ack.status {
                    BlockStatus::Written => {
                        self.blocks_in_flight -= 1;
                        if let Some(auto) = &mut self.auto {
                            auto.acknowledged(Instant::now(), sent.len() as u64);
                        }
                        self.pool.give_back(sent);
                        if let Some(awaiting) = self.awaiting.get_mut(&file_id) {
                            awaiting.outstanding -= 1;
                        }
                        self.maybe_commit(file_id);
                    }
                    BlockStatus::DigestMismatch if attempts < MAX_BLOCK_ATTEMPTS => {
                        // The buffer still holds the data as read: send it again.
                        self.report.block_retries += 1;
                        self.report.blocks_sent += 1;
                        let what = InFlight::Block {
                            file_id,
                            offset,
                            body: sent.clone(),
                            sent_at: Instant::now(),
                            attempts: attempts + 1,
                        };
                        self.ready.push_front((MessageKind::Block, sent, what));
                    }
                    BlockStatus::DigestMismatch => {
                        self.blocks_in_flight -= 1;
                        if let Some(awaiting) = self.awaiting.get_mut(&file_id) {
                            awaiting.outstanding -= 1;
                            awaiting.failed = true;
                        }
                        self.fail(file_id, FailureReason::BlockRetries(offset));
                        self.maybe_commit(file_id);
                    }
                }
            }
            InFlight::Commit { file_id, hash } => {
                let ack = CommitAck::decode(&body)?;
                if ack.file_id != file_id {
                    return Err(ReplicateError::Unexpected(
                        "commit acknowledgement for another file",
                    ));
                }
                match ack.status {
                    CommitStatus::Committed => {
                        self.report.files += 1;
                        if self.config.options.verify {
                            self.verify_source(file_id, hash)?;
                        }
                    }
                    status => self.fail(file_id, FailureReason::Commit(status)),
                }
            }
            InFlight::Delete => {
                let list = DeleteList::decode(&body)?;
                self.report.deleted = list.total;
                self.report.deleted_paths = list
                    .paths
                    .iter()
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .collect();
                self.delete_done = true;
            }
            InFlight::Finish => {
                let report: FinishReport = FinishReport::decode(&body)?;
                self.report.target = Some(report);
                self.report.duration = self.started.map(|t| t.elapsed()).unwrap_or_default();
                self.report.buffers_allocated = self.pool.allocated();
                self.report.auto_compress = self.auto.as_ref().and_then(AutoCompress::choice);
                self.finished = true;
            }
        }
        Ok(())
    }

    /// `--verify` on the source side: the file still hashes to what was sent.
    fn verify_source(&mut self, file_id: u32, sent: u128) -> Result<(), ReplicateError> {
        let entry = &self.entries[file_id as usize];
        let root = &self.roots[entry.root];
        let io = |source| ReplicateError::Io {
            path: walk::display(root, &entry.rel),
            source,
        };
        let file = walk::open_file(root, &entry.rel)?;
        let size_now = file.metadata().map_err(io)?.len();
        // The target checked the digest the source computed while reading; if the file
        // reads differently now (its data, or where its holes are), it changed during
        // the transfer.
        let changed = size_now != entry.size
            || sparse::data_extents(&file, entry.size).map_err(io)? != entry.extents
            || file_digest::read_digest(
                &file,
                entry.size,
                &sparse::pieces(&entry.data_extents(), self.config.options.block_size),
            )
            .map_err(io)?
                != sent;
        if changed {
            self.fail(file_id, FailureReason::SourceChanged);
        }
        Ok(())
    }

    fn manifest_answer(
        &mut self,
        body: &[u8],
        first: usize,
        end: usize,
    ) -> Result<(), ReplicateError> {
        let answer = ManifestAnswer::decode(body)?;
        if answer.entries.len() != end - first {
            return Err(ReplicateError::Unexpected(
                "manifest answer of another length",
            ));
        }
        let dry_run = self.config.options.dry_run;
        for (index, answer) in (first..end).zip(answer.entries) {
            if answer.file_id as usize != index {
                return Err(ReplicateError::Unexpected("manifest answer out of order"));
            }
            let entry = &self.entries[index];
            let kind = entry.kind;
            if dry_run && !matches!(answer.verdict, Verdict::UpToDate | Verdict::Refused { .. }) {
                self.report
                    .would_change
                    .push(String::from_utf8_lossy(&entry.rel).into_owned());
            }
            match answer.verdict {
                Verdict::UpToDate => self.report.up_to_date += 1,
                Verdict::Done => match kind {
                    EntryKind::Dir => self.report.dirs += 1,
                    EntryKind::Symlink => self.report.symlinks += 1,
                    EntryKind::File => self.report.files += 1,
                },
                Verdict::NeedAll | Verdict::NeedBlocks(_) if kind != EntryKind::File => {
                    return Err(ReplicateError::Unexpected(
                        "data asked for a directory or symlink",
                    ));
                }
                Verdict::NeedAll if dry_run => self.report.files += 1,
                Verdict::NeedBlocks(_) if dry_run => self.report.files += 1,
                Verdict::NeedAll => self.work.push_back(FileWork {
                    file_id: index as u32,
                    needed: None,
                }),
                Verdict::NeedBlocks(blocks) => self.work.push_back(FileWork {
                    file_id: index as u32,
                    needed: Some(blocks.into_iter().collect()),
                }),
                Verdict::Refused { kind, detail } => {
                    let detail = String::from_utf8_lossy(detail).into_owned();
                    self.fail(index as u32, FailureReason::Refused { kind, detail });
                }
            }
        }
        Ok(())
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

/// An upper bound of an entry's encoded size in a manifest batch.
fn encoded_len_bound(e: &SourceEntry, inline: bool) -> usize {
    let fixed = 4 + 1 + 1 + 4 + 8 + 8 + 2 + e.rel.len();
    let link = if e.kind == EntryKind::Symlink {
        2 + e.link_target.len()
    } else {
        0
    };
    let extents = e.extents.as_ref().map_or(0, |x| 4 + 16 * x.len());
    let hash = 16;
    let data = if inline { 4 + e.size as usize } else { 0 };
    fixed + link + extents + hash + data
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
            Ok(completion) => source.handle_completion(completion)?,
            Err(TransportError::Idle) => {
                return Err(ReplicateError::Unexpected("stalled with nothing in flight"));
            }
            Err(e) => return Err(e.into()),
        }
    }
    source.finish()
}
