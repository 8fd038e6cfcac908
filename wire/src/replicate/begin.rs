//! `Begin` opens a replication job; `BeginAck` accepts it.

use crate::reader::Reader;
use bytes::BufMut;

use super::{MessageKind, Need, ProtoError, expect_end, expect_tag, put_u16_bytes, read_u128};

/// The version of the replication protocol this code speaks.
pub const PROTOCOL_VERSION: u16 = 2;

/// Smallest and largest block sizes a job may ask for.
pub const MIN_BLOCK_SIZE: u32 = 4096;
/// Largest block size (a block travels as one request body).
pub const MAX_BLOCK_SIZE: u32 = 64 << 20;

/// Whether blocks are compressed on the wire (applied by the session layer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CompressPolicy {
    /// Never.
    Off,
    /// Always lz4.
    Lz4,
    /// lz4, skipped for blocks that do not shrink.
    #[default]
    Auto,
}

impl CompressPolicy {
    fn to_wire(self) -> u8 {
        match self {
            Self::Off => 0,
            Self::Lz4 => 1,
            Self::Auto => 2,
        }
    }

    fn from_wire(value: u8) -> Result<Self, ProtoError> {
        Ok(match value {
            0 => Self::Off,
            1 => Self::Lz4,
            2 => Self::Auto,
            other => {
                return Err(ProtoError::BadValue {
                    field: "compress",
                    value: u32::from(other),
                });
            }
        })
    }
}

/// The options of a job, as both sides must know them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobOptions {
    /// Re-read each file after writing it and compare its xxh3-128 again.
    pub verify: bool,
    /// fsync data, journal records and directories.
    pub fsync: bool,
    /// Remove target entries the source does not have.
    pub delete: bool,
    /// Decide "up to date" by content (xxh3-128) instead of size and mtime.
    pub checksum: bool,
    /// Continue files from their transfer journal.
    pub resume: bool,
    /// Report what would change; write nothing.
    pub dry_run: bool,
    /// The destination may name a file, as with cp, scp and rsync: when the job is one
    /// regular file and the destination is not an existing directory, the file is
    /// written as the destination itself instead of into a directory of that name. The
    /// source sets it only for a job of one regular file.
    pub dest_may_be_file: bool,
    /// Block compression on the wire.
    pub compress: CompressPolicy,
    /// Size of the blocks large files are split into.
    pub block_size: u32,
}

impl Default for JobOptions {
    fn default() -> Self {
        JobOptions {
            verify: false,
            fsync: false,
            delete: false,
            checksum: false,
            resume: false,
            dry_run: false,
            dest_may_be_file: false,
            compress: CompressPolicy::Auto,
            block_size: 8 << 20,
        }
    }
}

const VERIFY: u16 = 1 << 0;
const FSYNC: u16 = 1 << 1;
const DELETE: u16 = 1 << 2;
const CHECKSUM: u16 = 1 << 3;
const RESUME: u16 = 1 << 4;
const DRY_RUN: u16 = 1 << 5;
const DEST_MAY_BE_FILE: u16 = 1 << 6;
const KNOWN_FLAGS: u16 = 0x7F;

impl JobOptions {
    fn flags(&self) -> u16 {
        [
            (self.verify, VERIFY),
            (self.fsync, FSYNC),
            (self.delete, DELETE),
            (self.checksum, CHECKSUM),
            (self.resume, RESUME),
            (self.dry_run, DRY_RUN),
            (self.dest_may_be_file, DEST_MAY_BE_FILE),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .fold(0, |acc, (_, bit)| acc | bit)
    }
}

/// Opens a job: `tag, version u16, flags u16, compress u8, block_size u32, job_id u128,
/// dest (u16 length + bytes)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Begin<'a> {
    /// Protocol version of the source.
    pub version: u16,
    /// Identifies the job (for logs; resume matches files by path and identity).
    pub job_id: u128,
    /// The job's options.
    pub options: JobOptions,
    /// Destination directory, relative to the target's root.
    pub dest: &'a [u8],
}

impl<'a> Begin<'a> {
    /// Appends the message to `out`.
    pub fn encode(&self, out: &mut impl BufMut) -> Result<(), ProtoError> {
        out.put_u8(MessageKind::Begin.tag());
        out.put_u16(self.version);
        out.put_u16(self.options.flags());
        out.put_u8(self.options.compress.to_wire());
        out.put_u32(self.options.block_size);
        out.put_u128(self.job_id);
        put_u16_bytes(out, self.dest)
    }

