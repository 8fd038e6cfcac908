//! A push to several targets in one run: one walk, one job per target (its own
//! destination, verdicts, resume, requests in flight and report), and one shared reader
//! that reads each wanted block once for all of them (see [`shared_reads`]). One thread
//! drives every target's transport: it sends what each job may send, reads blocks as the
//! shared window allows, and waits for the first answer of any target.
//!
//! A target that fails (its transport, a remote exception, a malformed answer, no answer
//! before its transport's deadline) ends its own job only: the blocks it held are
//! released, the reader stops waiting for it, and the other targets go on. The run's
//! report gives each target's report or why it failed. A failure of the source itself
//! (a wanted file that can no longer be read) ends the run.
//!
//! [`shared_reads`]: super::shared_reads

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::shared_reads::SharedReads;
use super::{Source, SourceConfig};
use crate::error::{ReplicateError, TransportError};
use crate::excludes::Excludes;
use crate::proto::EntryKind;
use crate::report::Report;
use crate::sparse;
use crate::transport::FanoutTransport;
use crate::walk::{self, SourceEntry, SourceRoot};

/// How long the driver waits at most when no transport names a deadline.
const IDLE_WAIT: Duration = Duration::from_secs(1);

/// One target's job: running, or its outcome.
#[derive(Debug)]
pub(super) enum Lane {
    Running(Box<Source>),
    Ended(Box<Result<Report, ReplicateError>>),
}

impl Lane {
    /// The job, while it runs.
    pub(super) fn running(&mut self) -> Option<&mut Source> {
        match self {
            Lane::Running(source) => Some(source),
            Lane::Ended(_) => None,
        }
    }

    /// The job, while it runs, to look at.
    pub(super) fn peek_running(&self) -> Option<&Source> {
        match self {
            Lane::Running(source) => Some(source),
            Lane::Ended(_) => None,
        }
    }
}

/// What a fan-out did: each target's outcome, and the reads they shared.
#[derive(Debug)]
pub struct FanoutReport {
    /// Per target, in the order given: its report, or why its job failed (an
    /// [`ReplicateError::Incomplete`] carries the report of what did go).
    pub targets: Vec<Result<Report, ReplicateError>>,
    /// Source bytes read for file data, once for all targets (files small enough to
    /// travel inside the manifest are read by each target's job).
    pub bytes_read: u64,
    /// Pieces (blocks) of source files read.
    pub pieces_read: u64,
    /// Block buffers the shared reader allocated: bounded by the window.
    pub buffers_allocated: u64,
    /// The most blocks out to targets at once: at most the window.
    pub most_blocks_held: usize,
    /// Wall time of the run.
    pub duration: Duration,
}

/// The same sources replicated to several targets, each block read once.
#[derive(Debug)]
pub struct Fanout {
    lanes: Vec<Lane>,
    reads: SharedReads,
    files: u64,
    bytes: u64,
}

/// Hashes every regular file of `entries` for `checksum`, once for all targets (each
/// target's job would otherwise read every file to hash it).
fn hash_once(roots: &[SourceRoot], entries: &mut [SourceEntry]) -> Result<(), ReplicateError> {
    for entry in entries.iter_mut().filter(|e| e.kind == EntryKind::File) {
        let root = roots
            .get(entry.root)
            .ok_or(ReplicateError::Unexpected("an entry of no walked root"))?;
        let file = walk::open_file(root, &entry.rel)?;
        let hash = sparse::hash_file(&file, entry.size).map_err(|source| ReplicateError::Io {
            path: walk::display(root, &entry.rel),
            source,
        })?;
        entry.content_hash = Some(hash);
    }
    Ok(())
}

impl Fanout {
    /// Walks `roots` once (a trailing `/` sends a directory's contents, as for
    /// [`Source::new`]) and prepares one job per destination in `dests`, in order, each
    /// with `config` and its own destination. `config.window_blocks` bounds the blocks
    /// out at once across all targets.
    pub fn new(
        config: SourceConfig,
        dests: &[String],
        roots: &[PathBuf],
    ) -> Result<Self, ReplicateError> {
        let roots = roots
            .iter()
            .map(|root| SourceRoot::local(root))
            .collect::<Result<Vec<_>, _>>()?;
        let excludes = Excludes::new(&config.excludes)?;
        let mut entries = walk::walk(&roots, &excludes)?;
        if config.options.checksum && dests.len() > 1 {
            hash_once(&roots, &mut entries)?;
        }
        let files = entries.iter().filter(|e| e.kind == EntryKind::File);
        let (files, bytes) =
            files.fold((0u64, 0u64), |(n, b), e| (n + 1, b.saturating_add(e.size)));
        let mut lanes = Vec::with_capacity(dests.len());
        for (index, dest) in dests.iter().enumerate() {
            let mut lane = config.clone();
            lane.dest = dest.clone();
            lane.job_id = config.job_id.wrapping_add(index as u128);
            // Verdicts in walk order, so that the reader starts a file once every target
            // has said whether it wants it.
            lane.manifest_window = 1;
            let source = Source::fed(lane, roots.clone(), entries.clone())?;
            lanes.push(Lane::Running(Box::new(source)));
        }
        let reads = SharedReads::new(
            roots,
            entries,
            config.options.block_size,
            config.window_blocks,
        );
        Ok(Fanout {
            lanes,
            reads,
            files,
            bytes,
        })
    }

