use super::{put_answer, read_answer};
use crate::dsp::share::Share;
use crate::dsp::sink::Sink;
use crate::dsp::{DspError, FrameKind, NexusId, Status};
use crate::reader::Reader;

/// `NexusRecovered` (0x15), server → client: the answer to NexusRecover. On success the
/// nexus is reinstated with the attributes negotiated at creation, and its slot tables and
/// reply caches are intact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NexusRecovered<T> {
    /// [`Status::OK`] or why the operation failed.
    pub status: Status,
    /// The nexus the answer is about (as asked).
    pub nexus: NexusId,
    /// Human-readable reason (rest of the payload), empty on success.
    pub reason: T,
}

impl<T: AsRef<str>> NexusRecovered<T> {
    /// The kind code.
    pub const KIND: FrameKind = FrameKind::NexusRecovered;

    pub(crate) fn put_fixed<S: Sink>(&self, s: &mut S) {
        put_answer(s, self.status, self.nexus, self.reason.as_ref());
    }
}

impl<'a> NexusRecovered<&'a str> {
    pub(crate) fn decode(r: &mut Reader<'a>) -> Result<Self, DspError> {
        let (status, nexus, reason) = read_answer(r, Self::KIND)?;
        Ok(NexusRecovered {
            status,
            nexus,
            reason,
        })
    }

    pub(crate) fn to_shared(self, s: Share<'_>) -> NexusRecovered<String> {
        NexusRecovered {
            status: self.status,
            nexus: self.nexus,
            reason: s.text(self.reason),
        }
    }
}
