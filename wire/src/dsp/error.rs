//! Why bytes are not a DSP frame.

use super::header::FrameKind;

/// Everything that can be wrong with DSP input. `Copy`, so a receive loop can keep it,
/// log it and map it to a [`GoAwayCode`](super::GoAwayCode) without allocating.
///
/// "Need more bytes" is not an error: streaming decoders return `Ok(None)` for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DspError {
    /// The first two bytes are not `HW`: the peer does not speak DSP at all.
    #[error("bad magic: not a DSP frame")]
    BadMagic,
    /// The header checksum does not match: a header byte was corrupted.
    #[error("header checksum mismatch")]
    HeaderChecksum,
    /// A frame version this implementation does not speak.
    #[error("unsupported frame version {0}")]
    UnsupportedVersion(u8),
    /// A frame kind this implementation does not know.
    #[error("unknown frame kind {0:#04x}")]
    UnknownKind(u8),
    /// A reserved flag bit is set.
    #[error("reserved flag bits set: {0:#06x}")]
    ReservedFlags(u16),
    /// The reserved header field (bytes 6..8) is not zero.
    #[error("reserved header field is {0:#06x}, must be 0")]
    ReservedField(u16),
    /// A defined flag that this frame kind must not carry (e.g. ORDERED on a Response).
    #[error("flags {flags:#06x} not allowed on a {kind} frame")]
    FlagNotAllowed {
        /// The frame kind.
        kind: FrameKind,
        /// The offending flag bits.
        flags: u16,
    },
    /// Slot, sequence or request id is non-zero on a kind that does not use them.
    #[error("slot, sequence and request id must be 0 on a {0} frame")]
    HeaderFieldNotZero(FrameKind),
    /// The header announces a payload larger than the negotiated maximum; detected from
    /// the header alone, before anything is buffered or allocated for the payload.
    #[error("payload of {len} bytes exceeds the maximum of {max}")]
    TooLong {
        /// Payload length announced by the header.
        len: u32,
        /// The configured maximum.
        max: u32,
    },
    /// The payload digest trailer does not match: payload bytes were corrupted.
    #[error("payload digest mismatch")]
    DigestMismatch,
    /// A compressed body announces an uncompressed size larger than the maximum.
    #[error("decompressed payload of {len} bytes exceeds the maximum of {max}")]
    DecompressedTooLong {
        /// Uncompressed payload length (fixed fields plus announced body length).
        len: u64,
        /// The configured maximum.
        max: u32,
    },
    /// The lz4 block is corrupt or does not yield exactly the announced length.
    #[error("lz4 decompression failed")]
    Decompress,
    /// The payload ends before the fields of its kind do.
    #[error("{0} payload truncated")]
    Truncated(FrameKind),
    /// The payload has bytes after the last field of its kind.
    #[error("{0} payload has trailing bytes")]
    TrailingBytes(FrameKind),
    /// A text field is not UTF-8.
    #[error("{0} payload carries text that is not UTF-8")]
    BadUtf8(FrameKind),
    /// A field holds a value its kind does not allow (e.g. a boolean octet of 2).
    #[error("{0} payload has an invalid field value")]
    InvalidField(FrameKind),
    /// Encoding: the payload would not fit the 32-bit length field.
    #[error("payload does not fit a 32-bit length")]
    PayloadTooLarge,
}
