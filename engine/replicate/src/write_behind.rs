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
//! once more [`DEPTH`] files later, when its pages are clean and are dropped. The files
//! in between stay open: at most [`DEPTH`] descriptors per job. Best effort: a file
//! system without page cache or advice simply ignores it.

use std::collections::VecDeque;
use std::fs::File;
use std::sync::{Arc, Mutex, PoisonError};

/// Files kept open between the first advice and the second.
pub(crate) const DEPTH: usize = 64;

/// The files of one job waiting for their second advice.
#[derive(Debug, Default)]
pub(crate) struct WriteBehind {
    waiting: Mutex<VecDeque<Arc<File>>>,
}

impl WriteBehind {
    /// `file` is complete: starts its writeback, and drops the pages of the file
    /// completed [`DEPTH`] files before it.
    pub(crate) fn written(&self, file: Arc<File>) {
        drop_cached(&file);
        let oldest = {
            let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
            waiting.push_back(file);
            (waiting.len() > DEPTH)
                .then(|| waiting.pop_front())
                .flatten()
        };
        if let Some(oldest) = oldest {
            drop_cached(&oldest);
        }
    }

    /// The job ends: drops what is clean of the files still waiting, and closes them.
    pub(crate) fn finish(&self) {
        let waiting =
            std::mem::take(&mut *self.waiting.lock().unwrap_or_else(PoisonError::into_inner));
        for file in waiting {
            drop_cached(&file);
        }
    }

    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
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
    fn at_most_depth_files_wait_and_their_content_is_untouched() {
        let dir = std::env::temp_dir().join(format!("hawser-wb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let behind = WriteBehind::default();
        for i in 0..DEPTH + 10 {
            let path = dir.join(format!("f{i}"));
            let mut file = File::create(&path).unwrap();
            file.write_all(&vec![i as u8; 10_000 + i]).unwrap();
            behind.written(Arc::new(file));
            assert!(behind.waiting() <= DEPTH);
        }
        assert_eq!(behind.waiting(), DEPTH);
        behind.finish();
        assert_eq!(behind.waiting(), 0);
        for i in 0..DEPTH + 10 {
            let data = std::fs::read(dir.join(format!("f{i}"))).unwrap();
            assert_eq!(data, vec![i as u8; 10_000 + i], "f{i}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
