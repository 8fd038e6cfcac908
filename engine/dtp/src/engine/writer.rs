//! A receiving session's writer: runs of consecutive datagrams gathered in page-aligned
//! buffers and written by a thread of the session's own (their page-aligned part past the
//! page cache where the file system allows it), so that the shard goes on receiving while
//! the disk works. The thread hands the runs to up to [`WRITE_THREADS`] helpers
//! ([`WritePool`]), so that several writes are in flight. At most [`RUN_BUFFERS`] runs are
//! gathered or in flight; when all are, the next run waits for the disk. Each run's buffer
//! is one huge page ([`RUN`] bytes, `HugePageBuffer`): the shard copies into it at the
//! link's rate and the direct write pins it, one page instead of 512.
//!
//! The same thread reads back and hashes the blocks completed out of order, and writes
//! the journal. Its queue is in order, and it waits for the runs handed over before a
//! hash or a journal, so a block is hashed, and a journal written, only after every run
//! before it is on the file; the shard never waits for the disk except at a flush (the
//! end of a transfer).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use hawser_replicate::DirectFile;
use hawser_shards::{HugePageBuffer, copy_past_cache};

use super::Journal;
use super::write_pool::WritePool;
use crate::digest;

/// Bytes of a run: a huge page.
pub(super) const RUN: usize = 2 << 20;
/// Runs a session gathers or has in flight at most (each [`RUN`] bytes).
pub(super) const RUN_BUFFERS: usize = 4;
/// Runs a session writes at once at most.
const WRITE_THREADS: usize = 3;
/// Alignment of direct writes (the page).
const ALIGN: usize = 4096;

/// Where the runs go: the file, and its `O_DIRECT` descriptor when the file system has
/// one.
struct Output {
    file: File,
    direct: Option<DirectFile>,
}

impl Output {
    fn write(&self, run: &Run) -> io::Result<()> {
        let data = run.data();
        match &self.direct {
            Some(direct) => direct.write_at(&self.file, data, run.start),
            None => self.file.write_all_at(data, run.start),
        }
    }
}

/// The thread's side: where the runs go, and the journal.
struct Target {
    output: Arc<Output>,
    journal: Option<Journal>,
    /// Where a block that cannot be mapped is read back.
    hash_buf: Vec<u8>,
}

impl Target {
    fn run(&mut self, job: Job) -> Done {
        match job {
            Job::Write(run) => Done::Written(self.output.write(&run), run),
            Job::Hash { block, range } => Done::Hashed(
                block,
                digest::hash_block(&self.output.file, range, &mut self.hash_buf),
            ),
            Job::Journal(state) => Done::Journaled(match &mut self.journal {
                Some(write) => write(&state),
                None => Ok(()),
            }),
        }
    }
}

/// Work for the thread, done in the order given.
enum Job {
    Write(Run),
    /// Read back and hash block `block`, the bytes `range` of the file.
    Hash {
        block: u64,
        range: (u64, u64),
    },
    /// Write these journal bytes.
    Journal(Vec<u8>),
}

/// Work the thread has done.
enum Done {
    Written(io::Result<()>, Run),
    Hashed(u64, io::Result<u64>),
    Journaled(io::Result<()>),
}

/// Consecutive bytes of the payload from `start`, placed so that their file pages are
/// memory pages (what a direct write needs). A run ends at the next multiple of [`RUN`]
/// in the file, so that runs of bytes arriving in order are whole pages: a
/// partial page is written through the page cache, which on ext4 holds up every other
/// write to the file.
struct Run {
    start: u64,
    storage: HugePageBuffer,
    /// Where the bytes begin in `storage`.
    at: usize,
    len: usize,
    /// Bytes from `start` to the end of its [`RUN`] window.
    limit: usize,
}

impl Run {
    fn new() -> Self {
        Run {
            start: 0,
            storage: HugePageBuffer::zeroed(RUN),
            at: 0,
            len: 0,
            limit: RUN,
        }
    }

    /// Empties the run to gather bytes from `start`.
    fn begin(&mut self, start: u64) {
        // The storage starts on a page: the bytes sit at their offset within the page, and
        // end by the end of the storage (the window ends on a page).
        self.start = start;
        self.at = (start % ALIGN as u64) as usize;
        self.len = 0;
        self.limit = RUN - (start % RUN as u64) as usize;
    }

    fn end(&self) -> u64 {
        self.start + self.len as u64
    }

    fn room(&self) -> usize {
        self.limit - self.len
    }

