//! The replication protocol: the bodies of the DSP exchanges a replication job is made of.
//!
//! Every message is binary and big-endian, and starts with a one-byte tag that names its
//! kind. Requests go from the source to the target, each answered by one response; the
//! exchange id of a request is [`MessageKind::exchange_id`] of its tag. Decoders borrow
//! from the input (`&[u8]`), never panic and answer bad input with a [`ProtoError`];
//! encoders write into any [`bytes::BufMut`]. The bytes are specified in
//! `docs/PROTOCOL.md` ("Replication exchanges").
//!
//! | request (source → target) | response (target → source) |
//! |---|---|
//! | [`Begin`] | [`BeginAck`] |
//! | [`ManifestBatch`] | [`ManifestAnswer`] |
//! | [`BlockHeader`] + data | [`BlockAck`] |
//! | [`CommitFile`] | [`CommitAck`] |
//! | [`DeleteRequest`] | [`DeleteList`] |
//! | [`Finish`] | [`FinishReport`] |
//!
//! and, from a target to a source (`hawser pull`): [`PullRequest`] → [`PullReport`].

mod answer;
mod begin;
mod block;
mod commit;
mod delete;
mod error;
mod failure;
mod finish;
mod manifest;
mod pull;

pub use answer::{AnswerEntry, ManifestAnswer, RefusalKind, Verdict};
pub use begin::{
    Begin, BeginAck, CompressPolicy, JobOptions, MAX_BLOCK_SIZE, MIN_BLOCK_SIZE, PROTOCOL_VERSION,
};
pub use block::{BLOCK_HEADER_LEN, BlockAck, BlockHeader, BlockStatus, block_digest};
pub use commit::{CommitAck, CommitFile, CommitStatus};
pub use delete::{DeleteList, DeleteRequest};
pub use error::ProtoError;
pub use failure::{EntryFailure, FailureReason};
pub use finish::{Finish, FinishReport};
pub use manifest::BatchWriter;
pub use manifest::{EntryKind, Extent, ManifestBatch, ManifestEntry};
pub use pull::{
    JobCounters, LISTED_BYTES, PULL_EXCHANGE, PULL_REPORT_TAG, PULL_TAG, PullReport, PullRequest,
};

use crate::reader::Reader;

/// The kind of a replication message: its first byte on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageKind {
    /// [`Begin`]: opens a job.
    Begin = 0x01,
    /// [`ManifestBatch`]: entries of the source tree.
    Manifest = 0x02,
    /// [`BlockHeader`] followed by a block's data.
    Block = 0x03,
    /// [`CommitFile`]: all of a file's blocks are acknowledged; check and rename it.
    Commit = 0x04,
    /// [`DeleteRequest`]: remove what the source no longer has.
    Delete = 0x05,
    /// [`Finish`]: the job is over.
    Finish = 0x06,
    /// [`BeginAck`].
    BeginAck = 0x81,
    /// [`ManifestAnswer`].
    ManifestAnswer = 0x82,
    /// [`BlockAck`].
    BlockAck = 0x83,
    /// [`CommitAck`].
    CommitAck = 0x84,
    /// [`DeleteList`].
    DeleteList = 0x85,
    /// [`FinishReport`].
    FinishReport = 0x86,
}

/// Exchange ids of the replication service start here; the low byte is the request tag.
pub const EXCHANGE_BASE: u32 = 0x5245_5000;

impl MessageKind {
    /// The kind whose tag is `tag`.
    pub fn from_tag(tag: u8) -> Result<Self, ProtoError> {
        Ok(match tag {
            0x01 => Self::Begin,
            0x02 => Self::Manifest,
            0x03 => Self::Block,
            0x04 => Self::Commit,
            0x05 => Self::Delete,
            0x06 => Self::Finish,
            0x81 => Self::BeginAck,
            0x82 => Self::ManifestAnswer,
            0x83 => Self::BlockAck,
            0x84 => Self::CommitAck,
            0x85 => Self::DeleteList,
            0x86 => Self::FinishReport,
            other => return Err(ProtoError::UnknownTag(other)),
        })
    }

    /// The kind of the message in `body`, from its first byte.
    pub fn of(body: &[u8]) -> Result<Self, ProtoError> {
        Self::from_tag(*body.first().ok_or(ProtoError::Truncated)?)
    }

    /// Its tag byte.
    pub fn tag(self) -> u8 {
        self as u8
    }

    /// True for the messages the source sends.
    pub fn is_request(self) -> bool {
        self.tag() < 0x80
    }

    /// The DSP exchange id a request of this kind travels as (responses travel as the
    /// answer to their request and share its id).
    pub fn exchange_id(self) -> u32 {
        EXCHANGE_BASE | u32::from(self.tag() & 0x7F)
    }
}

/// Reads the tag byte and checks it is `expected`.
pub(crate) fn expect_tag(reader: &mut Reader<'_>, expected: MessageKind) -> Result<(), ProtoError> {
    let tag = reader.u8().ok_or(ProtoError::Truncated)?;
    if tag == expected.tag() {
        Ok(())
    } else {
        Err(ProtoError::WrongKind {
            expected: expected.tag(),
            found: tag,
        })
    }
}

/// Fails with `TrailingBytes` if anything is left.
pub(crate) fn expect_end(reader: &Reader<'_>) -> Result<(), ProtoError> {
    match reader.left() {
        0 => Ok(()),
        n => Err(ProtoError::TrailingBytes(n)),
    }
}

/// Reads a `u128` (two big-endian `u64`, high first).
pub(crate) fn read_u128(reader: &mut Reader<'_>) -> Result<u128, ProtoError> {
    reader
        .array::<16>()
        .map(u128::from_be_bytes)
        .ok_or(ProtoError::Truncated)
}

/// Extension turning the reader's `None` into [`ProtoError::Truncated`].
pub(crate) trait Need<T> {
    fn need(self) -> Result<T, ProtoError>;
}

impl<T> Need<T> for Option<T> {
    fn need(self) -> Result<T, ProtoError> {
        self.ok_or(ProtoError::Truncated)
    }
}

/// Writes a `u16`-length-prefixed byte string; fails if it is longer than 65,535 bytes.
pub(crate) fn put_u16_bytes(out: &mut impl bytes::BufMut, bytes: &[u8]) -> Result<(), ProtoError> {
    let len = u16::try_from(bytes.len()).map_err(|_| ProtoError::TooLong)?;
    out.put_u16(len);
    out.put_slice(bytes);
    Ok(())
}

#[cfg(test)]
mod tests;
