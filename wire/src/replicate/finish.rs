//! `Finish`: the job is over; the target applies directory metadata, tidies its partial
//! state and reports.

use crate::reader::Reader;
use bytes::BufMut;

use super::{MessageKind, Need, ProtoError, expect_end, expect_tag};

/// `tag` alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finish;

impl Finish {
    /// Appends the message to `out`.
    pub fn encode(&self, out: &mut impl BufMut) {
        out.put_u8(MessageKind::Finish.tag());
    }

    /// Decodes a whole message.
    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        expect_tag(&mut r, MessageKind::Finish)?;
        expect_end(&r)?;
        Ok(Finish)
    }
}

/// The target's side of the job: `tag` then eight `u64` counters in field order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FinishReport {
    /// Regular files written (renamed into place).
    pub files_written: u64,
    /// Entries found up to date.
    pub up_to_date: u64,
    /// Directories created.
    pub dirs_created: u64,
    /// Symlinks created.
    pub symlinks_created: u64,
    /// Entries deleted.
    pub deleted: u64,
    /// Entries refused.
    pub refused: u64,
    /// Data bytes received in blocks and inline.
    pub bytes_received: u64,
    /// Data bytes found complete in transfer journals and not received again.
    pub bytes_resumed: u64,
}

impl FinishReport {
    fn fields(&self) -> [u64; 8] {
        [
            self.files_written,
            self.up_to_date,
            self.dirs_created,
            self.symlinks_created,
            self.deleted,
            self.refused,
            self.bytes_received,
            self.bytes_resumed,
        ]
    }

    /// Appends the message to `out`.
    pub fn encode(&self, out: &mut impl BufMut) {
        out.put_u8(MessageKind::FinishReport.tag());
        for field in self.fields() {
            out.put_u64(field);
        }
    }

    /// Decodes a whole message.
    pub fn decode(body: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(body);
        expect_tag(&mut r, MessageKind::FinishReport)?;
        let mut f = [0u64; 8];
        for field in &mut f {
            *field = r.u64().need()?;
        }
        expect_end(&r)?;
        Ok(FinishReport {
            files_written: f[0],
            up_to_date: f[1],
            dirs_created: f[2],
            symlinks_created: f[3],
            deleted: f[4],
            refused: f[5],
            bytes_received: f[6],
            bytes_resumed: f[7],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn report_round_trips(f in any::<[u64; 8]>()) {
            let report = FinishReport {
                files_written: f[0], up_to_date: f[1], dirs_created: f[2],
                symlinks_created: f[3], deleted: f[4], refused: f[5],
                bytes_received: f[6], bytes_resumed: f[7],
            };
            let mut buf = Vec::new();
            report.encode(&mut buf);
            prop_assert_eq!(FinishReport::decode(&buf), Ok(report));
            prop_assert_eq!(FinishReport::decode(&buf[..buf.len() - 1]), Err(ProtoError::Truncated));
        }
    }

    #[test]
    fn finish_is_one_byte() {
        let mut buf = Vec::new();
        Finish.encode(&mut buf);
        assert_eq!(buf, [0x06]);
        assert_eq!(Finish::decode(&buf), Ok(Finish));
        assert_eq!(
            Finish::decode(&[0x06, 0]),
            Err(ProtoError::TrailingBytes(1))
        );
    }
}