    fn push(&mut self, bytes: &[u8]) {
        let from = self.at + self.len;
        // The run goes to the disk, not back through the CPU (the digests read the
        // datagram itself): its lines need not pass through the cache.
        copy_past_cache(&mut self.storage[from..from + bytes.len()], bytes);
        self.len += bytes.len();
    }

    fn data(&self) -> &[u8] {
        &self.storage[self.at..self.at + self.len]
    }
}

/// Writes runs, hashes blocks and journals on its thread; see the module doc.
pub(super) struct Writer {
    /// The thread's side, until the thread takes it (if it cannot start, or the file has
    /// no second descriptor, the work is done here, runs written through the cache).
    target: Option<Target>,
    /// The journal, when there is no thread to hand it to.
    journal: Option<Journal>,
    jobs: Option<mpsc::Sender<Job>>,
    done: Option<mpsc::Receiver<Done>>,
    thread: Option<JoinHandle<()>>,
    /// The run being gathered.
    current: Option<Run>,
    free: Vec<Run>,
    allocated: usize,
    /// Runs handed to the thread and not back yet.
    runs_in_flight: usize,
    /// Jobs handed to the thread and not done yet (runs included).
    jobs_in_flight: usize,
    /// Blocks hashed, not yet taken by [`take_hashed`](Self::take_hashed).
    hashed: Vec<(u64, u64)>,
    /// The first failure not yet reported.
    failed: Option<io::Error>,
    /// Where blocks are read back without a thread.
    hash_buf: Vec<u8>,
}

impl Writer {
    pub(super) fn new(file: &File, direct: Option<DirectFile>, journal: Option<Journal>) -> Self {
        // A descriptor of the writer's own; without one, the work is done on the shard.
        let (target, journal) = match file.try_clone() {
            Ok(file) => (
                Some(Target {
                    output: Arc::new(Output { file, direct }),
                    journal,
                    hash_buf: Vec::new(),
                }),
                None,
            ),
            Err(_) => (None, journal),
        };
        Writer {
            target,
            journal,
            jobs: None,
            done: None,
            thread: None,
            current: None,
            free: Vec::new(),
            allocated: 0,
            runs_in_flight: 0,
            jobs_in_flight: 0,
            hashed: Vec::new(),
            failed: None,
            hash_buf: Vec::new(),
        }
    }

    /// Gathers `data` at `offset` (written once its run is full, or when the next byte is
    /// not the run's next, or before the next hash, journal or flush).
    pub(super) fn write(
        &mut self,
        fallback: &File,
        mut offset: u64,
        mut data: &[u8],
    ) -> io::Result<()> {
        while !data.is_empty() {
            let fits = self
                .current
                .as_ref()
                .is_some_and(|run| run.end() == offset && run.room() > 0);
            if !fits {
                self.submit(fallback)?;
                let mut run = self.take_buffer()?;
                run.begin(offset);
                self.current = Some(run);
            }
            let run = self.current.as_mut().expect("set above");
            let part = data.len().min(run.room());
            run.push(&data[..part]);
            data = &data[part..];
            offset += part as u64;
        }
        Ok(())
    }

    /// Hashes block `block` (the bytes `range`) once everything gathered so far is
    /// written; the digest comes out of [`take_hashed`](Self::take_hashed).
    pub(super) fn hash_when_written(
        &mut self,
        fallback: &File,
        block: u64,
        range: (u64, u64),
    ) -> io::Result<()> {
        self.submit(fallback)?;
        if self.jobs.is_some() {
            return self.send(Job::Hash { block, range });
        }
        let digest = digest::hash_block(fallback, range, &mut self.hash_buf)?;
        self.hashed.push((block, digest));
        Ok(())
    }

    /// Writes `state` to the journal once everything gathered so far is written.
    pub(super) fn journal_when_written(
        &mut self,
        fallback: &File,
        state: Vec<u8>,
    ) -> io::Result<()> {
        self.submit(fallback)?;
        if self.jobs.is_some() {
            return self.send(Job::Journal(state));
        }
        match &mut self.journal {
            Some(write) => write(&state),
            None => Ok(()),
        }
    }

    /// The blocks hashed since the last call, as (block, digest); and the first failure of
    /// the thread's work, if one came back. Never waits.
    pub(super) fn take_hashed(&mut self) -> io::Result<Vec<(u64, u64)>> {
        while self.jobs_in_flight > 0 {
            let Some(done) = &self.done else { break };
            match done.try_recv() {
                Ok(done) => self.on_done(done),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => self.thread_ended(),
            }
        }
        self.report()?;
        Ok(std::mem::take(&mut self.hashed))
    }

