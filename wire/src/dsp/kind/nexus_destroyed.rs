use super::{put_answer, read_answer};
use crate::dsp::share::Share;
use crate::dsp::sink::Sink;
use crate::dsp::{DspError, FrameKind, NexusId, Status};
use crate::reader::Reader;

/// `NexusDestroyed` (0x17), server → client: the answer to NexusDestroy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NexusDestroyed<T> {
    /// [`Status::OK`] or why the operation failed.
    pub status: Status,
    /// The nexus the answer is about (as asked).
    pub nexus: NexusId,
    /// Human-readable reason (rest of the payload), empty on success.
    pub reason: T,
}

impl<T: AsRef<str>> NexusDestroyed<T> {
    /// The kind code.
    pub const KIND: FrameKind = FrameKind::NexusDestroyed;

    pub(crate) fn put_fixed<S: Sink>(&self, s: &mut S) {
        put_answer(s, self.status, self.nexus, self.reason.as_ref());
    }
}

impl<'a> NexusDestroyed<&'a str> {
    pub(crate) fn decode(r: &mut Reader<'a>) -> Result<Self, DspError> {
        let (status, nexus, reason) = read_answer(r, Self::KIND)?;
        Ok(NexusDestroyed {
            status,
            nexus,
            reason,
        })
    }

    pub(crate) fn to_shared(self, s: Share<'_>) -> NexusDestroyed<String> {
        NexusDestroyed {
            status: self.status,
            nexus: self.nexus,
            reason: s.text(self.reason),
        }
    }
}
