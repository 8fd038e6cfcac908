//! The authentication tag of a datagram: a keyed XXH3-64 of its header and data, from a
//! session key the server draws and tells the client over the (authenticated) nexus. A
//! datagram whose tag does not match (spoofed, corrupted, another session's) is dropped.
//!
//! XXH3 is not a cryptographic MAC: it stops blind spoofing and corruption, not a peer
//! that sees the traffic and works at forging it (over an encrypted nexus an AEAD tag is
//! the stronger choice, see `docs/PROTOCOL.md`).

use std::hash::Hasher;

use twox_hash::xxhash3_64::{RawHasher, SecretBuffer};

/// Bytes of the tag after the data.
pub const TAG_LEN: usize = 8;
/// Inputs up to this long XXH3 hashes in one piece.
const SHORT_INPUT: usize = 240;
/// Bytes of the XXH3 secret expanded from the key (at least XXH3's 136).
const SECRET_LEN: usize = 192;

/// The session's datagram key.
#[derive(Clone)]
pub struct DatagramKey {
    secret: [u8; SECRET_LEN],
}

impl std::fmt::Debug for DatagramKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DatagramKey(..)")
    }
}

impl DatagramKey {
    /// The key of a session from its 32 random bytes.
    pub fn new(key: [u8; 32]) -> Self {
        let mut secret = [0u8; SECRET_LEN];
        for (i, chunk) in secret.chunks_mut(16).enumerate() {
            let mut input = [0u8; 33];
            input[..32].copy_from_slice(&key);
            input[32] = i as u8;
            chunk.copy_from_slice(&twox_hash::XxHash3_128::oneshot(&input).to_le_bytes());
        }
        DatagramKey { secret }
    }

    fn tag(&self, bytes: &[u8]) -> u64 {
        // The secret is 192 bytes, over XXH3's minimum: this cannot fail.
        twox_hash::XxHash3_64::oneshot_with_secret(&self.secret, bytes).unwrap_or(0)
    }

    /// The tag of a datagram whose header and data lie apart (sent gathered): what
    /// sealing them contiguous would append.
    pub fn tag_of_parts(&self, header: &[u8], data: &[u8]) -> [u8; TAG_LEN] {
        let total = header.len() + data.len();
        if total <= SHORT_INPUT {
            // XXH3's streaming form hashes short inputs with its default secret.
            let mut whole = [0u8; SHORT_INPUT];
            whole[..header.len()].copy_from_slice(header);
            whole[header.len()..total].copy_from_slice(data);
            return self.tag(&whole[..total]).to_be_bytes();
        }
        // The secret is 192 bytes, over XXH3's minimum: this cannot fail.
        let Ok(secret) = SecretBuffer::new(0, &self.secret) else {
            return [0; TAG_LEN];
        };
        let mut hasher = RawHasher::new(secret);
        hasher.write(header);
        hasher.write(data);
        hasher.finish().to_be_bytes()
    }

    /// Appends the tag of everything in `packet` (header and data).
    pub fn seal(&self, packet: &mut Vec<u8>) {
        let len = packet.len();
        packet.resize(len + TAG_LEN, 0);
        self.seal_in_place(packet, len);
    }

    /// Writes the tag of `packet[..len]` (header and data) at `packet[len..]`; the length
    /// with the tag. `packet` must have [`TAG_LEN`] bytes of room after `len`.
    pub fn seal_in_place(&self, packet: &mut [u8], len: usize) -> usize {
        let tag = self.tag(&packet[..len]);
        packet[len..len + TAG_LEN].copy_from_slice(&tag.to_be_bytes());
        len + TAG_LEN
    }

    /// The packet without its tag, if the tag matches.
    pub fn open<'a>(&self, packet: &'a [u8]) -> Option<&'a [u8]> {
        let split = packet.len().checked_sub(TAG_LEN)?;
        let (body, tag) = packet.split_at(split);
        let tag = u64::from_be_bytes(tag.try_into().ok()?);
        (self.tag(body) == tag).then_some(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_packet_opens_and_a_changed_one_does_not() {
        let key = DatagramKey::new([7; 32]);
        let mut packet = b"\x00\x00\x10\x00data".to_vec();
        key.seal(&mut packet);
        assert_eq!(key.open(&packet), Some(&b"\x00\x00\x10\x00data"[..]));
        let mut flipped = packet.clone();
        flipped[5] ^= 1;
        assert_eq!(key.open(&flipped), None);
        assert_eq!(
            DatagramKey::new([8; 32]).open(&packet),
            None,
            "another session's key"
        );
        assert_eq!(key.open(b"short"), None);
    }

    #[test]
    fn the_tag_of_parts_is_the_tag_of_the_whole() {
        let key = DatagramKey::new([3; 32]);
        for len in [1usize, 100, 236, 237, 300, 1460, 64000] {
            let data: Vec<u8> = (0..len).map(|i| (i * 13 % 251) as u8).collect();
            let header = [0u8, 0, 0x10, 0];
            let mut packet = header.to_vec();
            packet.extend_from_slice(&data);
            key.seal(&mut packet);
            assert_eq!(
                key.tag_of_parts(&header, &data)[..],
                packet[packet.len() - TAG_LEN..],
                "{len} bytes"
            );
        }
    }
}
