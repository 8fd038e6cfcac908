//! Feedback: the receiver's periodic report, one UDP datagram from its data socket to
//! the sender's (not a control message).

use bytes::BufMut;

use super::error::{DtpEncodeError, DtpError, DtpErrorKind, field};
use super::interval::{Interval, IntervalSet};
use crate::reader::Reader;

/// Flag bit 0 of a feedback report: everything asked for arrived.
const COMPLETE: u8 = 0x01;
/// Flag bit 1 of a feedback report: `holes` names every hole, the tail included.
const FINAL_PASS: u8 = 0x02;

/// What the receiver has seen so far, reported every report interval over UDP.
///
/// Sequence 0 is the hello: the sender learns the receiver's address from its source.
/// The sender stops once a report says `complete`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Feedback {
    /// The session, as named by the transfer or push response.
    pub session_id: u32,
    /// Report number; 0 is the hello.
    pub sequence: u32,
    /// Everything asked for arrived; the sender stops.
    pub complete: bool,
    /// Nothing new came for an interval, so `holes` names every hole, the tail included
    /// (otherwise only those below the receiver's frontier).
    pub final_pass: bool,
    /// New payload bytes received, cumulative.
    pub received_bytes: u64,
    /// Authentic datagrams received, duplicates included, cumulative.
    pub received_datagrams: u64,
    /// Bytes per second of new data over the interval since the previous report.
    pub delivery_rate: u64,
    /// Payload offset of the newest datagram received.
    pub echo_offset: u64,
    /// Microseconds between that datagram's arrival and this report.
    pub echo_hold_us: u32,
    /// The bytes missing.
    pub holes: IntervalSet,
}

impl Feedback {
    /// Bytes before the interval list's intervals, the list's u32 count included.
    pub const FIXED_LEN: usize = 4 + 4 + 1 + 8 + 8 + 8 + 8 + 4 + 4;

    /// How many holes fit in a body of `max_len` bytes (a datagram's room, tag excluded).
    pub fn holes_that_fit(max_len: usize) -> usize {
        max_len.saturating_sub(Self::FIXED_LEN) / Interval::ENCODED_LEN
    }

    /// Decodes a whole datagram body, the tag already stripped by the caller; bytes after
    /// the last field are an error.
    pub fn decode(body: &[u8]) -> Result<Self, DtpError> {
        let mut reader = Reader::new(body);
        let feedback = Self::read(&mut reader).map_err(|(at, kind)| DtpError::at(at, kind))?;
        if !reader.is_empty() {
            return Err(DtpError::at(
                reader.used(),
                DtpErrorKind::TrailingBytes(reader.left()),
            ));
        }
        Ok(feedback)
    }

    fn read(reader: &mut Reader<'_>) -> Result<Self, (usize, DtpErrorKind)> {
        let session_id = field(reader, Reader::u32)?;
        let sequence = field(reader, Reader::u32)?;
        let flags_at = reader.used();
        let flags = field(reader, Reader::u8)?;
        if flags & !(COMPLETE | FINAL_PASS) != 0 {
            return Err((flags_at, DtpErrorKind::ReservedFlags(flags)));
        }
        let received_bytes = field(reader, Reader::u64)?;
        let received_datagrams = field(reader, Reader::u64)?;
        let delivery_rate = field(reader, Reader::u64)?;
        let echo_offset = field(reader, Reader::u64)?;
        let echo_hold_us = field(reader, Reader::u32)?;
        let holes = IntervalSet::read(reader)?;
        Ok(Self {
            session_id,
            sequence,
            complete: flags & COMPLETE != 0,
            final_pass: flags & FINAL_PASS != 0,
            received_bytes,
            received_datagrams,
            delivery_rate,
            echo_offset,
            echo_hold_us,
            holes,
        })
    }

    /// Writes the body (the caller appends the tag). Fails, writing nothing, when the
    /// holes do not fit the 32-bit count.
    pub fn encode(&self, buf: &mut impl BufMut) -> Result<(), DtpEncodeError> {
        if u32::try_from(self.holes.len()).is_err() {
            return Err(DtpEncodeError::TooManyIntervals(self.holes.len()));
        }
        let mut flags = 0;
        if self.complete {
            flags |= COMPLETE;
        }
        if self.final_pass {
            flags |= FINAL_PASS;
        }
        buf.put_u32(self.session_id);
        buf.put_u32(self.sequence);
        buf.put_u8(flags);
        buf.put_u64(self.received_bytes);
        buf.put_u64(self.received_datagrams);
        buf.put_u64(self.delivery_rate);
        buf.put_u64(self.echo_offset);
        buf.put_u32(self.echo_hold_us);
        self.holes.encode(buf)
    }

    /// Bytes of the body, tag excluded.
    pub fn encoded_len(&self) -> usize {
        Self::FIXED_LEN + self.holes.len() * Interval::ENCODED_LEN
    }
}
