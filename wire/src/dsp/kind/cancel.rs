use crate::dsp::frame::Head;
use crate::dsp::sink::Sink;
use crate::dsp::{Channel, FrameHeader, FrameKind};

/// `Cancel` (0x23), initiator → responder: cancel an outstanding request, named by the
/// same header fields as the request (payload empty). The responder still answers the
/// request (with a ResponseError of a cancellation exception, or its result if it won
/// the race), so the slot is released exactly once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cancel {
    /// The channel of the request.
    pub channel: Channel,
    /// Slot of the request.
    pub slot: u32,
    /// Sequence id of the request.
    pub sequence: u32,
    /// Request id of the request.
    pub request_id: u64,
}

impl Cancel {
    /// The kind code.
    pub const KIND: FrameKind = FrameKind::Cancel;

    pub(crate) fn head(&self) -> Head {
        Head::exchange(self.channel, self.slot, self.sequence, self.request_id)
    }

    pub(crate) fn put_fixed<S: Sink>(&self, _s: &mut S) {}

    pub(crate) fn decode(h: &FrameHeader) -> Self {
        Cancel {
            channel: Head::channel_of(h.flags),
            slot: h.slot,
            sequence: h.sequence,
            request_id: h.request_id,
        }
    }
}
