//! `Block`: a run of one file's data at its offset. The data is the rest of the message
//! body after a fixed 21-byte header, so the sender reads file data straight into the
//! body buffer and the receiver writes it from the received body: never copied.

use crate::reader::Reader;
use bytes::BufMut;

use super::{MessageKind, Need, ProtoError, expect_end, expect_tag};

/// Length of the header before a block's data: `tag, file_id u32, offset u64, xxh3-64 u64`.
pub const BLOCK_HEADER_LEN: usize = 21;

/// The digest a block carries: xxh3-64 of its data.
pub fn block_digest(data: &[u8]) -> u64 {
    crate::xxh3::hash64(data)
}

/// A block's header; `data` is everything after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockHeader {
    /// The file, by its manifest id.
    pub file_id: u32,
    /// Where the data goes in the file.
    pub offset: u64,
    /// xxh3-64 of the data.
    pub digest: u64,
}

impl BlockHeader {
    /// Appends the header to `out`; the data must follow.
    pub fn encode(&self, out: &mut impl BufMut) {
        out.put_u8(MessageKind::Block.tag());
        out.put_u32(self.file_id);
        out.put_u64(self.offset);
        out.put_u64(self.digest);
    }

    /// Writes the header into the first [`BLOCK_HEADER_LEN`] bytes of a body whose data
    /// is already in place behind it.
    pub fn write_into(&self, head: &mut [u8; BLOCK_HEADER_LEN]) {
        let mut out = &mut head[..];
        self.encode(&mut out);
    }

    /// Decodes a whole message: the header and the borrowed data.
    pub fn decode(body: &[u8]) -> Result<(Self, &[u8]), ProtoError> {
        let mut r = Reader::new(body);
        expect_tag(&mut r, MessageKind::Block)?;
        let header = BlockHeader {
            file_id: r.u32().need()?,
            offset: r.u64().need()?,
            digest: r.u64().need()?,
        };
        let data = r.take_rest();
        if header.offset.checked_add(data.len() as u64).is_none() {
            return Err(ProtoError::BadValue {
                field: "offset",
                value: u32::MAX,
            });
        }
        Ok((header, data))
    }
}

/// How the target took a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockStatus {
    /// Written (and journaled).
    Written,
    /// The data did not match its digest: send it again.
    DigestMismatch,
}

/// The answer to a block: `tag, file_id u32, offset u64, status u8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockAck {
    /// The block's file.
    pub file_id: u32,
    /// The block's offset.
    pub offset: u64,
    /// The outcome.
    pub status: BlockStatus,
}

impl BlockAck {
    /// Appends the message to `out`.
    pub fn encode(&self, out: &mut impl BufMut) {
        out.put_u8(MessageKind::BlockAck.tag());
        out.put_u32(self.file_id);
        out.put_u64(self.offset);
        out.put_u8(match self.status {
            BlockStatus::Written => 0,
            BlockStatus::DigestMismatch => 1,
        });
    }

    /// Decodes a whole message.
    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        expect_tag(&mut r, MessageKind::BlockAck)?;
        let file_id = r.u32().need()?;
        let offset = r.u64().need()?;
        let status = match r.u8().need()? {
            0 => BlockStatus::Written,
            1 => BlockStatus::DigestMismatch,
            other => {
                return Err(ProtoError::BadValue {
                    field: "block status",
                    value: u32::from(other),
                });
            }
        };
        expect_end(&r)?;
        Ok(BlockAck {
            file_id,
            offset,
            status,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn block_round_trips(file_id: u32, offset in 0u64..u64::MAX / 2,
                             data in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let header = BlockHeader { file_id, offset, digest: block_digest(&data) };
            let mut buf = Vec::new();
            header.encode(&mut buf);
            prop_assert_eq!(buf.len(), BLOCK_HEADER_LEN);
            buf.extend_from_slice(&data);
            prop_assert_eq!(BlockHeader::decode(&buf), Ok((header, &data[..])));

            let mut in_place = [0u8; BLOCK_HEADER_LEN];
            header.write_into(&mut in_place);
            prop_assert_eq!(&in_place[..], &buf[..BLOCK_HEADER_LEN]);
            prop_assert_eq!(BlockHeader::decode(&buf[..BLOCK_HEADER_LEN - 1]), Err(ProtoError::Truncated));
        }

        #[test]
        fn ack_round_trips(file_id: u32, offset: u64, mismatch: bool) {
            let status = if mismatch { BlockStatus::DigestMismatch } else { BlockStatus::Written };
            let ack = BlockAck { file_id, offset, status };
            let mut buf = Vec::new();
            ack.encode(&mut buf);
            prop_assert_eq!(BlockAck::decode(&buf), Ok(ack));
        }
    }
}
