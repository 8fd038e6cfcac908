//! Why a replication message could not be decoded (or encoded).

/// A malformed replication message. Small and `Copy`, so it can travel inside other
/// errors and be compared in tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    /// A field runs past the end of the message.
    #[error("message truncated")]
    Truncated,
    /// Bytes follow the last field.
    #[error("{0} bytes after the end of the message")]
    TrailingBytes(usize),
    /// The first byte is not a replication message tag.
    #[error("unknown message tag {0:#04x}")]
    UnknownTag(u8),
    /// The message is of another kind than the exchange expects.
    #[error("expected message {expected:#04x}, found {found:#04x}")]
    WrongKind {
        /// The expected tag.
        expected: u8,
        /// The tag found.
        found: u8,
    },
    /// An enumerated field holds a value the protocol does not define.
    #[error("field {field} has undefined value {value}")]
    BadValue {
        /// Which field.
        field: &'static str,
        /// Its value.
        value: u32,
    },
    /// Flag bits that the protocol reserves are set.
    #[error("reserved bits set in {field}: {bits:#x}")]
    ReservedBits {
        /// Which field.
        field: &'static str,
        /// The offending bits.
        bits: u32,
    },
    /// A count larger than the rest of the message could hold.
    #[error("count {0} exceeds what the message can hold")]
    CountTooLarge(u32),
    /// Sparse extents that are empty, overlap, are out of order, or end beyond the size.
    #[error("data extents not ascending, disjoint and within the file size")]
    BadExtents,
    /// Block indexes that are not strictly ascending.
    #[error("block indexes not strictly ascending")]
    BadBlockList,
    /// An entry whose fields contradict each other (inline data of another length than
    /// the size, a directory with a size, a symlink without a target, ...).
    #[error("inconsistent entry: {0}")]
    InconsistentEntry(&'static str),
    /// Encoding: a string or list too long for its length field.
    #[error("field too long for its length prefix")]
    TooLong,
}
