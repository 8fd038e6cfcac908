//! Remote exceptions: a handler's error as it travels back to the initiator.
//!
//! The wire form is the DDF `exception` structure (type, message, nested cause), encoded
//! by `hawser_wire::ddf` once that codec lands; until then [`RemoteException::encode`]
//! uses a length-prefixed chain with the same three fields so the session layer and its
//! simulator can run end to end.

use bytes::{BufMut, Bytes, BytesMut};
use hawser_wire::reader::Reader;

/// Exception type names the session layer itself uses; any other type is an application
/// exception.
pub(crate) mod session_types {
    pub(crate) const CANCELLED: &str = "hawser.session.Cancelled";
    pub(crate) const MISORDERED: &str = "hawser.session.Misordered";
    pub(crate) const BAD_SLOT: &str = "hawser.session.BadSlot";
    pub(crate) const TOO_LARGE: &str = "hawser.session.ResponseTooLarge";
    pub(crate) const NOT_CACHED: &str = "hawser.session.ReplyNotCached";
}

/// An exception raised by a remote handler: its type name, message and optional cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteException {
    /// The exception's type name (for example `java.io.IOException`, `replica.NoSpace`).
    pub type_name: String,
    /// Human-readable message.
    pub message: String,
    /// The exception that caused this one, if any.
    pub cause: Option<Box<RemoteException>>,
}

/// Bounds the cause chain so a hostile peer cannot make decoding recurse deeply.
const MAX_CAUSE_DEPTH: usize = 32;
/// Messages longer than this are truncated when encoded.
const MAX_MESSAGE_LEN: usize = 1 << 20;

impl RemoteException {
    /// An exception without a cause.
    pub fn new(type_name: impl Into<String>, message: impl Into<String>) -> Self {
        RemoteException {
            type_name: type_name.into(),
            message: message.into(),
            cause: None,
        }
    }

    /// This exception with `cause` attached.
    pub fn with_cause(mut self, cause: RemoteException) -> Self {
        self.cause = Some(Box::new(cause));
        self
    }

    /// The chain from this exception down to its root cause.
    pub fn chain(&self) -> impl Iterator<Item = &RemoteException> {
        std::iter::successors(Some(self), |e| e.cause.as_deref())
    }

    /// Encodes the exception and its cause chain.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        for e in self.chain().take(MAX_CAUSE_DEPTH) {
            put_field(&mut out, &e.type_name, usize::from(u16::MAX));
            put_field(&mut out, &e.message, MAX_MESSAGE_LEN);
        }
        out.freeze()
    }

    /// Decodes an exception chain; `None` if the bytes are not one.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader::new(bytes);
        let mut links = Vec::new();
        while !r.is_empty() {
            if links.len() == MAX_CAUSE_DEPTH {
                return None;
            }
            let type_name = std::str::from_utf8(r.u16_bytes()?).ok()?.to_owned();
            let message = std::str::from_utf8(r.u32_bytes()?).ok()?.to_owned();
            links.push(RemoteException::new(type_name, message));
        }
        let mut iter = links.into_iter().rev();
        let mut root = iter.next()?;
        for mut outer in iter {
            outer.cause = Some(Box::new(root));
            root = outer;
        }
        Some(root)
    }
}

/// Type names travel with a `u16` length, messages with a `u32` length; a type name
/// longer than 64 KiB is truncated (on a character boundary) so encoding cannot fail.
fn put_field(out: &mut BytesMut, s: &str, max: usize) {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let bytes = &s.as_bytes()[..end];
    if max == usize::from(u16::MAX) {
        out.put_u16(u16::try_from(bytes.len()).unwrap_or(u16::MAX));
    } else {
        out.put_u32(u32::try_from(bytes.len()).unwrap_or(u32::MAX));
    }
    out.put_slice(bytes);
}

impl std::fmt::Display for RemoteException {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.type_name, self.message)?;
        if let Some(cause) = &self.cause {
            write!(f, " (caused by {cause})")?;
        }
        Ok(())
    }
}

impl std::error::Error for RemoteException {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cause_chain_round_trips() {
        let e = RemoteException::new("replica.NoSpace", "disk full")
            .with_cause(RemoteException::new("java.io.IOException", "ENOSPC"));
        let back = RemoteException::decode(&e.encode()).unwrap();
        assert_eq!(back, e);
        assert_eq!(back.chain().count(), 2);
        assert_eq!(RemoteException::decode(&[0, 9, b'x']), None);
        assert_eq!(RemoteException::decode(&[]), None);
    }
}