    /// Regular files found by the walk, and their bytes (for one target).
    pub fn file_totals(&self) -> (u64, u64) {
        (self.files, self.bytes)
    }

    /// Targets of the run.
    pub fn targets(&self) -> usize {
        self.lanes.len()
    }

    /// Runs every target's job to its end, `transports[i]` carrying the requests of the
    /// `i`-th destination. `Err` only when the source failed (every target's job ends
    /// with it); a target's own failure is in its place in the report.
    pub fn run<T: FanoutTransport>(
        mut self,
        transports: &mut [T],
    ) -> Result<FanoutReport, ReplicateError> {
        let started = Instant::now();
        for lane in transports.len()..self.lanes.len() {
            let missing = TransportError::Other("no transport for this target".into());
            self.end_lane(lane, Some(missing.into()));
        }
        loop {
            self.send_all(transports)?;
            let running: Vec<usize> = (0..self.lanes.len())
                .filter(|&lane| self.lanes[lane].peek_running().is_some())
                .collect();
            if running.is_empty() {
                break;
            }
            if running.iter().all(|&lane| {
                self.lanes[lane]
                    .peek_running()
                    .is_none_or(|s| s.in_flight() == 0)
            }) {
                // Every job waits and nothing is on its way to wake one.
                for lane in running {
                    let stalled = ReplicateError::Unexpected("stalled with nothing in flight");
                    self.end_lane(lane, Some(stalled));
                }
                break;
            }
            let waiting: Vec<&T> = running.iter().map(|&lane| &transports[lane]).collect();
            let until = waiting
                .iter()
                .filter_map(|t| t.deadline())
                .min()
                .unwrap_or_else(|| Instant::now() + IDLE_WAIT);
            T::wait_any(&waiting, until);
            self.take_answers(transports);
            let now = Instant::now();
            for lane in running {
                if self.lanes[lane].peek_running().is_some()
                    && transports[lane].deadline().is_some_and(|d| d <= now)
                {
                    self.end_lane(lane, Some(TransportError::Disconnected.into()));
                }
            }
        }
        let targets = self
            .lanes
            .into_iter()
            .map(|lane| match lane {
                Lane::Ended(result) => *result,
                Lane::Running(_) => Err(ReplicateError::Unexpected("job not finished")),
            })
            .collect();
        Ok(FanoutReport {
            targets,
            bytes_read: self.reads.bytes_read,
            pieces_read: self.reads.pieces_read,
            buffers_allocated: self.reads.buffers_allocated(),
            most_blocks_held: self.reads.most_held,
            duration: started.elapsed(),
        })
    }

    /// Sends every request the jobs may send, reading blocks while the window allows.
    fn send_all<T: FanoutTransport>(&mut self, transports: &mut [T]) -> Result<(), ReplicateError> {
        loop {
            for (lane, transport) in transports.iter_mut().enumerate() {
                self.pump(lane, transport);
            }
            if !self.reads.step(&mut self.lanes)? {
                return Ok(());
            }
        }
    }

    /// Sends what lane `lane`'s job may send now.
    fn pump<T: FanoutTransport>(&mut self, lane: usize, transport: &mut T) {
        let Some(source) = self.lanes.get_mut(lane).and_then(Lane::running) else {
            return;
        };
        let sent = (|| {
            while let Some(request) = source.poll_request()? {
                transport.send(request)?;
            }
            Ok::<_, ReplicateError>(source.is_finished())
        })();
        match sent {
            Ok(false) => {}
            Ok(true) => self.end_lane(lane, None),
            Err(e) => self.end_lane(lane, Some(e)),
        }
    }

    /// Takes every answer that arrived, each to its job.
    fn take_answers<T: FanoutTransport>(&mut self, transports: &mut [T]) {
        // One thread compresses for every target: its time in all is what is busy.
        let compressing = transports
            .iter()
            .filter_map(|t| t.compressing_time())
            .reduce(|a, b| a + b);
        for (lane, transport) in transports.iter_mut().enumerate() {
            while let Some(source) = self.lanes.get_mut(lane).and_then(Lane::running) {
                let completion = match transport.try_recv() {
                    Ok(Some(completion)) => completion,
                    Ok(None) => break,
                    Err(e) => {
                        self.end_lane(lane, Some(e.into()));
                        break;
                    }
                };
                source.compressing_time(compressing);
                if let Err(e) = source.handle_completion(completion) {
                    self.end_lane(lane, Some(e));
                    break;
                }
                let released = source.take_released();
                let finished = source.is_finished();
                self.reads.release(lane, &released);
                if finished {
                    self.end_lane(lane, None);
                    break;
                }
            }
        }
    }

    /// Ends lane `lane`'s job: with `error`, or (`None`) with its own outcome. Its blocks
    /// are released and the reader no longer waits for it.
    fn end_lane(&mut self, lane: usize, error: Option<ReplicateError>) {
        let Some(state) = self.lanes.get_mut(lane) else {
            return;
        };
        if let Lane::Running(source) = state {
            let released = source.take_released();
            self.reads.release(lane, &released);
        }
        let placeholder = Lane::Ended(Box::new(Err(ReplicateError::Unexpected(
            "job not finished",
        ))));
        let result = match (std::mem::replace(state, placeholder), error) {
            (Lane::Running(_), Some(e)) => Box::new(Err(e)),
            (Lane::Running(source), None) => Box::new(source.finish()),
            (Lane::Ended(result), _) => result,
        };
        *state = Lane::Ended(result);
        self.reads.lane_ended(lane);
    }
}
