//! The push request: client to server over the nexus.

use bytes::BufMut;

use super::MIN_MTU;
use super::error::{DtpEncodeError, DtpErrorKind, field};
use crate::reader::Reader;

/// Flag bit 0 of a push request: resume an earlier push.
const RESUME: u8 = 0x01;

/// Announces that the client will send a payload to the server's data socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PushRequest<'a> {
    /// Names the payload on the server (a path, a snapshot id...); opaque to DTP.
    pub payload_id: &'a [u8],
    /// The payload's total size in bytes.
    pub total_size: u64,
    /// Pacing limit in bytes per second; 0 means no limit.
    pub max_throughput: u64,
    /// Largest UDP payload the client will send, in bytes (at least [`MIN_MTU`]).
    pub mtu: u16,
    /// Continue an earlier, interrupted push of this payload: the server wants only what
    /// it does not have yet. Without it the server wants the whole payload.
    pub resume: bool,
}

impl<'a> PushRequest<'a> {
    pub(crate) fn read(reader: &mut Reader<'a>) -> Result<Self, (usize, DtpErrorKind)> {
        let payload_id = field(reader, Reader::u16_bytes)?;
        let total_size = field(reader, Reader::u64)?;
        let max_throughput = field(reader, Reader::u64)?;
        let mtu_at = reader.used();
        let mtu = field(reader, Reader::u16)?;
        if mtu < MIN_MTU {
            return Err((mtu_at, DtpErrorKind::MtuTooSmall(mtu)));
        }
        let flags_at = reader.used();
        let flags = field(reader, Reader::u8)?;
        if flags & !RESUME != 0 {
            return Err((flags_at, DtpErrorKind::ReservedFlags(flags)));
        }
        Ok(Self {
            payload_id,
            total_size,
            max_throughput,
            mtu,
            resume: flags & RESUME != 0,
        })
    }

    pub(crate) fn encode(&self, buf: &mut impl BufMut) -> Result<(), DtpEncodeError> {
        let id_len = u16::try_from(self.payload_id.len())
            .map_err(|_| DtpEncodeError::PayloadIdTooLong(self.payload_id.len()))?;
        buf.put_u16(id_len);
        buf.put_slice(self.payload_id);
        buf.put_u64(self.total_size);
        buf.put_u64(self.max_throughput);
        buf.put_u16(self.mtu);
        buf.put_u8(if self.resume { RESUME } else { 0 });
        Ok(())
    }

    pub(crate) fn encoded_len(&self) -> usize {
        2 + self.payload_id.len() + 8 + 8 + 2 + 1
    }
}
