use super::{need, read_nexus_id, text};
use crate::dsp::share::Share;
use crate::dsp::sink::Sink;
use crate::dsp::{ChannelAttrs, DspError, FrameKind, NexusFeatures, NexusId, Status};
use crate::reader::Reader;

/// `NexusCreated` (0x11), server → client: the answer to NexusCreate. On success it carries
/// the nexus id and the negotiated attributes (field-wise no larger than proposed); on
/// failure the status says why, the other fixed fields are zero and `reason` explains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NexusCreated<T> {
    /// [`Status::OK`], or why the nexus was not created.
    pub status: Status,
    /// The new nexus.
    pub nexus: NexusId,
    /// Negotiated fore channel attributes.
    pub fore: ChannelAttrs,
    /// Negotiated backchannel attributes.
    pub back: ChannelAttrs,
    /// Granted grace period, in milliseconds.
    pub grace_period_ms: u32,
    /// Granted features (a subset of the requested ones).
    pub features: NexusFeatures,
    /// Human-readable reason (rest of the payload), empty on success.
    pub reason: T,
}

impl<T: AsRef<str>> NexusCreated<T> {
    /// The kind code.
    pub const KIND: FrameKind = FrameKind::NexusCreated;

    pub(crate) fn put_fixed<S: Sink>(&self, s: &mut S) {
        s.put_u8(self.status.0);
        s.put(&self.nexus.0);
        self.fore.put(s);
        self.back.put(s);
        s.put_u32(self.grace_period_ms);
        s.put_u32(self.features.0);
        s.put(self.reason.as_ref().as_bytes());
    }
}

impl<'a> NexusCreated<&'a str> {
    pub(crate) fn decode(r: &mut Reader<'a>) -> Result<Self, DspError> {
        let k = Self::KIND;
        Ok(NexusCreated {
            status: Status(need(r.u8(), k)?),
            nexus: read_nexus_id(r, k)?,
            fore: ChannelAttrs::read(r, k)?,
            back: ChannelAttrs::read(r, k)?,
            grace_period_ms: need(r.u32(), k)?,
            features: NexusFeatures(need(r.u32(), k)?),
            reason: text(r.take_rest(), k)?,
        })
    }

    pub(crate) fn to_shared(self, s: Share<'_>) -> NexusCreated<String> {
        NexusCreated {
            status: self.status,
            nexus: self.nexus,
            fore: self.fore,
            back: self.back,
            grace_period_ms: self.grace_period_ms,
            features: self.features,
            reason: s.text(self.reason),
        }
    }
}
