use bytes::Bytes;

use super::{need, text};
use crate::dsp::share::Share;
use crate::dsp::sink::Sink;
use crate::dsp::{DspError, FrameKind, Status};
use crate::reader::Reader;

/// `AuthResult` (0x0b), server → client: the outcome of SASL authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AuthResult<B, T> {
    /// [`Status::OK`] or why authentication failed.
    pub status: Status,
    /// SASL "additional data with success" (e.g. the server's proof in a mutual
    /// mechanism); at most 65,535 bytes.
    pub additional_data: B,
    /// Human-readable reason, empty on success.
    pub reason: T,
}

impl<B: AsRef<[u8]>, T: AsRef<str>> AuthResult<B, T> {
    /// The kind code.
    pub const KIND: FrameKind = FrameKind::AuthResult;

    pub(crate) fn put_fixed<S: Sink>(&self, s: &mut S) {
        let data = self.additional_data.as_ref();
        let data = data.get(..usize::from(u16::MAX)).unwrap_or(data);
        s.put_u8(self.status.0);
        s.put_u16(u16::try_from(data.len()).unwrap_or(u16::MAX));
        s.put(data);
        s.put(self.reason.as_ref().as_bytes());
    }

    pub(crate) fn validate(&self) -> Result<(), DspError> {
        if self.additional_data.as_ref().len() > usize::from(u16::MAX) {
            return Err(DspError::InvalidField(Self::KIND));
        }
        Ok(())
    }
}

impl<'a> AuthResult<&'a [u8], &'a str> {
    pub(crate) fn decode(r: &mut Reader<'a>) -> Result<Self, DspError> {
        let k = Self::KIND;
        let status = Status(need(r.u8(), k)?);
        let additional_data = need(r.u16_bytes(), k)?;
        let reason = text(r.take_rest(), k)?;
        Ok(AuthResult {
            status,
            additional_data,
            reason,
        })
    }

    pub(crate) fn to_shared(self, s: Share<'_>) -> AuthResult<Bytes, String> {
        AuthResult {
            status: self.status,
            additional_data: s.bytes(self.additional_data),
            reason: s.text(self.reason),
        }
    }
}
