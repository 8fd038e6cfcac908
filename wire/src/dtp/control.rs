//! DTP control messages, carried as DSP request/response payloads on the nexus:
//! `[u8 type tag][fields]`.

use bytes::BufMut;

use super::error::{DtpEncodeError, DtpError, DtpErrorKind};
use super::hole_report::HoleReport;
use super::push_request::PushRequest;
use super::push_response::PushResponse;
use super::transfer_request::TransferRequest;
use super::transfer_response::TransferResponse;
use crate::reader::Reader;

/// Type tags of control messages.
pub mod tag {
    /// [`TransferRequest`](crate::dtp::TransferRequest).
    pub const TRANSFER_REQUEST: u8 = 0x01;
    /// [`TransferResponse`](crate::dtp::TransferResponse).
    pub const TRANSFER_RESPONSE: u8 = 0x02;
    /// [`HoleReport`](crate::dtp::HoleReport).
    pub const HOLE_REPORT: u8 = 0x03;
    /// [`PushRequest`](crate::dtp::PushRequest).
    pub const PUSH_REQUEST: u8 = 0x04;
    /// [`PushResponse`](crate::dtp::PushResponse).
    pub const PUSH_RESPONSE: u8 = 0x05;
}

/// One control message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ControlMessage<'a> {
    /// Client → server: start (or resume) a transfer.
    TransferRequest(TransferRequest<'a>),
    /// Server → client: the transfer is accepted.
    TransferResponse(TransferResponse),
    /// Client → server: re-request holes, or stop.
    HoleReport(HoleReport),
    /// Client → server: start (or resume) sending a payload.
    PushRequest(PushRequest<'a>),
    /// Server → client: the push is accepted.
    PushResponse(PushResponse),
}

impl<'a> ControlMessage<'a> {
    /// Decodes one whole control message (a complete DSP payload); bytes after its last
    /// field are an error.
    pub fn decode(message: &'a [u8]) -> Result<Self, DtpError> {
        let mut reader = Reader::new(message);
        let tag = reader.u8().ok_or(DtpError::at(0, DtpErrorKind::Empty))?;
        let decoded = match tag {
            tag::TRANSFER_REQUEST => TransferRequest::read(&mut reader).map(Self::TransferRequest),
            tag::TRANSFER_RESPONSE => {
                TransferResponse::read(&mut reader).map(Self::TransferResponse)
            }
            tag::HOLE_REPORT => HoleReport::read(&mut reader).map(Self::HoleReport),
            tag::PUSH_REQUEST => PushRequest::read(&mut reader).map(Self::PushRequest),
            tag::PUSH_RESPONSE => PushResponse::read(&mut reader).map(Self::PushResponse),
            other => Err((0, DtpErrorKind::UnknownTag(other))),
        };
        let message = decoded.map_err(|(at, kind)| DtpError::at(at, kind))?;
        if !reader.is_empty() {
            return Err(DtpError::at(
                reader.used(),
                DtpErrorKind::TrailingBytes(reader.left()),
            ));
        }
        Ok(message)
    }

    /// The type tag.
    pub fn tag(&self) -> u8 {
        match self {
            Self::TransferRequest(_) => tag::TRANSFER_REQUEST,
            Self::TransferResponse(_) => tag::TRANSFER_RESPONSE,
            Self::HoleReport(_) => tag::HOLE_REPORT,
            Self::PushRequest(_) => tag::PUSH_REQUEST,
            Self::PushResponse(_) => tag::PUSH_RESPONSE,
        }
    }

    /// Bytes on the wire, tag included.
    pub fn encoded_len(&self) -> usize {
        1 + match self {
            Self::TransferRequest(m) => m.encoded_len(),
            Self::TransferResponse(_) => TransferResponse::ENCODED_LEN,
            Self::HoleReport(m) => m.encoded_len(),
            Self::PushRequest(m) => m.encoded_len(),
            Self::PushResponse(m) => m.encoded_len(),
        }
    }

    /// Writes tag and fields. Fails, writing nothing, when a length does not fit its field.
    pub fn encode(&self, buf: &mut impl BufMut) -> Result<(), DtpEncodeError> {
        // Checked before the tag goes out, so a failure writes nothing.
        match self {
            Self::TransferRequest(m) => {
                if u16::try_from(m.payload_id.len()).is_err() {
                    return Err(DtpEncodeError::PayloadIdTooLong(m.payload_id.len()));
                }
                if u32::try_from(m.intervals.len()).is_err() {
                    return Err(DtpEncodeError::TooManyIntervals(m.intervals.len()));
                }
            }
            Self::HoleReport(m) if u32::try_from(m.holes.len()).is_err() => {
                return Err(DtpEncodeError::TooManyIntervals(m.holes.len()));
            }
            Self::PushRequest(m) if u16::try_from(m.payload_id.len()).is_err() => {
                return Err(DtpEncodeError::PayloadIdTooLong(m.payload_id.len()));
            }
            Self::PushResponse(m) if u32::try_from(m.wanted.len()).is_err() => {
                return Err(DtpEncodeError::TooManyIntervals(m.wanted.len()));
            }
            _ => {}
        }
        buf.put_u8(self.tag());
        match self {
            Self::TransferRequest(m) => m.encode(buf),
            Self::TransferResponse(m) => {
                m.encode(buf);
                Ok(())
            }
            Self::HoleReport(m) => m.encode(buf),
            Self::PushRequest(m) => m.encode(buf),
            Self::PushResponse(m) => m.encode(buf),
        }
    }
}