    /// Decodes a whole message.
    pub fn decode(body: &'a [u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        expect_tag(&mut r, MessageKind::Begin)?;
        let version = r.u16().need()?;
        let flags = r.u16().need()?;
        if flags & !KNOWN_FLAGS != 0 {
            return Err(ProtoError::ReservedBits {
                field: "flags",
                bits: u32::from(flags & !KNOWN_FLAGS),
            });
        }
        let compress = CompressPolicy::from_wire(r.u8().need()?)?;
        let block_size = r.u32().need()?;
        if !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&block_size) {
            return Err(ProtoError::BadValue {
                field: "block_size",
                value: block_size,
            });
        }
        let job_id = read_u128(&mut r)?;
        let dest = r.u16_bytes().need()?;
        expect_end(&r)?;
        let on = |bit: u16| flags & bit != 0;
        Ok(Begin {
            version,
            job_id,
            options: JobOptions {
                verify: on(VERIFY),
                fsync: on(FSYNC),
                delete: on(DELETE),
                checksum: on(CHECKSUM),
                resume: on(RESUME),
                dry_run: on(DRY_RUN),
                dest_may_be_file: on(DEST_MAY_BE_FILE),
                compress,
                block_size,
            },
            dest,
        })
    }
}

/// Accepts a job: `tag, version u16, flags u8` (bit 0: the destination existed; bit 1:
/// the destination names the file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BeginAck {
    /// Protocol version of the target.
    pub version: u16,
    /// The destination directory existed before the job. When it did not, the target
    /// has nothing to compare with, so the source sends small files inline with their
    /// manifest entries; when it did, it lets the target say first what it lacks.
    pub dest_existed: bool,
    /// The destination names the job's one file (asked for with
    /// [`JobOptions::dest_may_be_file`]; it was not an existing directory): the target's
    /// destination directory is its parent, and the source sends its file under the
    /// destination's last component.
    pub dest_is_file: bool,
}

const DEST_EXISTED: u8 = 1 << 0;
const DEST_IS_FILE: u8 = 1 << 1;
const KNOWN_ACK_FLAGS: u8 = DEST_EXISTED | DEST_IS_FILE;

impl BeginAck {
    /// Appends the message to `out`.
    pub fn encode(&self, out: &mut impl BufMut) {
        out.put_u8(MessageKind::BeginAck.tag());
        out.put_u16(self.version);
        let mut flags = 0;
        if self.dest_existed {
            flags |= DEST_EXISTED;
        }
        if self.dest_is_file {
            flags |= DEST_IS_FILE;
        }
        out.put_u8(flags);
    }

    /// Decodes a whole message.
    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        expect_tag(&mut r, MessageKind::BeginAck)?;
        let version = r.u16().need()?;
        let flags = r.u8().need()?;
        if flags & !KNOWN_ACK_FLAGS != 0 {
            return Err(ProtoError::ReservedBits {
                field: "begin ack flags",
                bits: u32::from(flags & !KNOWN_ACK_FLAGS),
            });
        }
        expect_end(&r)?;
        Ok(BeginAck {
            version,
            dest_existed: flags & DEST_EXISTED != 0,
            dest_is_file: flags & DEST_IS_FILE != 0,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Any valid job options.
    pub(crate) fn options() -> impl Strategy<Value = JobOptions> {
        (any::<[bool; 7]>(), 0u8..3, MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).prop_map(
            |(b, c, block_size)| JobOptions {
                verify: b[0],
                fsync: b[1],
                delete: b[2],
                checksum: b[3],
                resume: b[4],
                dry_run: b[5],
                dest_may_be_file: b[6],
                compress: CompressPolicy::from_wire(c).unwrap(),
                block_size,
            },
        )
    }

    proptest! {
        #[test]
        fn begin_round_trips(version: u16, job_id: u128, options in options(),
                             dest in proptest::collection::vec(any::<u8>(), 0..300)) {
            let begin = Begin { version, job_id, options, dest: &dest };
            let mut buf = Vec::new();
            begin.encode(&mut buf).unwrap();
            prop_assert_eq!(Begin::decode(&buf), Ok(begin));
            for cut in 0..buf.len() {
                prop_assert_eq!(Begin::decode(&buf[..cut]), Err(ProtoError::Truncated));
            }
        }

        #[test]
        fn begin_ack_round_trips(version: u16, dest_existed: bool, dest_is_file: bool) {
            let ack = BeginAck { version, dest_existed, dest_is_file };
            let mut buf = Vec::new();
            ack.encode(&mut buf);
            prop_assert_eq!(BeginAck::decode(&buf), Ok(ack));
        }
    }

    #[test]
    fn rejects_reserved_flags_and_tiny_blocks() {
        let mut buf = Vec::new();
        Begin {
            version: 1,
            job_id: 0,
            options: JobOptions::default(),
            dest: b"d",
        }
        .encode(&mut buf)
        .unwrap();
        let mut bad = buf.clone();
        bad[4] |= 0x80;
        assert!(matches!(
            Begin::decode(&bad),
            Err(ProtoError::ReservedBits { .. })
        ));
        let mut tiny = buf.clone();
        tiny[6..10].copy_from_slice(&512u32.to_be_bytes());
        assert!(matches!(
            Begin::decode(&tiny),
            Err(ProtoError::BadValue {
                field: "block_size",
                ..
            })
        ));
        buf.push(0);
        assert_eq!(Begin::decode(&buf), Err(ProtoError::TrailingBytes(1)));
    }
}
