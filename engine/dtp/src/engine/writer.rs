//! A receiving session's writer: runs of consecutive datagrams gathered in page-aligned
//! buffers and written on a thread of the session's own (their page-aligned part past the
//! page cache where the file system allows it), so that the shard goes on receiving while
//! the disk works. At most [`RUN_BUFFERS`] runs are gathered or in flight; when all are,
//! the next run waits for the disk.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::mpsc;
use std::thread::JoinHandle;

use hawser_replicate::DirectFile;

use super::STAGING;

/// Runs a session gathers or has in flight at most (each [`STAGING`] bytes).
pub(super) const RUN_BUFFERS: usize = 4;
/// Alignment of direct writes (the page).
const ALIGN: usize = 4096;

/// Where the runs go: the file, and its `O_DIRECT` descriptor when the file system has one.
struct Target {
    file: File,
    direct: Option<DirectFile>,
}

impl Target {
    fn write(&self, run: &Run) -> io::Result<()> {
        let data = run.data();
        match &self.direct {
            Some(direct) => direct.write_at(&self.file, data, run.start),
            None => self.file.write_all_at(data, run.start),
        }
    }
}

/// Consecutive bytes of the payload from `start`, placed so that their file pages are
/// memory pages (what a direct write needs).
struct Run {
    start: u64,
    storage: Vec<u8>,
    /// Where the bytes begin in `storage`.
    at: usize,
    len: usize,
}

impl Run {
    fn new() -> Self {
        Run {
            start: 0,
            storage: vec![0; STAGING + 2 * ALIGN],
            at: 0,
            len: 0,
        }
    }

    /// Empties the run to gather bytes from `start`.
    fn begin(&mut self, start: u64) {
        let base = self.storage.as_ptr().align_offset(ALIGN);
        self.start = start;
        self.at = base + (start % ALIGN as u64) as usize;
        self.len = 0;
    }

    fn end(&self) -> u64 {
        self.start + self.len as u64
    }

    fn room(&self) -> usize {
        STAGING - self.len
    }

    fn push(&mut self, bytes: &[u8]) {
        let from = self.at + self.len;
        self.storage[from..from + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    fn data(&self) -> &[u8] {
        &self.storage[self.at..self.at + self.len]
    }
}

/// Writes runs on its thread; see the module doc.
pub(super) struct Writer {
    /// The thread's side, until the thread takes it (if it cannot start, or the file has
    /// no second descriptor, runs are written here through the cache).
    target: Option<Target>,
    jobs: Option<mpsc::Sender<Run>>,
    done: Option<mpsc::Receiver<(io::Result<()>, Run)>>,
    thread: Option<JoinHandle<()>>,
    /// The run being gathered.
    current: Option<Run>,
    free: Vec<Run>,
    allocated: usize,
    in_flight: usize,
}

impl Writer {
    pub(super) fn new(file: &File, direct: Option<DirectFile>) -> Self {
        // A descriptor of the writer's own; without one, runs are written on the shard.
        let target = file.try_clone().ok().map(|file| Target { file, direct });
        Writer {
            target,
            jobs: None,
            done: None,
            thread: None,
            current: None,
            free: Vec::new(),
            allocated: 0,
            in_flight: 0,
        }
    }

    /// Gathers `data` at `offset` (written once its run is full, or when the next byte is
    /// not the run's next, or at [`flush`](Self::flush)).
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

    /// Writes every run gathered and waits until all are on the file.
    pub(super) fn flush(&mut self, fallback: &File) -> io::Result<()> {
        self.submit(fallback)?;
        let mut first_error = None;
        while self.in_flight > 0 {
            if let Err(e) = self.wait_one() {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Hands the run being gathered to the thread (started on the first run).
    fn submit(&mut self, fallback: &File) -> io::Result<()> {
        let Some(run) = self.current.take() else {
            return Ok(());
        };
        if run.len == 0 {
            self.free.push(run);
            return Ok(());
        }
        if self.jobs.is_none()
            && let Some(target) = self.target.take()
        {
            self.start_thread(target);
        }
        match &self.jobs {
            Some(jobs) => match jobs.send(run) {
                Ok(()) => {
                    self.in_flight += 1;
                    Ok(())
                }
                Err(mpsc::SendError(_)) => Err(io::Error::other("the DTP writer thread ended")),
            },
            None => {
                let result = fallback.write_all_at(run.data(), run.start);
                self.free.push(run);
                result
            }
        }
    }

    /// Starts the thread; if it cannot start, runs are written here, buffered.
    fn start_thread(&mut self, target: Target) {
        let (jobs, queue) = mpsc::channel::<Run>();
        let (results, done) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("hawser-dtp-write".into())
            .spawn(move || {
                for run in queue {
                    let result = target.write(&run);
                    if results.send((result, run)).is_err() {
                        return;
                    }
                }
            });
        if let Ok(handle) = spawned {
            self.jobs = Some(jobs);
            self.done = Some(done);
            self.thread = Some(handle);
        }
    }

    /// A buffer for the next run: a free one, a new one while fewer than [`RUN_BUFFERS`]
    /// exist, else the next the thread hands back.
    fn take_buffer(&mut self) -> io::Result<Run> {
        if let Some(run) = self.free.pop() {
            return Ok(run);
        }
        if self.allocated < RUN_BUFFERS || self.in_flight == 0 {
            self.allocated += 1;
            return Ok(Run::new());
        }
        self.wait_one()?;
        Ok(self.free.pop().expect("a run came back"))
    }

    /// Waits for one run in flight to be written; its buffer goes back to the free list.
    fn wait_one(&mut self) -> io::Result<()> {
        let Some(done) = &self.done else {
            self.in_flight = 0;
            return Ok(());
        };
        match done.recv() {
            Ok((result, run)) => {
                self.in_flight -= 1;
                self.free.push(run);
                result
            }
            Err(_) => {
                self.in_flight = 0;
                Err(io::Error::other("the DTP writer thread ended"))
            }
        }
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
        let total = 3 * STAGING + 12_345;
        let data: Vec<u8> = (0..total).map(|i| (i * 31 % 251) as u8).collect();
        let mut writer = Writer::new(&file, None);
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
    fn a_write_that_fails_is_reported_at_the_flush() {
        let (path, file) = temp_file("writer-ro");
        drop(file);
        let read_only = File::open(&path).unwrap();
        let mut writer = Writer::new(&read_only, None);
        writer.write(&read_only, 0, &[1; 5000]).unwrap();
        assert!(writer.flush(&read_only).is_err());
        std::fs::remove_file(&path).unwrap();
    }
}
