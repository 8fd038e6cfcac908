use crate::dsp::sink::Sink;
use crate::dsp::{DspError, FrameKind};
use crate::reader::Reader;

/// `AuthResponse` (0x0a), client → server
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AuthResponse<'a> {
    ///  the answer to an AuthChallenge.:The response bytes.
    pub data: &'a [u8],
}

impl<'a> AuthResponse<'a> {
    /// The kind code.
    pub const KIND: FrameKind = FrameKind::AuthResponse;

    pub(crate) fn put_fixed<S: Sink>(&self, s: &mut S) {
        s.put(self.data);
    }

    pub(crate) fn decode(r: &mut Reader<'a>) -> Result<Self, DspError> {
        Ok(AuthResponse {
            data: r.take_rest(),
        })
    }
}
