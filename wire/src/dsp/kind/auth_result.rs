use super::{need, text};
use crate::dsp::sink::Sink;
use crate::dsp::{DspError, FrameKind, Status};
use crate::reader::Reader;

/// `AuthResult` (0x0b), server → client: the outcome of SASL authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AuthResult<'a> {
    /// [`Status::OK`] or why authentication failed.
    pub status: Status,
    /// SASL "additional data with success" (e.g. the server's proof in a mutual
    /// mechanism); at most 65,535 bytes.
    pub additional_data: &'a [u8],
    /// Human-readable reason, empty on success.
    pub reason: &'a str,
}

impl<'a> AuthResult<'a> {
    /// The kind code.
    pub const KIND: FrameKind = FrameKind::AuthResult;

    pub(crate) fn put_fixed<S: Sink>(&self, s: &mut S) {
        let data = self.additional_data;
        let data = data.get(..usize::from(u16::MAX)).unwrap_or(data);
        s.put_u8(self.status.0);
        s.put_u16(u16::try_from(data.len()).unwrap_or(u16::MAX));
        s.put(data);
        s.put(self.reason.as_bytes());
    }

    pub(crate) fn validate(&self) -> Result<(), DspError> {
        if self.additional_data.len() > usize::from(u16::MAX) {
            return Err(DspError::InvalidField(Self::KIND));
        }
        Ok(())
    }

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
}
