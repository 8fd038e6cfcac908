//! Length-prefixed framing of whole DDF messages: `[u32 length][text]`.

use bytes::BufMut;

use super::decode::decode;
use super::error::{DdfError, DdfErrorKind};
use super::node::Node;
use crate::reader::Reader;

/// Default largest frame a decoder accepts (text bytes, prefix excluded).
pub const DEFAULT_MAX_FRAME_LEN: u32 = 16 * 1024 * 1024;

/// Writes `node` as one frame: its text length as a big-endian `u32`, then the text.
///
/// # Errors
/// Fails, writing nothing, if the text is longer than `u32::MAX` bytes.
pub fn encode_frame(node: &Node, buf: &mut impl BufMut) -> Result<(), FrameTooLong> {
    let text = node.to_text();
    let len = u32::try_from(text.len()).map_err(|_| FrameTooLong(text.len()))?;
    buf.put_u32(len);
    buf.put_slice(&text);
    Ok(())
}

/// The text of a node does not fit a 32-bit length prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("DDF text of {0} bytes does not fit a 32-bit length")]
pub struct FrameTooLong(pub usize);

/// Decodes one frame from the start of `buf`: `Ok(None)` until the whole frame is there;
/// the length is checked against `max_len` as soon as the prefix is. Error offsets count
/// from the start of `buf` (the prefix).
pub fn decode_frame(buf: &[u8], max_len: u32) -> Result<Option<(Node, usize)>, DdfError> {
    let mut reader = Reader::new(buf);
    let Some(len) = reader.u32() else {
        return Ok(None);
    };
    if len > max_len {
        return Err(DdfError {
            offset: 0,
            line: 0,
            kind: DdfErrorKind::FrameTooLarge { len, max: max_len },
        });
    }
    let Some(text) = reader.take(len as usize) else {
        return Ok(None);
    };
    let node = decode(text).map_err(|e| DdfError {
        offset: e.offset + 4,
        ..e
    })?;
    Ok(Some((node, reader.used())))
}

/// Decodes a stream of frames (a capture, or a connection's bytes), tracking the stream
/// offset so errors name the byte in the whole stream.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    position: usize,
    max_len: u32,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameDecoder {
    /// A decoder at stream offset 0 with [`DEFAULT_MAX_FRAME_LEN`].
    pub fn new() -> Self {
        Self {
            position: 0,
            max_len: DEFAULT_MAX_FRAME_LEN,
        }
    }

    /// Sets the largest frame accepted.
    pub fn with_max_len(mut self, max_len: u32) -> Self {
        self.max_len = max_len;
        self
    }

    /// Stream offset of the next frame.
    pub fn position(&self) -> usize {
        self.position
    }

    /// Decodes the next frame from `buf` (the unconsumed bytes of the stream):
    /// `Ok(Some((node, consumed)))`, `Ok(None)` when more bytes are needed.
    pub fn decode(&mut self, buf: &[u8]) -> Result<Option<(Node, usize)>, DdfError> {
        match decode_frame(buf, self.max_len) {
            Ok(Some((node, consumed))) => {
                self.position += consumed;
                Ok(Some((node, consumed)))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(DdfError {
                offset: e.offset + self.position,
                ..e
            }),
        }
    }
}