    /// Writes every run gathered and waits until all the work handed over is done.
    pub(super) fn flush(&mut self, fallback: &File) -> io::Result<()> {
        self.submit(fallback)?;
        while self.jobs_in_flight > 0 {
            self.wait_one();
        }
        self.report()
    }

    fn report(&mut self) -> io::Result<()> {
        self.failed.take().map_or(Ok(()), Err)
    }

    /// Hands the run being gathered to the thread (started on the first run).
    fn submit(&mut self, fallback: &File) -> io::Result<()> {
        if self.jobs.is_none()
            && let Some(target) = self.target.take()
        {
            self.start_thread(target);
        }
        let Some(run) = self.current.take() else {
            return Ok(());
        };
        if run.len == 0 {
            self.free.push(run);
            return Ok(());
        }
        if self.jobs.is_some() {
            self.send(Job::Write(run))?;
            self.runs_in_flight += 1;
            return Ok(());
        }
        let result = fallback.write_all_at(run.data(), run.start);
        self.free.push(run);
        result
    }

    fn send(&mut self, job: Job) -> io::Result<()> {
        let sent = self
            .jobs
            .as_ref()
            .is_some_and(|jobs| jobs.send(job).is_ok());
        if !sent {
            return Err(io::Error::other("the DTP writer thread ended"));
        }
        self.jobs_in_flight += 1;
        Ok(())
    }

    /// Starts the thread; if it cannot start, the work is done here, runs buffered.
    fn start_thread(&mut self, mut target: Target) {
        let (jobs, queue) = mpsc::channel::<Job>();
        let (results, done) = mpsc::channel();
        // The target is handed over once the thread runs, so that a thread that cannot
        // start leaves the journal here.
        let (give, take) = mpsc::sync_channel::<Target>(1);
        let spawned = std::thread::Builder::new()
            .name("hawser-dtp-write".into())
            .spawn(move || {
                let Ok(mut target) = take.recv() else { return };
                let mut writes = {
                    let (output, results) = (Arc::clone(&target.output), results.clone());
                    WritePool::new(WRITE_THREADS, move |run: Run| {
                        let result = output.write(&run);
                        let _ = results.send(Done::Written(result, run));
                    })
                };
                for job in queue {
                    let done = match job {
                        Job::Write(run) => {
                            writes.run(run);
                            continue;
                        }
                        ordered => {
                            writes.wait_idle();
                            target.run(ordered)
                        }
                    };
                    if results.send(done).is_err() {
                        return;
                    }
                }
            });
        let Ok(handle) = spawned else {
            self.journal = target.journal.take();
            return;
        };
        match give.send(target) {
            Ok(()) => {
                self.jobs = Some(jobs);
                self.done = Some(done);
                self.thread = Some(handle);
            }
            Err(mpsc::SendError(mut target)) => self.journal = target.journal.take(),
        }
    }

    /// A buffer for the next run: a free one, a new one while fewer than [`RUN_BUFFERS`]
    /// exist, else the next the thread hands back.
    fn take_buffer(&mut self) -> io::Result<Run> {
        if let Some(run) = self.free.pop() {
            return Ok(run);
        }
        if self.allocated < RUN_BUFFERS || self.runs_in_flight == 0 {
            self.allocated += 1;
            return Ok(Run::new());
        }
        while self.free.is_empty() && self.runs_in_flight > 0 {
            self.wait_one();
        }
        self.report()?;
        Ok(self.free.pop().unwrap_or_else(Run::new))
    }

    /// Waits for one job in flight to be done.
    fn wait_one(&mut self) {
        let Some(done) = &self.done else {
            return self.thread_ended();
        };
        match done.recv() {
            Ok(done) => self.on_done(done),
            Err(_) => self.thread_ended(),
        }
    }

    fn on_done(&mut self, done: Done) {
        self.jobs_in_flight -= 1;
        let result = match done {
            Done::Written(result, run) => {
                self.runs_in_flight -= 1;
                self.free.push(run);
                result
            }
            Done::Hashed(block, digest) => digest.map(|digest| self.hashed.push((block, digest))),
            Done::Journaled(result) => result,
        };
        if let Err(e) = result {
            self.failed.get_or_insert(e);
        }
    }

