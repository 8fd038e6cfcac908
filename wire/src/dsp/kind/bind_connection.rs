use super::read_nexus_id;
use crate::dsp::sink::Sink;
use crate::dsp::{DspError, FrameKind, NexusId};
use crate::reader::Reader;

/// `BindConnection` (0x12), client → server: join this (authenticated) connection to an existing nexus, adding a trunk connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BindConnection {
    /// The nexus.
    pub nexus: NexusId,
}

impl BindConnection {
    /// The kind code.
    pub const KIND: FrameKind = FrameKind::BindConnection;

    pub(crate) fn put_fixed<S: Sink>(&self, s: &mut S) {
        s.put(&self.nexus.0);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DspError> {
        Ok(BindConnection {
            nexus: read_nexus_id(r, Self::KIND)?,
        })
    }
}
