//! Why a wiring message could not be decoded.

/// A malformed wiring message. Small and `Copy`, so it can travel inside other errors and
/// be compared in tests. (Encoding cannot fail: a [`ShortStr`](crate::dmp::ShortStr)
/// always fits its length octet.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WiringError {
    /// The message is of another kind than the decoder's (or not a wiring message).
    #[error("expected wiring message {expected:#04x}, found tag {found:#04x}")]
    WrongTag {
        /// The decoder's tag.
        expected: u8,
        /// The tag found.
        found: u8,
    },
    /// A field runs past the end of the body (an empty body has no tag).
    #[error("field runs past the end of the message")]
    FieldPastEnd,
    /// Bytes follow the last field.
    #[error("{0} bytes after the end of the message")]
    TrailingBytes(usize),
    /// Bits that the protocol reserves are set in a flags octet (`flags`; `created`,
    /// whose only values are 0 and 1).
    #[error("reserved bits set in {field}: {bits:#04x}")]
    ReservedBits {
        /// Which field.
        field: &'static str,
        /// The offending bits.
        bits: u8,
    },
    /// A feed's flow policy octet is not 0 (block), 1 (drop-oldest) or 2 (disconnect).
    #[error("unknown flow policy {0}")]
    UnknownPolicy(u8),
    /// A `Delete`'s entity kind octet is not 0 (sink) or 1 (feed).
    #[error("unknown entity kind {0}")]
    UnknownEntityKind(u8),
}