    fn thread_ended(&mut self) {
        self.jobs_in_flight = 0;
        self.runs_in_flight = 0;
        self.failed
            .get_or_insert_with(|| io::Error::other("the DTP writer thread ended"));
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the queue ends the thread once it has written what it holds.
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str) -> (std::path::PathBuf, File) {
        let path = std::env::temp_dir().join(format!("hawser-dtp-{name}-{}", std::process::id()));
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        (path, file)
    }

    #[test]
    fn runs_in_any_order_land_byte_for_byte() {
        let (path, file) = temp_file("writer");
        let total = 3 * RUN + 12_345;
        let data: Vec<u8> = (0..total).map(|i| (i * 31 % 251) as u8).collect();
        let mut writer = Writer::new(&file, None, None);
        // Datagram-sized pieces, the second half of the payload first, then the first.
        let chunk = 64_000 - 16;
        let half = (total / 2) / chunk * chunk;
        for range in [(half, total), (0, half)] {
            let mut at = range.0;
            while at < range.1 {
                let end = (at + chunk).min(range.1);
                writer.write(&file, at as u64, &data[at..end]).unwrap();
                at = end;
            }
        }
        writer.flush(&file).unwrap();
        assert!(
            writer.allocated <= RUN_BUFFERS,
            "{} buffers",
            writer.allocated
        );
        assert_eq!(std::fs::read(&path).unwrap(), data);
        drop(writer);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_run_ends_where_its_window_ends_so_runs_in_order_are_whole_pages() {
        let mut run = Run::new();
        run.begin(3 * RUN as u64);
        assert_eq!(run.room(), RUN);
        run.begin(3 * RUN as u64 + 64_000);
        assert_eq!(run.room(), RUN - 64_000);
        run.push(&vec![7; RUN - 64_000]);
        assert_eq!(run.room(), 0);
        assert_eq!(run.end(), 4 * RUN as u64);
        assert_eq!(run.data().as_ptr().addr() % ALIGN, 64_000 % ALIGN);
    }

    #[test]
    fn a_write_that_fails_is_reported_at_the_flush() {
        let (path, file) = temp_file("writer-ro");
        drop(file);
        let read_only = File::open(&path).unwrap();
        let mut writer = Writer::new(&read_only, None, None);
        writer.write(&read_only, 0, &[1; 5000]).unwrap();
        assert!(writer.flush(&read_only).is_err());
        std::fs::remove_file(&path).unwrap();
    }

    /// A block handed over to hash, and a journal, come after the data gathered before
    /// them: the digest is of the written bytes, and the journal sees them on the file.
    #[test]
    fn hashes_and_journals_follow_the_data_before_them() {
        let (path, file) = temp_file("writer-order");
        let block = crate::BLOCK as usize;
        let data: Vec<u8> = (0..2 * block).map(|i| (i * 7 % 253) as u8).collect();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let journal: super::super::Journal = {
            let path = path.clone();
            let seen = std::sync::Arc::clone(&seen);
            Box::new(move |state: &[u8]| {
                let on_file = std::fs::read(&path)?;
                seen.lock().unwrap().push((state.to_vec(), on_file.len()));
                Ok(())
            })
        };
        let mut writer = Writer::new(&file, None, Some(journal));
        let chunk = 64_000 - 16;
        // The second block first, hashed; then the first, journaled.
        for (first, last) in [(block, 2 * block), (0, block)] {
            let mut at = first;
            while at < last {
                let end = (at + chunk).min(last);
                writer.write(&file, at as u64, &data[at..end]).unwrap();
                at = end;
            }
            if first == block {
                writer
                    .hash_when_written(&file, 1, (block as u64, block as u64))
                    .unwrap();
            } else {
                writer
                    .journal_when_written(&file, b"state".to_vec())
                    .unwrap();
            }
        }
        writer.flush(&file).unwrap();
        let hashed = writer.take_hashed().unwrap();
        let expected = twox_hash::XxHash3_64::oneshot(&data[block..]);
        assert_eq!(hashed, vec![(1, expected)]);
        assert_eq!(*seen.lock().unwrap(), vec![(b"state".to_vec(), 2 * block)]);
        drop(writer);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_block_that_cannot_be_read_back_is_reported() {
        let (path, file) = temp_file("writer-short");
        let mut writer = Writer::new(&file, None, None);
        writer.write(&file, 0, &[3; 5000]).unwrap();
        writer.hash_when_written(&file, 0, (0, 1 << 20)).unwrap();
        assert!(writer.flush(&file).is_err());
        drop(writer);
        std::fs::remove_file(&path).unwrap();
    }
}
