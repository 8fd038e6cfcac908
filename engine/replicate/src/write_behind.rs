//! Dropping the files a job wrote from the page cache once they are on the disk.
//!
//! A target receiving gigabytes through the page cache fills it with pages nobody will
//! read again soon, evicting what the host was using, and each of those pages is a fresh
//! one to allocate and fill. Populating fresh cache pages is the dearest part of receiving
//! small files (more so in a VM, where memory the guest has not touched yet costs a fault
//! in the host on first use). Giving the pages back once they are written lets the next
//! files reuse them (README, "Measured", has what it gains).
//!
//! So each file is advised `POSIX_FADV_DONTNEED` when it is complete, which starts the
//! writeback of its dirty pages without waiting for it (pages still dirty stay), and
//! once more [`DEPTH`] files later, when its pages are clean and are dropped. Starting a
//! file's writeback is the kernel's block allocation and I/O submission for it, a large
//! part of a target's work on small files: a thread of the job's own does the advising,
//! so the handlers go on receiving meanwhile. It takes the files through a queue of
//! [`QUEUED`]; a handler that finds the queue full waits (the cache stays bounded when
//! the disk falls behind). At most `QUEUED + DEPTH` descriptors per job stay open
//! between a file's commit and its second advice. The thread keeps the handlers'
//! priority: niced, it was preempted inside the file system's journal and held up the
//! handlers' file creations behind it. Best effort: a file system without page cache or
//! advice simply ignores it, and without a thread the handlers advise.

use std::collections::VecDeque;
use std::fs::File;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

/// Files kept open between the first advice and the second.
pub(crate) const DEPTH: usize = 64;
/// Files handed to the thread and not advised yet.
pub(crate) const QUEUED: usize = 64;

/// What the thread is told.
enum Work {
    /// A complete file: advise it now, and again [`DEPTH`] files later.
    Written(Arc<File>),
    /// The job ends: advise the files still waiting, and close them.
    Finish,
}

/// The write-behind of one job: its thread, started by the first file.
#[derive(Debug, Default)]
pub(crate) struct WriteBehind {
    thread: Mutex<Option<Advisor>>,
}

/// The thread and its queue.
#[derive(Debug)]
struct Advisor {
    work: SyncSender<Work>,
    _thread: JoinHandle<()>,
}

impl WriteBehind {
    /// `file` is complete: starts its writeback, and drops the pages of the file
    /// completed [`DEPTH`] files before it (on the job's thread).
    pub(crate) fn written(&self, file: Arc<File>) {
        let work = {
            let mut thread = self.thread.lock().unwrap_or_else(PoisonError::into_inner);
            if thread.is_none() {
                *thread = Advisor::start();
            }
            thread.as_ref().map(|advisor| advisor.work.clone())
        };
        // No thread (or it is gone): advise here, and keep nothing waiting.
        let unsent = match work {
            Some(work) => work.send(Work::Written(file)).err().map(|e| e.0),
            None => Some(Work::Written(file)),
        };
        if let Some(Work::Written(file)) = unsent {
            drop_cached(&file);
        }
    }

    /// The job ends: the files still waiting are advised and closed (on the thread,
    /// which then ends; the job does not wait for it).
    pub(crate) fn finish(&self) {
        self.end();
    }

    /// Tells the thread the job ends; the thread's handle, if it had started.
    fn end(&self) -> Option<Advisor> {
        let advisor = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()?;
        let _ = advisor.work.send(Work::Finish);
        Some(advisor)
    }

    /// Waits until the thread has advised and closed every file (tests).
    #[cfg(test)]
    fn finish_and_wait(&self) {
        if let Some(advisor) = self.end() {
            drop(advisor.work);
            let _ = advisor._thread.join();
        }
    }
}

impl Advisor {
    fn start() -> Option<Advisor> {
        let (work, queue) = sync_channel(QUEUED);
        let handle = std::thread::Builder::new()
            .name("hawser-write-behind".into())
            .spawn(move || advise(queue))
            .ok()?;
        Some(Advisor {
            work,
            _thread: handle,
        })
    }
}

/// The thread: advises each file as it comes and again [`DEPTH`] files later.
fn advise(queue: Receiver<Work>) {
    let mut waiting = VecDeque::with_capacity(DEPTH + 1);
    for work in queue {
        match work {
            Work::Written(file) => {
                drop_cached(&file);
                waiting.push_back(file);
                if waiting.len() > DEPTH
                    && let Some(oldest) = waiting.pop_front()
                {
                    drop_cached(&oldest);
                }
            }
            Work::Finish => break,
        }
    }
    for file in waiting {
        drop_cached(&file);
    }
}

/// Advises the kernel to drop `file`'s cached pages: dirty ones start writing back and
/// stay, clean ones go (best effort).
pub(crate) fn drop_cached(file: &File) {
    let _ = rustix::fs::fadvise(file, 0, None, rustix::fs::Advice::DontNeed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn the_thread_closes_every_file_and_leaves_its_content_untouched() {
        let dir = std::env::temp_dir().join(format!("hawser-wb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let behind = WriteBehind::default();
        let mut files = Vec::new();
        for i in 0..DEPTH + QUEUED + 10 {
            let path = dir.join(format!("f{i}"));
            let mut file = File::create(&path).unwrap();
            file.write_all(&vec![i as u8; 10_000 + i]).unwrap();
            let file = Arc::new(file);
            files.push(Arc::downgrade(&file));
            behind.written(file);
        }
        behind.finish_and_wait();
        // Every file was advised and closed by the thread.
        assert!(files.iter().all(|file| file.upgrade().is_none()));
        for i in 0..DEPTH + QUEUED + 10 {
            let data = std::fs::read(dir.join(format!("f{i}"))).unwrap();
            assert_eq!(data, vec![i as u8; 10_000 + i], "f{i}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
