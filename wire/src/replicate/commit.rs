//! `CommitFile`: every block of a file is acknowledged; the target checks the whole file
//! and renames it into place.

use crate::reader::Reader;
use bytes::BufMut;

use super::{MessageKind, Need, ProtoError, expect_end, expect_tag, read_u128};

/// `tag, file_id u32, size u64, xxh3-128 (16 bytes), mode u32, mtime_ns i64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitFile {
    /// The file, by its manifest id.
    pub file_id: u32,
    /// Its size.
    pub size: u64,
    /// xxh3-128 of the whole content as the source read it (holes as zeros).
    pub content_hash: u128,
    /// Permission bits to apply.
    pub mode: u32,
    /// Modification time to apply, nanoseconds since the epoch.
    pub mtime_ns: i64,
}

impl CommitFile {
    /// Appends the message to `out`.
    pub fn encode(&self, out: &mut impl BufMut) {
        out.put_u8(MessageKind::Commit.tag());
        out.put_u32(self.file_id);
        out.put_u64(self.size);
        out.put_u128(self.content_hash);
        out.put_u32(self.mode);
        out.put_i64(self.mtime_ns);
    }

    /// Decodes a whole message.
    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        expect_tag(&mut r, MessageKind::Commit)?;
        let commit = CommitFile {
            file_id: r.u32().need()?,
            size: r.u64().need()?,
            content_hash: read_u128(&mut r)?,
            mode: r.u32().need()?,
            mtime_ns: r.u64().need()? as i64,
        };
        expect_end(&r)?;
        Ok(commit)
    }
}

/// The outcome of a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitStatus {
    /// Checked and renamed into place (and verified, with `--verify`).
    Committed,
    /// The written content does not hash to the source's xxh3-128 (the source changed
    /// while it was read, or corruption got past the block digests); nothing renamed.
    ContentMismatch,
    /// Blocks are missing; nothing renamed.
    Incomplete,
    /// `--verify`: the re-read after writing differs.
    VerifyFailed,
}

impl CommitStatus {
    pub(crate) fn to_wire(self) -> u8 {
        match self {
            Self::Committed => 0,
            Self::ContentMismatch => 1,
            Self::Incomplete => 2,
            Self::VerifyFailed => 3,
        }
    }

    pub(crate) fn from_wire(value: u8) -> Result<Self, ProtoError> {
        Ok(match value {
            0 => Self::Committed,
            1 => Self::ContentMismatch,
            2 => Self::Incomplete,
            3 => Self::VerifyFailed,
            other => {
                return Err(ProtoError::BadValue {
                    field: "commit status",
                    value: u32::from(other),
                });
            }
        })
    }
}

/// `tag, file_id u32, status u8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitAck {
    /// The file.
    pub file_id: u32,
    /// The outcome.
    pub status: CommitStatus,
}

impl CommitAck {
    /// Appends the message to `out`.
    pub fn encode(&self, out: &mut impl BufMut) {
        out.put_u8(MessageKind::CommitAck.tag());
        out.put_u32(self.file_id);
        out.put_u8(self.status.to_wire());
    }

    /// Decodes a whole message.
    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        expect_tag(&mut r, MessageKind::CommitAck)?;
        let file_id = r.u32().need()?;
        let status = CommitStatus::from_wire(r.u8().need()?)?;
        expect_end(&r)?;
        Ok(CommitAck { file_id, status })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn commit_round_trips(file_id: u32, size: u64, content_hash: u128, mode: u32, mtime_ns: i64) {
            let commit = CommitFile { file_id, size, content_hash, mode, mtime_ns };
            let mut buf = Vec::new();
            commit.encode(&mut buf);
            prop_assert_eq!(buf.len(), 41);
            prop_assert_eq!(CommitFile::decode(&buf), Ok(commit));
        }

        #[test]
        fn ack_round_trips(file_id: u32, status in 0u8..4) {
            let status = [CommitStatus::Committed, CommitStatus::ContentMismatch,
                          CommitStatus::Incomplete, CommitStatus::VerifyFailed][status as usize];
            let ack = CommitAck { file_id, status };
            let mut buf = Vec::new();
            ack.encode(&mut buf);
            prop_assert_eq!(CommitAck::decode(&buf), Ok(ack));
        }
    }
}
