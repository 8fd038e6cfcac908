//! Manifest batches: the walked entries encoded in order, each batch bounded by the
//! session's request size, small files inline when the destination is new; and the
//! target's verdicts, which queue the files whose data it wants.

use std::io::Read;

use super::blocks::FileWork;
use super::{InFlight, Source};
use crate::error::{FailureReason, ReplicateError};
use crate::proto::{BatchWriter, EntryKind, ManifestAnswer, ManifestEntry, MessageKind, Verdict};
use crate::sparse;
use crate::transport::Request;
use crate::walk::{self, SourceEntry};

impl Source {
    /// Whether small files may travel inside their manifest entry.
    fn inline_allowed(&self) -> bool {
        let options = &self.config.options;
        self.config.inline_max > 0
            && !options.checksum
            && !options.resume
            && !options.dry_run
            && !self.dest_existed
    }

    /// The next batch of entries.
    pub(super) fn next_manifest(&mut self) -> Result<Request, ReplicateError> {
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
                } else if let Some(hash) = e.content_hash.filter(|_| self.config.options.checksum) {
                    content_hash = Some(hash);
                } else if self.config.options.checksum {
                    let file = walk::open_file(root, &e.rel)?;
                    content_hash = Some(sparse::hash_file(&file, e.size).map_err(io)?);
                }
            }
            writer.push(&ManifestEntry {
                file_id: index as u32,
                path: e.sent_path(),
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

    /// Takes the verdicts on the entries `first..end`.
    pub(super) fn manifest_answer(
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
                    .push(String::from_utf8_lossy(entry.sent_path()).into_owned());
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
}

/// An upper bound of an entry's encoded size in a manifest batch.
fn encoded_len_bound(e: &SourceEntry, inline: bool) -> usize {
    let fixed = 4 + 1 + 1 + 4 + 8 + 8 + 2 + e.sent_path().len();
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
