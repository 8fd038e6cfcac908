use crate::dsp::sink::Sink;
use crate::dsp::{DspError, FrameKind};
use crate::reader::Reader;

/// `AuthChallenge` (0x09), server → client
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AuthChallenge<'a> {
    ///  a SASL challenge; `data` is the mechanism's bytes.:The challenge bytes.
    pub data: &'a [u8],
}

impl<'a> AuthChallenge<'a> {
    /// The kind code.
    pub const KIND: FrameKind = FrameKind::AuthChallenge;

    pub(crate) fn put_fixed<S: Sink>(&self, s: &mut S) {
        s.put(self.data);
    }

    pub(crate) fn decode(r: &mut Reader<'a>) -> Result<Self, DspError> {
        Ok(AuthChallenge {
            data: r.take_rest(),
        })
    }
}
