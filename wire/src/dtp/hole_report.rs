//! The hole report: client to server over the nexus, re-requesting missing bytes or
//! ending the session.

use bytes::BufMut;

use super::error::{DtpEncodeError, DtpErrorKind, field};
use super::interval::IntervalSet;
use crate::reader::Reader;

/// Flag bit 0 of a hole report: stop sending.
const STOP: u8 = 0x01;

/// Missing intervals of a session, and whether the server should stop.
///
/// - `stop == false`: (re-)send `holes`, then keep listening for reports.
/// - `stop == true`, `holes` empty: the client has everything; the session is complete.
/// - `stop == true`, `holes` not empty: the client pauses; `holes` is what remains, for
///   a later resumed request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HoleReport {
    /// The session, as named by the transfer response.
    pub session_id: u32,
    /// Stop sending (complete or paused).
    pub stop: bool,
    /// The bytes still missing.
    pub holes: IntervalSet,
}

impl HoleReport {
    pub(crate) fn read(reader: &mut Reader<'_>) -> Result<Self, (usize, DtpErrorKind)> {
        let session_id = field(reader, Reader::u32)?;
        let flags_at = reader.used();
        let flags = field(reader, Reader::u8)?;
        if flags & !STOP != 0 {
            return Err((flags_at, DtpErrorKind::ReservedFlags(flags)));
        }
        let holes = IntervalSet::read(reader)?;
        Ok(Self {
            session_id,
            stop: flags & STOP != 0,
            holes,
        })
    }

    pub(crate) fn encode(&self, buf: &mut impl BufMut) -> Result<(), DtpEncodeError> {
        if u32::try_from(self.holes.len()).is_err() {
            return Err(DtpEncodeError::TooManyIntervals(self.holes.len()));
        }
        buf.put_u32(self.session_id);
        buf.put_u8(if self.stop { STOP } else { 0 });
        self.holes.encode(buf)
    }

    pub(crate) fn encoded_len(&self) -> usize {
        4 + 1 + self.holes.encoded_len()
    }
}
