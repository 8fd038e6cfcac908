//! `Done`: the answer that carries nothing but success (to `Delete`, `Bind`, `Unbind`).

use bytes::BufMut;

use super::{WiringError, WiringKind, expect_end, expect_tag};
use crate::reader::Reader;

/// `tag 0x80` and nothing else: the request succeeded. The answer to
/// [`Delete`](super::Delete), [`Bind`](super::Bind) and [`Unbind`](super::Unbind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Done;

impl Done {
    /// Appends the message to `out`.
    pub fn encode(&self, out: &mut impl BufMut) {
        out.put_u8(WiringKind::Done.tag());
    }

    /// Decodes a whole message.
    pub fn decode(body: &[u8]) -> Result<Self, WiringError> {
        let mut r = Reader::new(body);
        expect_tag(&mut r, WiringKind::Done)?;
        expect_end(&r)?;
        Ok(Self)
    }
}
