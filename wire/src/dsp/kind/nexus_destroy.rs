use super::read_nexus_id;
use crate::dsp::sink::Sink;
use crate::dsp::{DspError, FrameKind, NexusId};
use crate::reader::Reader;

/// `NexusDestroy` (0x16), client → server: destroy the nexus; outstanding requests fail, the reply cache is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NexusDestroy {
    /// The nexus.
    pub nexus: NexusId,
}

impl NexusDestroy {
    /// The kind code.
    pub const KIND: FrameKind = FrameKind::NexusDestroy;

    pub(crate) fn put_fixed<S: Sink>(&self, s: &mut S) {
        s.put(&self.nexus.0);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DspError> {
        Ok(NexusDestroy {
            nexus: read_nexus_id(r, Self::KIND)?,
        })
    }
}
