use super::{read_nexus_id, text};
use crate::dsp::sink::Sink;
use crate::dsp::{DspError, FrameKind, NexusId};
use crate::reader::Reader;

/// `NexusRecover` (0x14), client → server: reinstate a nexus that lost all of its
/// connections (within its grace period), over this connection. The identity lets the
/// server check that the nexus belongs to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NexusRecover<'a> {
    /// The nexus to reinstate.
    pub nexus: NexusId,
    /// The client identity given at creation (UTF-8; the rest of the payload).
    pub client_identity: &'a str,
}

impl<'a> NexusRecover<'a> {
    /// The kind code.
    pub const KIND: FrameKind = FrameKind::NexusRecover;

    pub(crate) fn put_fixed<S: Sink>(&self, s: &mut S) {
        s.put(&self.nexus.0);
        s.put(self.client_identity.as_bytes());
    }

    pub(crate) fn decode(r: &mut Reader<'a>) -> Result<Self, DspError> {
        let k = Self::KIND;
        Ok(NexusRecover {
            nexus: read_nexus_id(r, k)?,
            client_identity: text(r.take_rest(), k)?,
        })
    }
}
