//! The DTP error types.

/// Why DTP bytes could not be decoded, and where.
///
/// `offset` counts from the start of the buffer handed to the decoder; the
/// [`CaptureDecoder`](super::CaptureDecoder) reports it from the start of the capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("at byte {offset}: {kind}")]
pub struct DtpError {
    /// Byte offset of the first byte that could not be accepted.
    pub offset: usize,
    /// What was wrong there.
    pub kind: DtpErrorKind,
}

impl DtpError {
    pub(crate) fn at(offset: usize, kind: DtpErrorKind) -> Self {
        Self { offset, kind }
    }
}

/// What was wrong with DTP input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DtpErrorKind {
    /// Empty control message: no type tag.
    #[error("empty control message")]
    Empty,
    /// The control message's type tag is not one DTP defines.
    #[error("unknown control message type {0:#04x}")]
    UnknownTag(u8),
    /// A field runs past the end of the message.
    #[error("field runs past the end of the message")]
    Truncated,
    /// Bytes follow the last field of a control message.
    #[error("{0} bytes after the end of the message")]
    TrailingBytes(usize),
    /// An interval count larger than the remaining bytes can hold.
    #[error("interval count {0} exceeds what the remaining input can hold")]
    CountExceedsInput(u32),
    /// An interval of length zero.
    #[error("interval of length zero")]
    EmptyInterval,
    /// An interval whose end does not fit 64 bits.
    #[error("interval end overflows 64 bits")]
    IntervalOverflow,
    /// An interval that does not start after the end of the previous one (intervals
    /// must ascend, and neither overlap nor touch).
    #[error("interval overlaps, touches or precedes the previous one")]
    IntervalsNotCanonical,
    /// A requested MTU below the minimum.
    #[error("MTU {0} below the minimum of {min}", min = super::MIN_MTU)]
    MtuTooSmall(u16),
    /// A datagram form number DTP does not define.
    #[error("unknown datagram form {0}")]
    UnknownForm(u8),
    /// The basic form's 32-bit offsets cannot address a payload this large.
    #[error("basic datagram form for a payload over 4 GiB")]
    BasicFormTooLarge,
    /// The response expects more bytes than the payload holds.
    #[error("bytes expected exceed the total size")]
    ExpectedExceedsTotal,
    /// A datagram size that leaves no room for data after the header.
    #[error("datagram size {0} leaves no room for data")]
    DatagramSizeTooSmall(u16),
    /// Reserved flag bits are set.
    #[error("reserved flag bits set in {0:#04x}")]
    ReservedFlags(u8),
    /// A datagram shorter than its form's header.
    #[error("datagram shorter than its header")]
    DatagramTooShort,
    /// A datagram's data ends beyond what its form can address.
    #[error("datagram data ends beyond the form's offset range")]
    DatagramBeyondRange,
    /// A capture record kind that the capture format does not define.
    #[error("unknown capture record kind {0:#04x}")]
    UnknownRecordKind(u8),
    /// A capture record longer than allowed for its kind.
    #[error("capture record of {len} bytes exceeds the maximum {max}")]
    RecordTooLarge {
        /// The record's length field.
        len: u32,
        /// The maximum for its kind.
        max: u32,
    },
}

/// Why a DTP item could not be encoded: a length does not fit its field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DtpEncodeError {
    /// The payload id is longer than its 16-bit length allows.
    #[error("payload id of {0} bytes exceeds 65535")]
    PayloadIdTooLong(usize),
    /// More intervals than a 32-bit count allows.
    #[error("{0} intervals exceed the 32-bit count")]
    TooManyIntervals(usize),
    /// A capture record longer than its 32-bit length allows.
    #[error("capture record of {0} bytes exceeds the 32-bit length")]
    RecordTooLong(usize),
}

/// Reads one field, or reports [`DtpErrorKind::Truncated`] at the field's first byte
/// (the reader does not move on failure).
pub(crate) fn field<'a, T>(
    reader: &mut crate::reader::Reader<'a>,
    read: impl FnOnce(&mut crate::reader::Reader<'a>) -> Option<T>,
) -> Result<T, (usize, DtpErrorKind)> {
    let mut probe = *reader;
    let value = read(&mut probe).ok_or((reader.used(), DtpErrorKind::Truncated))?;
    *reader = probe;
    Ok(value)
}
