//! The DMP error types: one for decoding (with the byte offset), one for encoding.

/// Why DMP bytes could not be decoded, and where.
///
/// `offset` counts from the start of the buffer handed to the decoder; the
/// [`StreamDecoder`](super::StreamDecoder) reports it from the start of the stream instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("at byte {offset}: {kind}")]
pub struct DmpError {
    /// Byte offset of the first byte that could not be accepted.
    pub offset: usize,
    /// What was wrong there.
    pub kind: DmpErrorKind,
}

impl DmpError {
    pub(crate) fn at(offset: usize, kind: DmpErrorKind) -> Self {
        Self { offset, kind }
    }
}

/// What was wrong with DMP input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DmpErrorKind {
    /// The connection did not start with the `AMQP` protocol header.
    #[error("not an AMQP protocol header (expected \"AMQP\")")]
    NotAmqp,
    /// A server response short string is not `NNN INDICATOR[ explanation]`.
    #[error("response is not `NNN INDICATOR[ explanation]`")]
    MalformedResponse,
    /// A response code that the DMP specification does not define.
    #[error("unknown response code {0}")]
    UnknownResponseCode(u16),
    /// The indicator after the code is not the one the code requires (`200 OK`, ...).
    #[error("indicator does not match response code {0}")]
    WrongIndicator(u16),
    /// A message's size field exceeds the decoder's configured maximum.
    #[error("message size {size} exceeds the maximum {max}")]
    MessageTooLarge {
        /// The size field as received.
        size: u32,
        /// The configured maximum.
        max: u32,
    },
    /// A field of the message runs past the end given by the message's size field.
    #[error("field runs past the end of the message (size field too small)")]
    FieldPastEnd,
    /// Bytes remain inside the message after the body.
    #[error("{0} bytes inside the message after the body")]
    TrailingBytes(usize),
    /// The property flags' continuation bit (bit 0) is set; hawser supports one flags word.
    #[error("property flags continuation bit set (only one flags word is supported)")]
    PropertyContinuation,
    /// Reserved property flag bit 1 is set.
    #[error("reserved property flag bit 1 set")]
    ReservedPropertyFlag,
    /// One of the six reserved bits of the options octet is set.
    #[error("reserved option bits set in {0:#04x}")]
    ReservedOptionBits(u8),
    /// The server refused the connection (non-200 response) but the stream goes on.
    #[error("data after the server refused the connection")]
    DataAfterRefusal,
}

/// Why an item could not be encoded: a length does not fit its field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DmpEncodeError {
    /// The body is longer than the 24-bit body length allows (16 MiB - 1).
    #[error("body of {0} bytes exceeds the 24-bit body length")]
    BodyTooLong(usize),
    /// The headers field table is longer than its 32-bit length allows, or the whole
    /// message is longer than the 32-bit size field allows.
    #[error("message of {0} bytes exceeds the 32-bit size field")]
    MessageTooLong(usize),
}
