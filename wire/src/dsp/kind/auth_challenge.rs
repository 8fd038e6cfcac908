use bytes::Bytes;

use crate::dsp::share::Share;
use crate::dsp::sink::Sink;
use crate::dsp::{DspError, FrameKind};
use crate::reader::Reader;

/// `AuthChallenge` (0x09), server → client: a SASL challenge of a multi-step mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AuthChallenge<B> {
    /// The challenge, as the mechanism defines it.
    pub data: B,
}

impl<B: AsRef<[u8]>> AuthChallenge<B> {
    /// The kind code.
    pub const KIND: FrameKind = FrameKind::AuthChallenge;

    pub(crate) fn put_fixed<S: Sink>(&self, s: &mut S) {
        s.put(self.data.as_ref());
    }
}

impl<'a> AuthChallenge<&'a [u8]> {
    pub(crate) fn decode(r: &mut Reader<'a>) -> Result<Self, DspError> {
        Ok(AuthChallenge {
            data: r.take_rest(),
        })
    }

    pub(crate) fn to_shared(self, s: Share<'_>) -> AuthChallenge<Bytes> {
        AuthChallenge {
            data: s.bytes(self.data),
        }
    }
}
