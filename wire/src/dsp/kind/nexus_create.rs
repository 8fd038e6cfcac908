use super::{need, text};
use crate::dsp::share::Share;
use crate::dsp::sink::Sink;
use crate::dsp::{ChannelAttrs, DspError, FrameKind, NexusFeatures};
use crate::reader::Reader;

/// `NexusCreate` (0x10), client → server: create a nexus, proposing the attributes of each
/// channel. The server may hold the answer while an older nexus of the same identity
/// still exists (until it is reinstated or expires).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NexusCreate<T> {
    /// Proposed fore channel attributes (client → server requests).
    pub fore: ChannelAttrs,
    /// Proposed backchannel attributes (server → client requests).
    pub back: ChannelAttrs,
    /// How long the nexus should survive with no connection, in milliseconds.
    pub grace_period_ms: u32,
    /// Requested per-nexus features.
    pub features: NexusFeatures,
    /// The persistent client identity (UTF-8; the rest of the payload).
    pub client_identity: T,
}

impl<T: AsRef<str>> NexusCreate<T> {
    /// The kind code.
    pub const KIND: FrameKind = FrameKind::NexusCreate;

    pub(crate) fn put_fixed<S: Sink>(&self, s: &mut S) {
        self.fore.put(s);
        self.back.put(s);
        s.put_u32(self.grace_period_ms);
        s.put_u32(self.features.0);
        s.put(self.client_identity.as_ref().as_bytes());
    }
}

impl<'a> NexusCreate<&'a str> {
    pub(crate) fn decode(r: &mut Reader<'a>) -> Result<Self, DspError> {
        let k = Self::KIND;
        Ok(NexusCreate {
            fore: ChannelAttrs::read(r, k)?,
            back: ChannelAttrs::read(r, k)?,
            grace_period_ms: need(r.u32(), k)?,
            features: NexusFeatures(need(r.u32(), k)?),
            client_identity: text(r.take_rest(), k)?,
        })
    }

    pub(crate) fn to_shared(self, s: Share<'_>) -> NexusCreate<String> {
        NexusCreate {
            fore: self.fore,
            back: self.back,
            grace_period_ms: self.grace_period_ms,
            features: self.features,
            client_identity: s.text(self.client_identity),
        }
    }
}
