//! The DDF decoding error: what was wrong, at which byte and on which line.

/// Why DDF input could not be decoded, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("at byte {offset} (line {line}): {kind}")]
pub struct DdfError {
    /// Byte offset of the offending byte, from the start of the input handed to the
    /// decoder (for a frame: from its length prefix; for a [`FrameDecoder`](super::FrameDecoder):
    /// from the start of the stream).
    pub offset: usize,
    /// 1-based line number within the message text (0 for framing errors outside it).
    pub line: usize,
    /// What was wrong.
    pub kind: DdfErrorKind,
}

/// What was wrong with DDF input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DdfErrorKind {
    /// The input ended inside a line (no terminating 0x0A).
    #[error("line not terminated by 0x0A")]
    UnterminatedLine,
    /// The input ended before the root node (empty message).
    #[error("empty message")]
    Empty,
    /// The line has a name but no type field after it.
    #[error("missing type field")]
    MissingType,
    /// The type field is not a single decimal digit.
    #[error("type field is not a type number")]
    BadType,
    /// The type number is not one DDF defines (6 is unused).
    #[error("unknown type number {0}")]
    UnknownType(u8),
    /// The type requires a value field and there is none.
    #[error("missing value field")]
    MissingValue,
    /// A field follows where the line should end (a raw space in a value, for example).
    #[error("unexpected extra field")]
    UnexpectedField,
    /// The value of an int node is not a signed 32-bit decimal.
    #[error("not a signed 32-bit integer")]
    BadInt,
    /// The value of a long node is not a signed 64-bit decimal.
    #[error("not a signed 64-bit integer")]
    BadLong,
    /// The value of a float node is not a decimal floating-point number.
    #[error("not a floating-point number")]
    BadFloat,
    /// The child count of a struct or list is not an unsigned 32-bit decimal.
    #[error("not an unsigned 32-bit child count")]
    BadCount,
    /// A `%` is not followed by two hexadecimal digits.
    #[error("bad %-escape")]
    BadEscape,
    /// A name or a type-1 string is not valid UTF-8 once unescaped.
    #[error("not valid UTF-8 once unescaped")]
    InvalidUtf8,
    /// A struct or list announced more children than the input holds lines for.
    #[error("child count {0} exceeds what the remaining input can hold")]
    CountExceedsInput(u32),
    /// The input ended before a struct or list had all its children.
    #[error("struct or list announced {announced} children, input ended after {found}")]
    MissingChildren {
        /// Children announced by the child count.
        announced: u32,
        /// Children present.
        found: u32,
    },
    /// Nesting deeper than [`MAX_DEPTH`](super::MAX_DEPTH).
    #[error("nesting deeper than {} levels", super::MAX_DEPTH)]
    TooDeep,
    /// Bytes follow the complete root node.
    #[error("trailing data after the root node")]
    TrailingData,
    /// A frame's length prefix exceeds the decoder's maximum.
    #[error("frame length {len} exceeds the maximum {max}")]
    FrameTooLarge {
        /// The length prefix as received.
        len: u32,
        /// The configured maximum.
        max: u32,
    },
}
