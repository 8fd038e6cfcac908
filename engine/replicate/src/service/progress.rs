//! [`Progress`]: what a running job has done and how much there is, in counters a
//! progress display reads from another thread while the job's thread updates them.
//!
//! A push knows its totals from its own walk ([`Progress::set_totals`]); a pull's target
//! learns them from the manifest batches as they arrive ([`Progress::add_totals`]).
//! Either side counts files done from the answers ([`Progress::count_answer`]): a
//! manifest answer's up-to-date and written-inline files, a commit's committed file.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::proto::{
    CommitAck, CommitStatus, EntryKind, ManifestAnswer, ManifestBatch, MessageKind, Verdict,
};

/// Counters of a running job, updated as answers arrive and read by a progress display
/// on another thread.
#[derive(Debug, Default)]
pub struct Progress {
    /// Request body bytes acknowledged (blocks and manifest batches with inline data).
    pub bytes: AtomicU64,
    /// Requests acknowledged.
    pub requests: AtomicU64,
    /// Blocks acknowledged.
    pub blocks: AtomicU64,
    /// Regular files in the job (as far as known: a pull learns them batch by batch).
    pub files_total: AtomicU64,
    /// Bytes of those files.
    pub bytes_total: AtomicU64,
    /// Files finished: committed, written inline, or found up to date.
    pub files_done: AtomicU64,
    /// Bytes of the files found up to date: done without travelling.
    pub bytes_skipped: AtomicU64,
}

impl Progress {
    /// Sets the job's totals, known from the walk before anything is sent.
    pub fn set_totals(&self, files: u64, bytes: u64) {
        self.files_total.store(files, Ordering::Relaxed);
        self.bytes_total.store(bytes, Ordering::Relaxed);
    }

    /// Adds the regular files of the manifest batch `request` to the totals. A batch
    /// that does not decode adds nothing (the target refuses it anyway).
    pub fn add_totals(&self, request: &[u8]) {
        let Ok(batch) = ManifestBatch::decode(request) else {
            return;
        };
        let files = batch.entries.iter().filter(|e| e.kind == EntryKind::File);
        let (count, bytes) =
            files.fold((0u64, 0u64), |(n, b), e| (n + 1, b.saturating_add(e.size)));
        self.files_total.fetch_add(count, Ordering::Relaxed);
        self.bytes_total.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts the files `answer` (to a request of `kind`, body `request`) says are done.
    /// What does not decode counts nothing: progress is a display, the job checks
    /// every answer itself.
    pub fn count_answer(&self, kind: MessageKind, request: &[u8], answer: &[u8]) {
        match kind {
            MessageKind::Manifest => {
                let (Ok(batch), Ok(answer)) = (
                    ManifestBatch::decode(request),
                    ManifestAnswer::decode(answer),
                ) else {
                    return;
                };
                for (entry, verdict) in batch.entries.iter().zip(&answer.entries) {
                    if entry.kind != EntryKind::File {
                        continue;
                    }
                    match verdict.verdict {
                        Verdict::UpToDate => {
                            self.files_done.fetch_add(1, Ordering::Relaxed);
                            self.bytes_skipped.fetch_add(entry.size, Ordering::Relaxed);
                        }
                        Verdict::Done => {
                            self.files_done.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {}
                    }
                }
            }
            MessageKind::Commit
                if CommitAck::decode(answer)
                    .is_ok_and(|ack| ack.status == CommitStatus::Committed) =>
            {
                self.files_done.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }

    /// Bytes done of [`bytes_total`](Self::bytes_total): sent and acknowledged, or
    /// found up to date; never past the total once it is known.
    pub fn bytes_done(&self) -> u64 {
        let done = self
            .bytes
            .load(Ordering::Relaxed)
            .saturating_add(self.bytes_skipped.load(Ordering::Relaxed));
        match self.bytes_total.load(Ordering::Relaxed) {
            0 => done,
            total => done.min(total),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{AnswerEntry, ManifestEntry};

    fn entry(file_id: u32, kind: EntryKind, size: u64) -> ManifestEntry<'static> {
        ManifestEntry {
            file_id,
            path: b"f",
            kind,
            mode: 0o644,
            mtime_ns: 0,
            size,
            symlink_target: b"",
            extents: None,
            content_hash: None,
            inline: None,
        }
    }

    #[test]
    fn totals_and_done_files_come_from_batches_and_answers() {
        let mut request = Vec::new();
        ManifestBatch {
            entries: vec![
                entry(0, EntryKind::Dir, 0),
                entry(1, EntryKind::File, 1000),
                entry(2, EntryKind::File, 500),
                entry(3, EntryKind::File, 7),
            ],
        }
        .encode(&mut request)
        .unwrap();
        let mut answer = Vec::new();
        ManifestAnswer {
            entries: [
                Verdict::Done,
                Verdict::UpToDate,
                Verdict::NeedAll,
                Verdict::Done,
            ]
            .into_iter()
            .enumerate()
            .map(|(i, verdict)| AnswerEntry {
                file_id: i as u32,
                verdict,
            })
            .collect(),
        }
        .encode(&mut answer)
        .unwrap();
        let progress = Progress::default();
        progress.add_totals(&request);
        progress.count_answer(MessageKind::Manifest, &request, &answer);
        assert_eq!(progress.files_total.load(Ordering::Relaxed), 3);
        assert_eq!(progress.bytes_total.load(Ordering::Relaxed), 1507);
        // The up-to-date file and the inline one; the directory is not a file.
        assert_eq!(progress.files_done.load(Ordering::Relaxed), 2);
        assert_eq!(progress.bytes_done(), 1000);

        let mut ack = Vec::new();
        CommitAck {
            file_id: 2,
            status: CommitStatus::Committed,
        }
        .encode(&mut ack);
        progress.count_answer(MessageKind::Commit, &[], &ack);
        assert_eq!(progress.files_done.load(Ordering::Relaxed), 3);
        // Garbage counts nothing and never panics.
        progress.count_answer(MessageKind::Manifest, b"\x02junk", b"\x82");
        progress.count_answer(MessageKind::Commit, &[], b"");
        progress.add_totals(b"");
        assert_eq!(progress.files_done.load(Ordering::Relaxed), 3);
        // Done never passes the total.
        progress.bytes.store(10_000, Ordering::Relaxed);
        assert_eq!(progress.bytes_done(), 1507);
    }
}
