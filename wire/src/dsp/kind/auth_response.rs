use bytes::Bytes;

use crate::dsp::share::Share;
use crate::dsp::sink::Sink;
use crate::dsp::{DspError, FrameKind};
use crate::reader::Reader;

/// `AuthResponse` (0x0a), client → server: the answer to an [`AuthChallenge`](super::AuthChallenge).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AuthResponse<B> {
    /// The response, as the mechanism defines it.
    pub data: B,
}

impl<B: AsRef<[u8]>> AuthResponse<B> {
    /// The kind code.
    pub const KIND: FrameKind = FrameKind::AuthResponse;

    pub(crate) fn put_fixed<S: Sink>(&self, s: &mut S) {
        s.put(self.data.as_ref());
    }
}

impl<'a> AuthResponse<&'a [u8]> {
    pub(crate) fn decode(r: &mut Reader<'a>) -> Result<Self, DspError> {
        Ok(AuthResponse {
            data: r.take_rest(),
        })
    }

    pub(crate) fn to_shared(self, s: Share<'_>) -> AuthResponse<Bytes> {
        AuthResponse {
            data: s.bytes(self.data),
        }
    }
}
