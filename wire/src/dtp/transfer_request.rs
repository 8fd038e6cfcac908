//! The transfer request: client to server over the nexus.

use bytes::BufMut;

use super::MIN_MTU;
use super::error::{DtpEncodeError, DtpErrorKind, field};
use super::interval::IntervalSet;
use crate::reader::Reader;

/// Asks the server to send (part of) a payload to the client's data socket.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TransferRequest<'a> {
    /// Names the payload on the server (a path, a snapshot id...); opaque to DTP.
    pub payload_id: &'a [u8],
    /// The bytes wanted; empty means the whole payload. A resumed transfer asks for the
    /// holes of the previous session.
    pub intervals: IntervalSet,
    /// Pacing limit in bytes per second; 0 means no limit.
    pub max_throughput: u64,
    /// Largest UDP payload the client can receive, in bytes (at least [`MIN_MTU`]).
    pub mtu: u16,
}

impl<'a> TransferRequest<'a> {
    pub(crate) fn read(reader: &mut Reader<'a>) -> Result<Self, (usize, DtpErrorKind)> {
        let payload_id = field(reader, Reader::u16_bytes)?;
        let max_throughput = field(reader, Reader::u64)?;
        let mtu_at = reader.used();
        let mtu = field(reader, Reader::u16)?;
        if mtu < MIN_MTU {
            return Err((mtu_at, DtpErrorKind::MtuTooSmall(mtu)));
        }
        let intervals = IntervalSet::read(reader)?;
        Ok(Self {
            payload_id,
            intervals,
            max_throughput,
            mtu,
        })
    }

    pub(crate) fn encode(&self, buf: &mut impl BufMut) -> Result<(), DtpEncodeError> {
        let id_len = u16::try_from(self.payload_id.len())
            .map_err(|_| DtpEncodeError::PayloadIdTooLong(self.payload_id.len()))?;
        if u32::try_from(self.intervals.len()).is_err() {
            return Err(DtpEncodeError::TooManyIntervals(self.intervals.len()));
        }
        buf.put_u16(id_len);
        buf.put_slice(self.payload_id);
        buf.put_u64(self.max_throughput);
        buf.put_u16(self.mtu);
        self.intervals.encode(buf)
    }

    pub(crate) fn encoded_len(&self) -> usize {
        2 + self.payload_id.len() + 8 + 2 + self.intervals.encoded_len()
    }
}
