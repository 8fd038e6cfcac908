//! Data datagrams: one UDP packet each, the payload offset first, then the data.

use bytes::BufMut;

use super::error::{DtpError, DtpErrorKind};
use crate::reader::Reader;

/// Which datagram layout a session uses, fixed by its [`TransferResponse`](super::TransferResponse).
///
/// The two forms cannot be told apart from a datagram's bytes (the basic form has no
/// header besides the offset); the receiver knows the form from the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DatagramForm {
    /// `[u32 offset][data]`, as in the seed. Payloads of at most 4 GiB.
    Basic = 0,
    /// `[u32 session id][u64 offset][data]`. Any payload size.
    Extended = 1,
}

impl DatagramForm {
    /// The largest payload the basic form can address: every byte's offset fits 32 bits.
    pub const BASIC_MAX_PAYLOAD: u64 = 1 << 32;

    /// The form for a wire number.
    pub fn from_number(number: u8) -> Option<Self> {
        match number {
            0 => Some(Self::Basic),
            1 => Some(Self::Extended),
            _ => None,
        }
    }

    /// Header bytes before the data.
    pub fn header_len(self) -> usize {
        match self {
            Self::Basic => 4,
            Self::Extended => 12,
        }
    }

    /// The form a server picks for a payload: basic when its offsets fit 32 bits.
    pub fn for_payload(total_size: u64) -> Self {
        if total_size <= Self::BASIC_MAX_PAYLOAD {
            Self::Basic
        } else {
            Self::Extended
        }
    }
}

/// One data datagram; `data` borrows from the received packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Datagram<'a> {
    /// Basic form.
    Basic {
        /// Payload offset of the first data byte.
        offset: u32,
        /// The data.
        data: &'a [u8],
    },
    /// Extended form.
    Extended {
        /// The session, as named by the transfer response.
        session_id: u32,
        /// Payload offset of the first data byte.
        offset: u64,
        /// The data.
        data: &'a [u8],
    },
}

impl<'a> Datagram<'a> {
    /// Decodes a whole UDP payload of the given form. The data must end within the form's
    /// offset range (for the basic form: at or before 4 GiB). Empty data is allowed.
    pub fn decode(packet: &'a [u8], form: DatagramForm) -> Result<Self, DtpError> {
        let mut reader = Reader::new(packet);
        let too_short = DtpError::at(0, DtpErrorKind::DatagramTooShort);
        let datagram = match form {
            DatagramForm::Basic => {
                let offset = reader.u32().ok_or(too_short)?;
                Self::Basic {
                    offset,
                    data: reader.take_rest(),
                }
            }
            DatagramForm::Extended => {
                let session_id = reader.u32().ok_or(too_short)?;
                let offset = reader.u64().ok_or(too_short)?;
                Self::Extended {
                    session_id,
                    offset,
                    data: reader.take_rest(),
                }
            }
        };
        let fits = match datagram {
            Self::Basic { offset, data } => {
                u64::from(offset) + data.len() as u64 <= DatagramForm::BASIC_MAX_PAYLOAD
            }
            Self::Extended { offset, data, .. } => offset.checked_add(data.len() as u64).is_some(),
        };
        if !fits {
            return Err(DtpError::at(
                form.header_len(),
                DtpErrorKind::DatagramBeyondRange,
            ));
        }
        Ok(datagram)
    }

    /// The form of this datagram.
    pub fn form(&self) -> DatagramForm {
        match self {
            Self::Basic { .. } => DatagramForm::Basic,
            Self::Extended { .. } => DatagramForm::Extended,
        }
    }

    /// Payload offset of the first data byte.
    pub fn offset(&self) -> u64 {
        match *self {
            Self::Basic { offset, .. } => u64::from(offset),
            Self::Extended { offset, .. } => offset,
        }
    }

    /// The data.
    pub fn data(&self) -> &'a [u8] {
        match *self {
            Self::Basic { data, .. } | Self::Extended { data, .. } => data,
        }
    }

    /// Bytes on the wire.
    pub fn encoded_len(&self) -> usize {
        self.form().header_len() + self.data().len()
    }

    /// Writes the header only, for a vectored send with the data from its own buffer.
    pub fn encode_header(&self, buf: &mut impl BufMut) {
        match *self {
            Self::Basic { offset, .. } => buf.put_u32(offset),
            Self::Extended {
                session_id, offset, ..
            } => {
                buf.put_u32(session_id);
                buf.put_u64(offset);
            }
        }
    }

    /// Writes header and data.
    pub fn encode(&self, buf: &mut impl BufMut) {
        self.encode_header(buf);
        buf.put_slice(self.data());
    }
}
