//! Client commands after the preamble: one short string (the lease).

use bytes::BufMut;

use super::error::DmpError;
use super::short_str::ShortStr;
use crate::reader::Reader;

/// A client command: one AMQP short string. On a DMP connection the only command is the
/// lease granted by `Direct.Put-Ok` / `Direct.Get-Ok` on the nexus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Command<'a> {
    /// The command text, for DMP the lease.
    pub text: ShortStr<'a>,
}

impl<'a> Command<'a> {
    /// Decodes a command from the start of `buf`; `Ok(None)` until the whole short string
    /// is there. A short string cannot be malformed, so this never fails; the `Result`
    /// keeps the shape of every other decoder.
    pub fn decode(buf: &'a [u8]) -> Result<Option<(Self, usize)>, DmpError> {
        let mut reader = Reader::new(buf);
        Ok(ShortStr::read(&mut reader).map(|text| (Self { text }, reader.used())))
    }

    /// Writes the short string.
    pub fn encode(&self, buf: &mut impl BufMut) {
        self.text.encode(buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_command_bytes() {
        let cmd = Command {
            text: ShortStr::text("lease-7f3a").unwrap(),
        };
        let mut out = Vec::new();
        cmd.encode(&mut out);
        assert_eq!(out, b"\x0alease-7f3a");
        assert_eq!(Command::decode(&out), Ok(Some((cmd, 11))));
        assert_eq!(Command::decode(&out[..5]), Ok(None));
        assert_eq!(Command::decode(&[]), Ok(None));
    }
}
