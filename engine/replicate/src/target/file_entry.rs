//! A file entry of the manifest: up to date (its metadata brought in line), written
//! whole from its inline data, or registered as a [`Partial`] waiting for its blocks
//! (with resume, only the blocks an interrupted job left missing).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};

use rustix::fs::{FileType, OFlags, Stat};

use super::dirs::DirHandle;
use super::job::PieceCharge;
use super::job::{Job, lock, lossy};
use super::manifest::OwnedVerdict;
use super::metadata::apply_metadata;
use super::partial::{MAX_PIECES, PART, Partial};
use crate::beneath;
use crate::journal;
use crate::proto::{FinishReport, ManifestEntry, RefusalKind};
use crate::sparse::{self, Piece};
use crate::target_path::{split_last, temp_name};

/// A file whose whole content came with its manifest entry, to write once the batch's
/// paths are settled.
#[derive(Debug)]
pub(super) struct InlineFile<'b> {
    entry: &'b ManifestEntry<'b>,
    data: &'b [u8],
    dir: Arc<DirHandle>,
    /// Something had the file's name when the entry was checked.
    taken: bool,
}

impl Job {
    /// Answers a file entry whose directory is `dir` and whose name there is taken by
    /// `existing`.
    pub(super) fn file_entry<'b>(
        &self,
        entry: &'b ManifestEntry<'b>,
        dir: Option<Arc<DirHandle>>,
        existing: Option<Stat>,
        report: &mut FinishReport,
    ) -> Result<OwnedVerdict<'b>, (RefusalKind, String)> {
        let dry_run = self.options.dry_run;
        let name = split_last(entry.path).1;
        if let (Some(st), Some(dir)) = (&existing, &dir)
            && beneath::kind(st) == FileType::RegularFile
            && beneath::size(st) == entry.size
        {
            let same = if self.options.checksum {
                let hash = beneath::open_regular(dir.fd(), name, OFlags::RDONLY)
                    .and_then(|f| sparse::hash_file(&f, entry.size));
                entry.content_hash.is_some() && hash.ok() == entry.content_hash
            } else {
                beneath::mtime_ns(st) == entry.mtime_ns
            };
            if same {
                if !dry_run {
                    apply_metadata(dir, name, st, entry.mode, entry.mtime_ns)
                        .map_err(self.refusal(entry.path))?;
                }
                report.up_to_date += 1;
                return Ok(OwnedVerdict::UpToDate);
            }
        }
        let Some(dir) = dir.filter(|_| !dry_run) else {
            return Ok(if entry.inline.is_some() {
                OwnedVerdict::Done
            } else {
                OwnedVerdict::NeedAll
            });
        };
        // A file waiting for its blocks keeps a record per piece until it commits: its
        // claimed size is counted against the job's piece budget before anything is
        // built for it.
        let mut charge = None;
        if entry.inline.is_none() {
            let count = sparse::piece_count(&entry.data_extents(), self.options.block_size);
            charge = (count <= MAX_PIECES)
                .then(|| self.charge_pieces(count))
                .flatten();
            if charge.is_none() {
                return Err((RefusalKind::TooManyBlocks, lossy(entry.path)));
            }
        }
        if let Some(data) = entry.inline {
            return Ok(OwnedVerdict::Inline(InlineFile {
                entry,
                data,
                dir,
                taken: existing.is_some(),
            }));
        }
        let charge = charge.expect("charged above for an entry without inline data");
        self.register_partial(entry, &dir, report, charge)
            .map_err(self.refusal(entry.path))
    }

    /// Writes a file that came inline, checked against its digest: as an unnamed file in
    /// its directory, linked under its name when complete (one directory operation, and
    /// nothing left behind if the job fails meanwhile). Where the name was taken when the
    /// entry was checked (`link` cannot replace), the file system has no unnamed files,
    /// or there is no `/proc` to link through, it is written as a partial file and
    /// renamed into place.
    pub(super) fn write_inline<'b>(
        &self,
        file: InlineFile<'b>,
        report: &mut FinishReport,
    ) -> Result<OwnedVerdict<'b>, (RefusalKind, String)> {
        let InlineFile {
            entry,
            data,
            dir,
            taken,
        } = file;
        if entry.content_hash != Some(hawser_wire::xxh3::hash128(data)) {
            return Err((RefusalKind::ContentMismatch, lossy(entry.path)));
        }
        let unnamed = if taken {
            Ok(None)
        } else {
            self.place_unnamed(entry, data, &dir)
        };
        let written = match unnamed {
            Ok(Some(file)) => Ok(file),
            Ok(None) => self.place_named(entry, data, &dir),
            Err(e) => Err(e),
        };
        let file = written.map_err(self.refusal(entry.path))?;
        self.leave_cache(file);
        report.files_written += 1;
        report.bytes_received += data.len() as u64;
        Ok(OwnedVerdict::Done)
    }

    /// Writes `data` into an unnamed file in `dir` and links it under the entry's name;
    /// `None` where that cannot be done (no `O_TMPFILE`, no `/proc`) and a named partial
    /// file has to do.
    fn place_unnamed(
        &self,
        entry: &ManifestEntry<'_>,
        data: &[u8],
        dir: &DirHandle,
    ) -> io::Result<Option<File>> {
        if !beneath::can_link_unnamed() {
            return Ok(None);
        }
        let mut file = match beneath::create_unnamed(dir.fd(), 0o600) {
            Err(e) if beneath::unnamed_unsupported(&e) => return Ok(None),
            other => other?,
        };
        self.fill(&mut file, entry, data)?;
        self.link_into_place(&file, dir, split_last(entry.path).1)?;
        Ok(Some(file))
    }

    /// Writes `data` as the entry's partial file and renames it into place.
    fn place_named(
        &self,
        entry: &ManifestEntry<'_>,
        data: &[u8],
        dir: &DirHandle,
    ) -> io::Result<File> {
        let name = split_last(entry.path).1;
        let temp = temp_name(name, PART);
        let (folder, mut file) = dir.create_temp(&temp)?;
        let placed = self
            .fill(&mut file, entry, data)
            .and_then(|()| self.replace(folder.as_fd(), &temp, dir, name));
        if let Err(e) = placed {
            let _ = beneath::unlink(folder.as_fd(), &temp);
            return Err(e);
        }
        Ok(file)
    }

    /// Writes `data` into `file` and gives it the entry's mode and time (synced with
    /// `--fsync`).
    fn fill(&self, file: &mut File, entry: &ManifestEntry<'_>, data: &[u8]) -> io::Result<()> {
        file.write_all(data)?;
        beneath::set_mode(&*file, entry.mode)?;
        beneath::set_mtime(&*file, entry.mtime_ns)?;
        if self.options.fsync {
            file.sync_all()?;
        }
        Ok(())
    }

    /// Registers a file needing data; with resume, checks the partial file and journal
    /// an interrupted job left and answers with the blocks still missing.
    fn register_partial(
        &self,
        entry: &ManifestEntry<'_>,
        dir: &DirHandle,
        report: &mut FinishReport,
        charge: PieceCharge,
    ) -> io::Result<OwnedVerdict<'static>> {
        let name = split_last(entry.path).1;
        let identity = journal::Identity {
            size: entry.size,
            mtime_ns: entry.mtime_ns,
            block_size: self.options.block_size,
        };
        let pieces: HashMap<u64, u32> =
            sparse::pieces(&entry.data_extents(), self.options.block_size)
                .into_iter()
                .map(|p| (p.offset, p.len))
                .collect();
        let mut resumed = None;
        if self.options.resume
            && let Some(found) = self.check_resumable(dir, name, identity, &pieces, report)?
        {
            resumed = Some(found);
        }
        let (resumed, received) = match resumed {
            Some((ids, received)) => (Some(ids), Some(received)),
            None => (None, None),
        };
        let resuming = received.is_some();
        let received = received.unwrap_or_default();
        let block_size = self.options.block_size;
        let mut missing: Vec<u32> = pieces
            .iter()
            .filter(|(offset, _)| !received.contains_key(offset))
            .map(|(&offset, &len)| Piece { offset, len }.block_index(block_size))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        let dense = pieces.values().map(|&len| u64::from(len)).sum::<u64>() == entry.size;
        let partial = Partial {
            size: entry.size,
            dense,
            dir: Arc::clone(&dir.rel),
            name: name.into(),
            new_journal: (!resuming && pieces.len() > 1).then_some(identity),
            pieces,
            received,
            resumed,
            open: None,
            _pieces: charge,
        };
        lock(&self.partials).insert(entry.file_id, Arc::new(Mutex::new(Some(partial))));
        Ok(if resuming {
            OwnedVerdict::NeedBlocks(missing)
        } else {
            OwnedVerdict::NeedAll
        })
    }
}
