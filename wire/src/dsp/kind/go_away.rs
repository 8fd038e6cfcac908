use super::{need, text};
use crate::dsp::share::Share;
use crate::dsp::sink::Sink;
use crate::dsp::{DspError, FrameKind, GoAwayCode};
use crate::reader::Reader;

/// `GoAway` (0x3f): the sender is closing the connection and will send nothing more.
/// The nexus is unaffected unless the code says so (e.g. `NEXUS_DESTROYED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GoAway<T> {
    /// Why.
    pub code: GoAwayCode,
    /// Human-readable detail (rest of the payload).
    pub reason: T,
}

impl<T: AsRef<str>> GoAway<T> {
    /// The kind code.
    pub const KIND: FrameKind = FrameKind::GoAway;

    pub(crate) fn put_fixed<S: Sink>(&self, s: &mut S) {
        s.put_u16(self.code.0);
        s.put(self.reason.as_ref().as_bytes());
    }
}

impl<'a> GoAway<&'a str> {
    pub(crate) fn decode(r: &mut Reader<'a>) -> Result<Self, DspError> {
        let k = Self::KIND;
        Ok(GoAway {
            code: GoAwayCode(need(r.u16(), k)?),
            reason: text(r.take_rest(), k)?,
        })
    }

    pub(crate) fn to_shared(self, s: Share<'_>) -> GoAway<String> {
        GoAway {
            code: self.code,
            reason: s.text(self.reason),
        }
    }
}
