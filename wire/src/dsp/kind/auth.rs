use bytes::Bytes;

use super::{need, text};
use crate::dsp::share::Share;
use crate::dsp::sink::Sink;
use crate::dsp::{DspError, FrameKind};
use crate::reader::Reader;

/// `Auth` (0x08), client → server: starts SASL authentication with a mechanism and an
/// optional initial response (SASL distinguishes an absent response from an empty one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Auth<B, T> {
    /// The SASL mechanism name, e.g. `ANONYMOUS`, `PLAIN`, `HMAC-SHA256` (1–255 bytes).
    pub mechanism: T,
    /// The client's initial response, if the mechanism sends one first.
    pub initial_response: Option<B>,
}

impl<B: AsRef<[u8]>, T: AsRef<str>> Auth<B, T> {
    /// The kind code.
    pub const KIND: FrameKind = FrameKind::Auth;

    pub(crate) fn put_fixed<S: Sink>(&self, s: &mut S) {
        // The encoder checks the name fits one octet of length (see `validate`).
        let name = self.mechanism.as_ref().as_bytes();
        s.put_u8(u8::try_from(name.len()).unwrap_or(u8::MAX));
        s.put(name.get(..usize::from(u8::MAX)).unwrap_or(name));
        match &self.initial_response {
            Some(data) => {
                s.put_u8(1);
                s.put(data.as_ref());
            }
            None => s.put_u8(0),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), DspError> {
        match self.mechanism.as_ref().len() {
            1..=255 => Ok(()),
            _ => Err(DspError::InvalidField(Self::KIND)),
        }
    }
}

impl<'a> Auth<&'a [u8], &'a str> {
    pub(crate) fn decode(r: &mut Reader<'a>) -> Result<Self, DspError> {
        let k = Self::KIND;
        let mechanism = text(need(r.short_bytes(), k)?, k)?;
        if mechanism.is_empty() {
            return Err(DspError::InvalidField(k));
        }
        let initial_response = match need(r.u8(), k)? {
            0 => None,
            1 => Some(r.take_rest()),
            _ => return Err(DspError::InvalidField(k)),
        };
        Ok(Auth {
            mechanism,
            initial_response,
        })
    }

    pub(crate) fn to_shared(self, s: Share<'_>) -> Auth<Bytes, String> {
        Auth {
            mechanism: s.text(self.mechanism),
            initial_response: self.initial_response.map(|data| s.bytes(data)),
        }
    }
}
