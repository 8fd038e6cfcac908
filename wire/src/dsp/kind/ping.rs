use super::need;
use crate::dsp::sink::Sink;
use crate::dsp::{DspError, FrameKind};
use crate::reader::Reader;

/// `Ping` (0x30): a liveness and round-trip probe. The receiver answers with a Pong
/// carrying the same token as soon as it can (ahead of queued exchange frames).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ping {
    /// Opaque to the receiver; typically the sender's send timestamp, for RTT.
    pub token: u64,
}

/// `Pong` (0x31): the answer to a Ping, echoing its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pong {
    /// The token of the Ping answered.
    pub token: u64,
}

impl Ping {
    /// The kind code.
    pub const KIND: FrameKind = FrameKind::Ping;

    pub(crate) fn put_fixed<S: Sink>(&self, s: &mut S) {
        s.put_u64(self.token);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DspError> {
        Ok(Ping {
            token: need(r.u64(), Self::KIND)?,
        })
    }
}

impl Pong {
    /// The kind code.
    pub const KIND: FrameKind = FrameKind::Pong;

    pub(crate) fn put_fixed<S: Sink>(&self, s: &mut S) {
        s.put_u64(self.token);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DspError> {
        Ok(Pong {
            token: need(r.u64(), Self::KIND)?,
        })
    }
}
