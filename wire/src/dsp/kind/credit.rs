use super::need;
use crate::dsp::frame::Head;
use crate::dsp::sink::Sink;
use crate::dsp::{Channel, DspError, FrameHeader, FrameKind};
use crate::reader::Reader;

/// `Credit` (0x24), responder → initiator: how many slots of the channel the initiator
/// may use from now on. The value is absolute, not an increment, so a lost or repeated
/// Credit frame cannot skew the window; it never exceeds the negotiated slot count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Credit {
    /// The channel the grant is for (BACKCHANNEL flag).
    pub channel: Channel,
    /// Slots the initiator may have outstanding.
    pub slots: u32,
}

impl Credit {
    /// The kind code.
    pub const KIND: FrameKind = FrameKind::Credit;

    pub(crate) fn head(&self) -> Head {
        Head::channel(self.channel)
    }

    pub(crate) fn put_fixed<S: Sink>(&self, s: &mut S) {
        s.put_u32(self.slots);
    }

    pub(crate) fn decode(h: &FrameHeader, r: &mut Reader<'_>) -> Result<Self, DspError> {
        Ok(Credit {
            channel: Head::channel_of(h.flags),
            slots: need(r.u32(), Self::KIND)?,
        })
    }
}
