use super::need;
use crate::dsp::sink::Sink;
use crate::dsp::{Capabilities, DspError, FrameKind};
use crate::reader::Reader;

/// `Hello` (0x01): the first frame each side sends on a new connection.
///
/// The client offers the range of protocol versions it speaks and its capabilities; the
/// server answers with its own Hello in which `min_version == max_version` is the chosen
/// version and `capabilities` is the intersection of both sides' bits. No common version:
/// the server sends GoAway `VERSION_MISMATCH` instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Hello {
    /// Lowest protocol version the sender speaks.
    pub min_version: u8,
    /// Highest protocol version the sender speaks.
    pub max_version: u8,
    /// What the sender can do (client), or what was agreed (server).
    pub capabilities: Capabilities,
    /// Per-connection random bytes of the sender, available to authentication mechanisms
    /// (channel binding, challenge-response) so a proof cannot be replayed on another
    /// connection.
    pub nonce: [u8; 16],
}

impl Hello {
    /// The kind code.
    pub const KIND: FrameKind = FrameKind::Hello;

    pub(crate) fn put_fixed<S: Sink>(&self, s: &mut S) {
        s.put_u8(self.min_version);
        s.put_u8(self.max_version);
        s.put_u32(self.capabilities.0);
        s.put(&self.nonce);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DspError> {
        let k = Self::KIND;
        let min_version = need(r.u8(), k)?;
        let max_version = need(r.u8(), k)?;
        let capabilities = Capabilities(need(r.u32(), k)?);
        let nonce = need(r.array::<16>(), k)?;
        if min_version > max_version {
            return Err(DspError::InvalidField(k));
        }
        Ok(Hello {
            min_version,
            max_version,
            capabilities,
            nonce,
        })
    }
}
