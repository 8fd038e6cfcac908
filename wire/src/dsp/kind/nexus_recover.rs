use super::{read_nexus_id, text};
use crate::dsp::share::Share;
use crate::dsp::sink::Sink;
use crate::dsp::{DspError, FrameKind, NexusId};
use crate::reader::Reader;

/// `NexusRecover` (0x14), client → server: reinstate a nexus that lost all of its
/// connections (within its grace period), over this connection. The identity lets the
/// server check that the nexus belongs to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NexusRecover<T> {
    /// The nexus to reinstate.
    pub nexus: NexusId,
    /// The client identity given at creation (UTF-8; the rest of the payload).
    pub client_identity: T,
}

impl<T: AsRef<str>> NexusRecover<T> {
    /// The kind code.
    pub const KIND: FrameKind = FrameKind::NexusRecover;

    pub(crate) fn put_fixed<S: Sink>(&self, s: &mut S) {
        s.put(&self.nexus.0);
        s.put(self.client_identity.as_ref().as_bytes());
    }
}

impl<'a> NexusRecover<&'a str> {
    pub(crate) fn decode(r: &mut Reader<'a>) -> Result<Self, DspError> {
        let k = Self::KIND;
        Ok(NexusRecover {
            nexus: read_nexus_id(r, k)?,
            client_identity: text(r.take_rest(), k)?,
        })
    }

    pub(crate) fn to_shared(self, s: Share<'_>) -> NexusRecover<String> {
        NexusRecover {
            nexus: self.nexus,
            client_identity: s.text(self.client_identity),
        }
    }
}
