//! Resuming a file: the partial file and journal an interrupted job left, checked against
//! the content the manifest names, and the pieces in them whose bytes still match.

use std::collections::HashMap;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;

use rustix::fs::OFlags;

use super::dirs::DirHandle;
use super::job::Job;
use super::partial::{JOURNAL, PART, Resumed};
use crate::beneath;
use crate::journal::{self, Journal};
use crate::proto::{FinishReport, block_digest};
use crate::target_path::temp_name;

impl Job {
    /// The partial file and journal of `name` if an interrupted job left them for this
    /// content: their identities, and the pieces whose bytes on disk still match the
    /// journal's digest (the data of a record may not have reached the disk). Both are
    /// closed again: the first Block reopens them.
    pub(super) fn check_resumable(
        &self,
        dir: &DirHandle,
        name: &[u8],
        identity: journal::Identity,
        pieces: &HashMap<u64, u32>,
        report: &mut FinishReport,
    ) -> io::Result<Option<(Resumed, HashMap<u64, u64>)>> {
        let Some(folder) = dir.existing_partial_dir()? else {
            return Ok(None);
        };
        let (temp, journal_name) = (temp_name(name, PART), temp_name(name, JOURNAL));
        let Ok(file) = beneath::open_regular(folder.as_fd(), &temp, OFlags::RDWR) else {
            return Ok(None);
        };
        let file_stat = beneath::fstat(&file)?;
        if beneath::size(&file_stat) != identity.size {
            return Ok(None);
        }
        let Ok(journal_file) =
            beneath::open_regular(folder.as_fd(), &journal_name, OFlags::RDWR | OFlags::APPEND)
        else {
            return Ok(None);
        };
        let journal_stat = beneath::fstat(&journal_file)?;
        let Some((_, records)) = Journal::load(journal_file, identity, self.options.fsync)? else {
            return Ok(None);
        };
        let mut received = HashMap::new();
        let mut buf = Vec::new();
        for record in records {
            if pieces.get(&record.offset) != Some(&record.len)
                || received.contains_key(&record.offset)
            {
                continue;
            }
            buf.resize(record.len as usize, 0);
            if file.read_exact_at(&mut buf, record.offset).is_ok()
                && block_digest(&buf) == record.digest
            {
                received.insert(record.offset, record.digest);
                report.bytes_resumed += u64::from(record.len);
            }
        }
        let resumed = Resumed {
            file: file_stat,
            journal: journal_stat,
        };
        Ok(Some((resumed, received)))
    }
}
