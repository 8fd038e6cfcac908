//! The connection preamble: `AMQP` followed by protocol id, instance and version.

use bytes::BufMut;

use super::error::{DmpError, DmpErrorKind};

/// The 8-octet protocol header a DMP client sends first on a direct connection.
///
/// For DMP it is `A M Q P 0x0A 0x01 0x00 0x01` (protocol id 10, instance 1, version 0.1,
/// the seed's `AMQP%d10.1.0.1`). The decoder accepts any values after `AMQP` so a dissector
/// can show a foreign header; [`Preamble::is_dmp`] tells whether it is the DMP one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Preamble {
    /// Protocol id (10 for DMP).
    pub protocol_id: u8,
    /// Protocol instance (1 for DMP).
    pub instance: u8,
    /// Major version (0).
    pub major: u8,
    /// Minor version (1).
    pub minor: u8,
}

impl Preamble {
    /// Length on the wire.
    pub const LEN: usize = 8;
    /// The four octets every AMQP protocol header starts with.
    pub const MAGIC: [u8; 4] = *b"AMQP";
    /// The DMP preamble: protocol id 10, instance 1, version 0.1.
    pub const DMP: Self = Self {
        protocol_id: 10,
        instance: 1,
        major: 0,
        minor: 1,
    };

    /// True for the DMP protocol header.
    pub fn is_dmp(&self) -> bool {
        *self == Self::DMP
    }

    /// Decodes a preamble from the start of `buf`: `Ok(None)` while fewer than 8 bytes are
    /// there (unless the bytes present already differ from `AMQP`).
    pub fn decode(buf: &[u8]) -> Result<Option<(Self, usize)>, DmpError> {
        let known = buf.len().min(Self::MAGIC.len());
        if let Some(bad) = (0..known).find(|&i| buf.get(i) != Self::MAGIC.get(i)) {
            return Err(DmpError::at(bad, DmpErrorKind::NotAmqp));
        }
        let Some(&[_, _, _, _, protocol_id, instance, major, minor]) = buf.first_chunk::<8>()
        else {
            return Ok(None);
        };
        let preamble = Self {
            protocol_id,
            instance,
            major,
            minor,
        };
        Ok(Some((preamble, Self::LEN)))
    }

    /// Writes the 8 octets.
    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_slice(&Self::MAGIC);
        buf.put_slice(&[self.protocol_id, self.instance, self.major, self.minor]);
    }
}

impl Default for Preamble {
    fn default() -> Self {
        Self::DMP
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dmp_preamble_bytes() {
        let mut out = Vec::new();
        Preamble::DMP.encode(&mut out);
        assert_eq!(out, hex::decode("414d51500a010001").unwrap());
        assert_eq!(Preamble::decode(&out), Ok(Some((Preamble::DMP, 8))));
    }

    #[test]
    fn partial_preamble_needs_more_bytes() {
        assert_eq!(Preamble::decode(b""), Ok(None));
        assert_eq!(Preamble::decode(b"AMQ"), Ok(None));
        assert_eq!(Preamble::decode(b"AMQP\x0a\x01\x00"), Ok(None));
    }

    #[test]
    fn wrong_magic_is_rejected_at_its_byte() {
        assert_eq!(
            Preamble::decode(b"AMX"),
            Err(DmpError::at(2, DmpErrorKind::NotAmqp))
        );
        assert_eq!(
            Preamble::decode(b"HTTP/1.1"),
            Err(DmpError::at(0, DmpErrorKind::NotAmqp))
        );
    }

    #[test]
    fn foreign_versions_decode_but_are_not_dmp() {
        let (p, _) = Preamble::decode(b"AMQP\x00\x00\x09\x01").unwrap().unwrap();
        assert!(!p.is_dmp());
    }
}
