//! The target's transfer journal: which pieces of a partial file are written and verified.
//!
//! It lives beside the partial data (`<dir>/.hawser-partial/<name>.journal` next to
//! `<name>.part`). A 32-byte header names the source content it belongs to (size, mtime,
//! block size); then one 24-byte record per piece, appended after the piece's data is
//! written (and, with `--fsync`, synced first, then the record synced). Each record and
//! the header carry a check, so a torn or garbled tail after SIGKILL or power loss is
//! detected and cut off on reopening: the pieces it named are simply sent again.
//!
//! It works on files the target opened (beneath its root, see `beneath`): nothing here
//! touches a path.

use std::fs::File;
use std::io::{self, Read, Write};

const MAGIC: &[u8; 8] = b"HWSRJNL1";
const HEADER_LEN: usize = 32;
const RECORD_LEN: usize = 24;

/// What content a journal (and its partial file) belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) size: u64,
    pub(crate) mtime_ns: i64,
    pub(crate) block_size: u32,
}

/// One completed piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) offset: u64,
    pub(crate) len: u32,
    pub(crate) digest: u64,
}

fn check(bytes: &[u8]) -> u32 {
    hawser_wire::xxh3::hash64(bytes) as u32
}

#[derive(Debug)]
pub(crate) struct Journal {
    file: File,
    fsync: bool,
}

impl Journal {
    /// Starts a new journal in `file` (just created, empty, opened for writing).
    pub(crate) fn start(mut file: File, identity: Identity, fsync: bool) -> io::Result<Self> {
        let mut header = [0u8; HEADER_LEN];
        header[..8].copy_from_slice(MAGIC);
        header[8..16].copy_from_slice(&identity.size.to_be_bytes());
        header[16..24].copy_from_slice(&identity.mtime_ns.to_be_bytes());
        header[24..28].copy_from_slice(&identity.block_size.to_be_bytes());
        let sum = check(&header[..28]);
        header[28..].copy_from_slice(&sum.to_be_bytes());
        file.write_all(&header)?;
        if fsync {
            file.sync_data()?;
        }
        Ok(Journal { file, fsync })
    }

    /// Reads the journal in `file` (opened for reading and appending) if it belongs to
    /// `identity`: its intact records, a torn tail truncated away. `None` if it is for
    /// other content.
    pub(crate) fn load(
        mut file: File,
        identity: Identity,
        fsync: bool,
    ) -> io::Result<Option<(Self, Vec<Record>)>> {
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let Some(header) = bytes.get(..HEADER_LEN) else {
            return Ok(None);
        };
        let valid = &header[..8] == MAGIC
            && header[8..16] == identity.size.to_be_bytes()
            && header[16..24] == identity.mtime_ns.to_be_bytes()
            && header[24..28] == identity.block_size.to_be_bytes()
            && header[28..] == check(&header[..28]).to_be_bytes();
        if !valid {
            return Ok(None);
        }
        let mut records = Vec::new();
        let mut good = HEADER_LEN;
        for raw in bytes[HEADER_LEN..].chunks_exact(RECORD_LEN) {
            if raw[20..] != check(&raw[..20]).to_be_bytes() {
                break;
            }
            let field = |range: std::ops::Range<usize>| raw.get(range).unwrap_or_default();
            records.push(Record {
                offset: u64::from_be_bytes(field(0..8).try_into().unwrap_or_default()),
                len: u32::from_be_bytes(field(8..12).try_into().unwrap_or_default()),
                digest: u64::from_be_bytes(field(12..20).try_into().unwrap_or_default()),
            });
            good += RECORD_LEN;
        }
        if good < bytes.len() {
            file.set_len(good as u64)?;
        }
        Ok(Some((Journal { file, fsync }, records)))
    }

    /// Continues a journal [`load`](Self::load)ed earlier: `file` is it, reopened for
    /// appending.
    pub(crate) fn resume(file: File, fsync: bool) -> Self {
        Journal { file, fsync }
    }

    /// Appends a record (after the piece's data is written).
    pub(crate) fn append(&mut self, record: Record) -> io::Result<()> {
        let mut raw = [0u8; RECORD_LEN];
        raw[..8].copy_from_slice(&record.offset.to_be_bytes());
        raw[8..12].copy_from_slice(&record.len.to_be_bytes());
        raw[12..20].copy_from_slice(&record.digest.to_be_bytes());
        let sum = check(&raw[..20]);
        raw[20..].copy_from_slice(&sum.to_be_bytes());
        self.file.write_all(&raw)?;
        if self.fsync {
            self.file.sync_data()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reopens_and_cuts_a_torn_tail() {
        let path = std::env::temp_dir().join(format!("hawser-journal-{}", std::process::id()));
        let identity = Identity {
            size: 100,
            mtime_ns: 5,
            block_size: 4096,
        };
        let mut journal = Journal::start(File::create(&path).unwrap(), identity, false).unwrap();
        let first = Record {
            offset: 0,
            len: 10,
            digest: 1,
        };
        let second = Record {
            offset: 10,
            len: 10,
            digest: 2,
        };
        journal.append(first).unwrap();
        journal.append(second).unwrap();
        drop(journal);
        // A torn third record: half written.
        let mut raw = File::options().append(true).open(&path).unwrap();
        raw.write_all(&[9; 11]).unwrap();
        drop(raw);
        let reopen = || File::options().read(true).append(true).open(&path).unwrap();
        let (mut journal, records) = Journal::load(reopen(), identity, false).unwrap().unwrap();
        assert_eq!(records, vec![first, second]);
        journal
            .append(Record {
                offset: 20,
                len: 5,
                digest: 3,
            })
            .unwrap();
        drop(journal);
        let (_, records) = Journal::load(reopen(), identity, false).unwrap().unwrap();
        assert_eq!(records.len(), 3);
        let other = Identity {
            size: 101,
            ..identity
        };
        assert!(Journal::load(reopen(), other, false).unwrap().is_none());
        std::fs::remove_file(&path).unwrap();
    }
}
