//! The transfer response: server to client over the nexus.

use bytes::BufMut;

use super::datagram::DatagramForm;
use super::error::{DtpErrorKind, field};
use crate::reader::Reader;

/// Accepts a transfer: how big the payload is, how much will come, how the datagrams of
/// this session look, and where and under which key they travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TransferResponse {
    /// Names the session in extended datagrams and hole reports.
    pub session_id: u32,
    /// The payload's total size in bytes.
    pub total_size: u64,
    /// Bytes the session will send (equal to `total_size` for a whole-payload request).
    pub bytes_expected: u64,
    /// The datagram form for the whole session. [`DatagramForm::Basic`] only for payloads
    /// of at most 4 GiB.
    pub form: DatagramForm,
    /// Largest UDP payload the server will send, header included (at most the request's
    /// MTU, and larger than the form's header).
    pub datagram_size: u16,
    /// The session's datagram key: 32 random bytes the server draws, from which every UDP
    /// message's tag is computed.
    pub key: [u8; 32],
    /// UDP port of the server's data socket; its IP is the nexus peer's.
    pub data_port: u16,
}

impl TransferResponse {
    pub(crate) const ENCODED_LEN: usize = 4 + 8 + 8 + 1 + 2 + 32 + 2;

    pub(crate) fn read(reader: &mut Reader<'_>) -> Result<Self, (usize, DtpErrorKind)> {
        let session_id = field(reader, Reader::u32)?;
        let total_size = field(reader, Reader::u64)?;
        let expected_at = reader.used();
        let bytes_expected = field(reader, Reader::u64)?;
        let form_at = reader.used();
        let form_number = field(reader, Reader::u8)?;
        let size_at = reader.used();
        let datagram_size = field(reader, Reader::u16)?;
        let key = field(reader, Reader::array::<32>)?;
        let data_port = field(reader, Reader::u16)?;
        if bytes_expected > total_size {
            return Err((expected_at, DtpErrorKind::ExpectedExceedsTotal));
        }
        let form = DatagramForm::from_number(form_number)
            .ok_or((form_at, DtpErrorKind::UnknownForm(form_number)))?;
        if form == DatagramForm::Basic && total_size > DatagramForm::BASIC_MAX_PAYLOAD {
            return Err((form_at, DtpErrorKind::BasicFormTooLarge));
        }
        if usize::from(datagram_size) <= form.header_len() {
            return Err((size_at, DtpErrorKind::DatagramSizeTooSmall(datagram_size)));
        }
        Ok(Self {
            session_id,
            total_size,
            bytes_expected,
            form,
            datagram_size,
            key,
            data_port,
        })
    }

    pub(crate) fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u32(self.session_id);
        buf.put_u64(self.total_size);
        buf.put_u64(self.bytes_expected);
        buf.put_u8(self.form as u8);
        buf.put_u16(self.datagram_size);
        buf.put_slice(&self.key);
        buf.put_u16(self.data_port);
    }
}
