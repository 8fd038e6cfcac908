//! The push response: server to client over the nexus.

use bytes::BufMut;

use super::datagram::DatagramForm;
use super::error::{DtpEncodeError, DtpErrorKind, field};
use super::interval::IntervalSet;
use crate::reader::Reader;

/// Accepts a push: the session, how its datagrams look, where and under which key they
/// go, and which bytes the server still needs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PushResponse {
    /// Names the session in extended datagrams, feedback and hole reports.
    pub session_id: u32,
    /// The datagram form for the whole session. [`DatagramForm::Basic`] only for payloads
    /// of at most 4 GiB (the server knows the size from the request; the response does
    /// not repeat it, so a decoder cannot check this).
    pub form: DatagramForm,
    /// Largest UDP payload the client may send, header included (at most the request's
    /// MTU, and larger than the form's header).
    pub datagram_size: u16,
    /// The session's datagram key: 32 random bytes the server draws, from which every UDP
    /// message's tag is computed.
    pub key: [u8; 32],
    /// UDP port of the server's data socket; its IP is the nexus peer's.
    pub data_port: u16,
    /// The bytes the server still needs: the whole payload for a fresh push.
    pub wanted: IntervalSet,
}

impl PushResponse {
    pub(crate) fn read(reader: &mut Reader<'_>) -> Result<Self, (usize, DtpErrorKind)> {
        let session_id = field(reader, Reader::u32)?;
        let form_at = reader.used();
        let form_number = field(reader, Reader::u8)?;
        let size_at = reader.used();
        let datagram_size = field(reader, Reader::u16)?;
        let key = field(reader, Reader::array::<32>)?;
        let data_port = field(reader, Reader::u16)?;
        let form = DatagramForm::from_number(form_number)
            .ok_or((form_at, DtpErrorKind::UnknownForm(form_number)))?;
        if usize::from(datagram_size) <= form.header_len() {
            return Err((size_at, DtpErrorKind::DatagramSizeTooSmall(datagram_size)));
        }
        let wanted = IntervalSet::read(reader)?;
        Ok(Self {
            session_id,
            form,
            datagram_size,
            key,
            data_port,
            wanted,
        })
    }

    pub(crate) fn encode(&self, buf: &mut impl BufMut) -> Result<(), DtpEncodeError> {
        if u32::try_from(self.wanted.len()).is_err() {
            return Err(DtpEncodeError::TooManyIntervals(self.wanted.len()));
        }
        buf.put_u32(self.session_id);
        buf.put_u8(self.form as u8);
        buf.put_u16(self.datagram_size);
        buf.put_slice(&self.key);
        buf.put_u16(self.data_port);
        self.wanted.encode(buf)
    }

    pub(crate) fn encoded_len(&self) -> usize {
        4 + 1 + 2 + 32 + 2 + self.wanted.encoded_len()
    }
}
