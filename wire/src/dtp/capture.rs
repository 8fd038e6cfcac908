//! The DTP capture file read by `hawser inspect dtp`: records `[u8 kind][u32 length][bytes]`.

use bytes::BufMut;

use super::control::ControlMessage;
use super::datagram::{Datagram, DatagramForm};
use super::error::{DtpEncodeError, DtpError, DtpErrorKind};
use crate::reader::Reader;

/// Record kinds.
pub mod kind {
    /// A control message, exactly as carried in a DSP payload.
    pub const CONTROL: u8 = 0x01;
    /// A basic-form datagram (one UDP payload).
    pub const BASIC_DATAGRAM: u8 = 0x02;
    /// An extended-form datagram (one UDP payload).
    pub const EXTENDED_DATAGRAM: u8 = 0x03;
}

/// Largest control record accepted (a control message with about a million intervals).
pub const MAX_CONTROL_RECORD: u32 = 16 * 1024 * 1024;
/// Largest datagram record accepted: the largest UDP payload.
pub const MAX_DATAGRAM_RECORD: u32 = 65_535;

/// Bytes before a record's content.
const RECORD_HEADER_LEN: usize = 5;

/// One record of a capture.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Record<'a> {
    /// A control message.
    Control(ControlMessage<'a>),
    /// A data datagram of either form.
    Datagram(Datagram<'a>),
}

impl<'a> Record<'a> {
    /// Decodes one record from the start of `buf`: `Ok(None)` until the whole record is
    /// there; the length is checked against the kind's maximum as soon as the header is.
    pub fn decode(buf: &'a [u8]) -> Result<Option<(Self, usize)>, DtpError> {
        let mut reader = Reader::new(buf);
        let (Some(kind), Some(len)) = (reader.u8(), reader.u32()) else {
            return Ok(None);
        };
        let max = match kind {
            kind::CONTROL => MAX_CONTROL_RECORD,
            kind::BASIC_DATAGRAM | kind::EXTENDED_DATAGRAM => MAX_DATAGRAM_RECORD,
            other => return Err(DtpError::at(0, DtpErrorKind::UnknownRecordKind(other))),
        };
        if len > max {
            return Err(DtpError::at(1, DtpErrorKind::RecordTooLarge { len, max }));
        }
        let Some(content) = reader.take(len as usize) else {
            return Ok(None);
        };
        let shift = |e: DtpError| DtpError::at(e.offset + RECORD_HEADER_LEN, e.kind);
        let record = match kind {
            kind::CONTROL => Self::Control(ControlMessage::decode(content).map_err(shift)?),
            kind::BASIC_DATAGRAM => {
                Self::Datagram(Datagram::decode(content, DatagramForm::Basic).map_err(shift)?)
            }
            _ => Self::Datagram(Datagram::decode(content, DatagramForm::Extended).map_err(shift)?),
        };
        Ok(Some((record, reader.used())))
    }

    /// The record kind.
    pub fn kind(&self) -> u8 {
        match self {
            Self::Control(_) => kind::CONTROL,
            Self::Datagram(Datagram::Basic { .. }) => kind::BASIC_DATAGRAM,
            Self::Datagram(Datagram::Extended { .. }) => kind::EXTENDED_DATAGRAM,
        }
    }

    /// Writes the record: kind, length, content.
    pub fn encode(&self, buf: &mut impl BufMut) -> Result<(), DtpEncodeError> {
        let len = match self {
            Self::Control(m) => m.encoded_len(),
            Self::Datagram(d) => d.encoded_len(),
        };
        let len_field = u32::try_from(len).map_err(|_| DtpEncodeError::RecordTooLong(len))?;
        match self {
            Self::Control(m) => {
                // Encode first so a failure leaves `buf` untouched.
                let mut content = Vec::with_capacity(len);
                m.encode(&mut content)?;
                buf.put_u8(self.kind());
                buf.put_u32(len_field);
                buf.put_slice(&content);
            }
            Self::Datagram(d) => {
                buf.put_u8(self.kind());
                buf.put_u32(len_field);
                d.encode(buf);
            }
        }
        Ok(())
    }
}

/// Decodes a capture record by record, tracking the file offset so errors name the byte
/// in the whole file.
#[derive(Debug, Clone, Default)]
pub struct CaptureDecoder {
    position: usize,
}

impl CaptureDecoder {
    /// A decoder at file offset 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// File offset of the next record.
    pub fn position(&self) -> usize {
        self.position
    }

    /// Decodes the next record from `buf` (the unconsumed bytes of the capture):
    /// `Ok(Some((record, consumed)))`, or `Ok(None)` when more bytes are needed (at the
    /// end of a file: a truncated last record if any bytes remain).
    pub fn decode<'a>(&mut self, buf: &'a [u8]) -> Result<Option<(Record<'a>, usize)>, DtpError> {
        match Record::decode(buf) {
            Ok(Some((record, consumed))) => {
                self.position += consumed;
                Ok(Some((record, consumed)))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(DtpError::at(e.offset + self.position, e.kind)),
        }
    }
}
