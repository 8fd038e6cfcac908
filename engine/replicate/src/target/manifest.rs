//! A Manifest batch: each entry's path checked and remembered (a path named twice is
//! refused), then answered by its kind: directories and symlinks are made here, files
//! are checked or registered for their data (see [`file_entry`](super::file_entry)).
//! Batches take the job's tree one at a time; the small files a batch carries inline are
//! written after it lets go of the tree, so the batches in flight write theirs in
//! parallel on the handler threads.

use std::io;
use std::os::fd::AsFd;

use bytes::BytesMut;
use rustix::fs::FileType;
use rustix::io::Errno;

use super::dirs::{DirHandle, dir_refusal};
use super::file_entry::InlineFile;
use super::job::{Job, Tree, lock, lossy};
use super::partial::LINK;
use crate::beneath::{self, is};
use crate::error::TargetError;
use crate::proto::{
    AnswerEntry, EntryKind, FinishReport, ManifestAnswer, ManifestBatch, ManifestEntry,
    RefusalKind, Verdict,
};
use crate::target_path::{self, path_key, split_last, temp_name};

/// An entry's verdict, kept until the batch's answer is encoded (a refusal's detail by
/// its index in the batch's details).
#[derive(Debug)]
pub(super) enum OwnedVerdict<'b> {
    UpToDate,
    Done,
    /// Done once this file is written (after the batch lets go of the tree).
    Inline(InlineFile<'b>),
    NeedAll,
    NeedBlocks(Vec<u32>),
    Refused(RefusalKind, usize),
}

/// At most the first `max` bytes.
fn truncate(bytes: &[u8], max: usize) -> &[u8] {
    &bytes[..bytes.len().min(max)]
}

impl Job {
    /// Answers a Manifest batch, entry by entry.
    pub(super) fn manifest(
        &self,
        batch: ManifestBatch<'_>,
        out: &mut BytesMut,
    ) -> Result<(), TargetError> {
        let _gate = self.enter()?;
        let mut report = FinishReport::default();
        let mut details = Vec::new();
        let verdicts = {
            let mut tree = lock(&self.tree);
            self.manifest_entries(&batch, &mut tree, &mut report, &mut details)
        };
        let result = verdicts.and_then(|verdicts| {
            let answers = verdicts
                .into_iter()
                .map(|(file_id, verdict)| {
                    let verdict = match verdict {
                        OwnedVerdict::Inline(file) => self
                            .write_inline(file, &mut report)
                            .unwrap_or_else(|(kind, d)| {
                                report.refused += 1;
                                details.push(d);
                                OwnedVerdict::Refused(kind, details.len() - 1)
                            }),
                        other => other,
                    };
                    (file_id, verdict)
                })
                .collect();
            encode_answer(answers, &details, out)
        });
        add_report(&mut lock(&self.report), &report);
        result
    }

