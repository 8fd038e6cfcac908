use super::{put_answer, read_answer};
use crate::dsp::share::Share;
use crate::dsp::sink::Sink;
use crate::dsp::{DspError, FrameKind, NexusId, Status};
use crate::reader::Reader;

/// `BindAck` (0x13), server → client: the answer to BindConnection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BindAck<T> {
    /// [`Status::OK`] or why the operation failed.
    pub status: Status,
    /// The nexus the answer is about (as asked).
    pub nexus: NexusId,
    /// Human-readable reason (rest of the payload), empty on success.
    pub reason: T,
}

impl<T: AsRef<str>> BindAck<T> {
    /// The kind code.
    pub const KIND: FrameKind = FrameKind::BindAck;

    pub(crate) fn put_fixed<S: Sink>(&self, s: &mut S) {
        put_answer(s, self.status, self.nexus, self.reason.as_ref());
    }
}

impl<'a> BindAck<&'a str> {
    pub(crate) fn decode(r: &mut Reader<'a>) -> Result<Self, DspError> {
        let (status, nexus, reason) = read_answer(r, Self::KIND)?;
        Ok(BindAck {
            status,
            nexus,
            reason,
        })
    }

    pub(crate) fn to_shared(self, s: Share<'_>) -> BindAck<String> {
        BindAck {
            status: self.status,
            nexus: self.nexus,
            reason: s.text(self.reason),
        }
    }
}