    /// The entries' verdicts, inline files not yet written.
    fn manifest_entries<'b>(
        &self,
        batch: &'b ManifestBatch<'b>,
        tree: &mut Tree,
        report: &mut FinishReport,
        details: &mut Vec<String>,
    ) -> Result<Vec<(u32, OwnedVerdict<'b>)>, TargetError> {
        let mut answers = Vec::with_capacity(batch.entries.len());
        for entry in &batch.entries {
            let verdict = match self.remember(entry.path, tree)? {
                None => self.entry(entry, tree, report),
                Some(refused) => Err(refused),
            };
            let verdict = verdict.unwrap_or_else(|(kind, detail)| {
                report.refused += 1;
                details.push(detail);
                OwnedVerdict::Refused(kind, details.len() - 1)
            });
            answers.push((entry.file_id, verdict));
        }
        Ok(answers)
    }

    /// Checks an entry's path and remembers it: a refusal for a malformed path or one
    /// named before, a failure of the whole request beyond the job's limit.
    fn remember(
        &self,
        path: &[u8],
        tree: &mut Tree,
    ) -> Result<Option<(RefusalKind, String)>, TargetError> {
        if let Err(kind) = target_path::check_relative(path) {
            return Ok(Some((kind, lossy(path))));
        }
        if tree.seen.len() as u64 >= self.limits.max_entries {
            return Err(TargetError::TooManyEntries(self.limits.max_entries));
        }
        if tree.seen.insert(path_key(path), true) == Some(true) {
            return Ok(Some((
                RefusalKind::DuplicatePath,
                format!("{} was named before in this job", lossy(path)),
            )));
        }
        // The directories on the way: a source names them first, others may not.
        let mut dir = split_last(path).0;
        while !dir.is_empty() {
            match tree.seen.entry(path_key(dir)) {
                std::collections::hash_map::Entry::Occupied(_) => break,
                std::collections::hash_map::Entry::Vacant(vacant) => vacant.insert(false),
            };
            dir = split_last(dir).0;
        }
        Ok(None)
    }

    fn entry<'b>(
        &self,
        entry: &'b ManifestEntry<'b>,
        tree: &mut Tree,
        report: &mut FinishReport,
    ) -> Result<OwnedVerdict<'b>, (RefusalKind, String)> {
        let dry_run = self.options.dry_run;
        let (dir_rel, name) = split_last(entry.path);
        let dir = self
            .dir(dir_rel, !dry_run, &mut report.dirs_created)
            .map_err(|e| dir_refusal(dir_rel, &e))?;
        let fresh = tree.fresh_dirs.contains(&path_key(dir_rel));
        let existing = match &dir {
            Some(dir) if !fresh => {
                beneath::stat(dir.fd(), name).map_err(self.refusal(entry.path))?
            }
            _ => None,
        };
        let existing_kind = existing.as_ref().map(beneath::kind);
        match entry.kind {
            EntryKind::Dir => {
                let verdict = match (existing_kind, &dir) {
                    (Some(FileType::Directory), _) => {
                        report.up_to_date += 1;
                        OwnedVerdict::UpToDate
                    }
                    (_, Some(dir)) if !dry_run => {
                        let made = self
                            .make_dir(dir, name, existing.is_some())
                            .map_err(self.refusal(entry.path))?;
                        if made {
                            tree.fresh_dirs.insert(path_key(entry.path));
                            report.dirs_created += 1;
                            OwnedVerdict::Done
                        } else {
                            report.up_to_date += 1;
                            OwnedVerdict::UpToDate
                        }
                    }
                    _ => OwnedVerdict::Done,
                };
                tree.dirs
                    .insert(path_key(entry.path), (entry.mode, entry.mtime_ns));
                Ok(verdict)
            }
            EntryKind::Symlink => {
                let target = entry.symlink_target;
                if let (Some(FileType::Symlink), Some(dir), Some(st)) =
                    (existing_kind, &dir, &existing)
                    && beneath::read_link(dir.fd(), name).is_ok_and(|t| t == target)
                {
                    if !dry_run && beneath::mtime_ns(st) != entry.mtime_ns {
                        beneath::set_symlink_mtime(dir.fd(), name, entry.mtime_ns)
                            .map_err(self.refusal(entry.path))?;
                    }
                    report.up_to_date += 1;
                    return Ok(OwnedVerdict::UpToDate);
                }
                let Some(dir) = dir.filter(|_| !dry_run) else {
                    return Ok(OwnedVerdict::Done);
                };
                let temp = temp_name(name, LINK);
                let create = || -> io::Result<()> {
                    let folder = dir.partial_dir()?;
                    beneath::remove_all(folder.as_fd(), &temp)?;
                    beneath::symlink(target, folder.as_fd(), &temp)?;
                    let placed = beneath::set_symlink_mtime(folder.as_fd(), &temp, entry.mtime_ns)
                        .and_then(|()| self.replace(folder.as_fd(), &temp, &dir, name));
                    if placed.is_err() {
                        let _ = beneath::unlink(folder.as_fd(), &temp);
                    }
                    placed
                };
                create().map_err(self.refusal(entry.path))?;
                report.symlinks_created += 1;
                Ok(OwnedVerdict::Done)
            }
            EntryKind::File => self.file_entry(entry, dir, existing, report),
        }
    }

    /// Makes the directory `name` in `dir`, removing first what has the name (`taken`);
    /// `false` if a directory by that name turned up meanwhile (kept as it is).
    fn make_dir(&self, dir: &DirHandle, name: &[u8], taken: bool) -> io::Result<bool> {
        if taken {
            self.remove(dir, name)?;
        }
        match beneath::mkdir(dir.fd(), name, 0o777) {
            Err(e) if is(&e, Errno::EXIST) => match beneath::stat(dir.fd(), name)? {
                Some(st) if beneath::kind(&st) == FileType::Directory => Ok(false),
                _ => {
                    self.remove(dir, name)?;
                    beneath::mkdir(dir.fd(), name, 0o777)?;
                    Ok(true)
                }
            },
            other => other.map(|()| true),
        }
    }
}

/// Encodes the batch's answer (every inline file written by now).
fn encode_answer(
    answers: Vec<(u32, OwnedVerdict<'_>)>,
    details: &[String],
    out: &mut BytesMut,
) -> Result<(), TargetError> {
    let answer = ManifestAnswer {
        entries: answers
            .into_iter()
            .map(|(file_id, verdict)| AnswerEntry {
                file_id,
                verdict: match verdict {
                    OwnedVerdict::UpToDate => Verdict::UpToDate,
                    OwnedVerdict::Done | OwnedVerdict::Inline(_) => Verdict::Done,
                    OwnedVerdict::NeedAll => Verdict::NeedAll,
                    OwnedVerdict::NeedBlocks(blocks) => Verdict::NeedBlocks(blocks),
                    OwnedVerdict::Refused(kind, i) => Verdict::Refused {
                        kind,
                        // Details are bounded so the answer always encodes.
                        detail: truncate(details[i].as_bytes(), 1024),
                    },
                },
            })
            .collect(),
    };
    answer.encode(out)?;
    Ok(())
}

/// Adds a batch's counters to the job's.
fn add_report(into: &mut FinishReport, more: &FinishReport) {
    into.files_written += more.files_written;
    into.up_to_date += more.up_to_date;
    into.dirs_created += more.dirs_created;
    into.symlinks_created += more.symlinks_created;
    into.deleted += more.deleted;
    into.refused += more.refused;
    into.bytes_received += more.bytes_received;
    into.bytes_resumed += more.bytes_resumed;
}
