//! The layout of a link's shared region and the messages of its rendezvous: sizes,
//! offsets, and the byte encoding of the hellos. Pure data, no I/O.
//!
//! ```text
//! region (memfd, sealed against shrinking and growing)
//!   0     header: magic "HWSRSHMR", version u32, ring bytes u64, header bytes u64
//!   128   client→server produced (u64, the client writes)
//!   256   client→server consumed (u64, the server writes)
//!   384   server→client produced (u64, the server writes)
//!   512   server→client consumed (u64, the client writes)
//!   640   client parked (u32, the client sets, the server swaps to 0)
//!   768   server parked (u32, the server sets, the client swaps to 0)
//!   4096  client→server ring (ring bytes, a power of two)
//!   4096 + ring bytes: server→client ring
//! ```
//!
//! Every word one side writes sits 128 bytes from any the other side writes, so no cache
//! line (nor the pair an adjacent-line prefetcher fetches) is written from both sides.
//! Hellos are 32 bytes, little-endian: the client's carries its eventfd, the server's its
//! memfd and eventfd, the client's acknowledgement nothing.

/// Version of the link (hellos and region layout) this code speaks.
pub(crate) const VERSION: u32 = 1;
/// Smallest ring a client may ask for.
pub(crate) const MIN_RING_BYTES: usize = 64 << 10;
/// Largest ring a client may ask for.
pub(crate) const MAX_RING_BYTES: usize = 64 << 20;
/// Bytes before the first ring: the header and the index words, a page.
pub(crate) const HEADER_BYTES: usize = 4096;
/// Distance between words written by different sides.
const LINE: usize = 128;

/// What the region starts with.
pub(crate) const REGION_MAGIC: [u8; 8] = *b"HWSRSHMR";
/// The header fields the server writes and the client checks once, at the handshake.
pub(crate) const HEADER_FIELDS: usize = 32;

const C2S_PRODUCED: usize = LINE;
const C2S_CONSUMED: usize = 2 * LINE;
const S2C_PRODUCED: usize = 3 * LINE;
const S2C_CONSUMED: usize = 4 * LINE;
const CLIENT_PARKED: usize = 5 * LINE;
const SERVER_PARKED: usize = 6 * LINE;

/// Whether `n` is a ring size a client may ask for: a power of two in
/// [`MIN_RING_BYTES`, `MAX_RING_BYTES`].
pub(crate) fn ring_bytes_ok(n: u64) -> bool {
    n.is_power_of_two() && (MIN_RING_BYTES as u64..=MAX_RING_BYTES as u64).contains(&n)
}

/// Bytes of a region with rings of `ring_bytes`.
pub(crate) fn region_bytes(ring_bytes: usize) -> usize {
    HEADER_BYTES + 2 * ring_bytes
}

/// The header's fields, as the server writes them at offset 0.
pub(crate) fn header(ring_bytes: usize) -> [u8; HEADER_FIELDS] {
    let mut h = [0u8; HEADER_FIELDS];
    h[..8].copy_from_slice(&REGION_MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&(ring_bytes as u64).to_le_bytes());
    h[24..32].copy_from_slice(&(HEADER_BYTES as u64).to_le_bytes());
    h
}

/// Checks a region's header against what the server's hello announced.
pub(crate) fn check_header(h: &[u8; HEADER_FIELDS], ring_bytes: usize) -> Result<(), String> {
    if h[..8] != REGION_MAGIC {
        return Err("the shared region does not start with the link's magic".into());
    }
    let version = u32::from_le_bytes(h[8..12].try_into().expect("4 bytes"));
    let ring = u64::from_le_bytes(h[16..24].try_into().expect("8 bytes"));
    let header = u64::from_le_bytes(h[24..32].try_into().expect("8 bytes"));
    if version != VERSION || ring != ring_bytes as u64 || header != HEADER_BYTES as u64 {
        return Err(format!(
            "the shared region's header (version {version}, rings of {ring} bytes after \
             {header}) differs from the server's hello (version {VERSION}, rings of \
             {ring_bytes} bytes after {HEADER_BYTES})"
        ));
    }
    Ok(())
}

/// Which end of the link a side is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// Accepted the rendezvous, created the region.
    Server,
    /// Connected to the rendezvous.
    Client,
}

/// Where one side finds the rings and words it reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Offsets {
    pub(crate) rx_ring: usize,
    /// The peer's produced index of the ring we read.
    pub(crate) rx_produced: usize,
    /// Our consumed index of the ring we read.
    pub(crate) rx_consumed: usize,
    pub(crate) tx_ring: usize,
    /// Our produced index of the ring we write.
    pub(crate) tx_produced: usize,
    /// The peer's consumed index of the ring we write.
    pub(crate) tx_consumed: usize,
    pub(crate) my_parked: usize,
    pub(crate) peer_parked: usize,
}

impl Role {
    pub(crate) fn offsets(self, ring_bytes: usize) -> Offsets {
        let c2s = HEADER_BYTES;
        let s2c = HEADER_BYTES + ring_bytes;
        match self {
            Role::Server => Offsets {
                rx_ring: c2s,
                rx_produced: C2S_PRODUCED,
                rx_consumed: C2S_CONSUMED,
                tx_ring: s2c,
                tx_produced: S2C_PRODUCED,
                tx_consumed: S2C_CONSUMED,
                my_parked: SERVER_PARKED,
                peer_parked: CLIENT_PARKED,
            },
            Role::Client => Offsets {
                rx_ring: s2c,
                rx_produced: S2C_PRODUCED,
                rx_consumed: S2C_CONSUMED,
                tx_ring: c2s,
                tx_produced: C2S_PRODUCED,
                tx_consumed: C2S_CONSUMED,
                my_parked: CLIENT_PARKED,
                peer_parked: SERVER_PARKED,
            },
        }
    }
}

/// Bytes of every hello.
pub(crate) const HELLO_BYTES: usize = 32;
const CLIENT_MAGIC: [u8; 8] = *b"HWSRSHMC";
const SERVER_MAGIC: [u8; 8] = *b"HWSRSHMS";
const ACK_MAGIC: [u8; 8] = *b"HWSRSHMA";

/// The client's hello (with its eventfd attached).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClientHello {
    pub(crate) version: u32,
    /// The ring size per direction the client asks for.
    pub(crate) ring_bytes: u64,
}

impl ClientHello {
    pub(crate) fn encode(&self) -> [u8; HELLO_BYTES] {
        let mut m = [0u8; HELLO_BYTES];
        m[..8].copy_from_slice(&CLIENT_MAGIC);
        m[8..12].copy_from_slice(&self.version.to_le_bytes());
        m[16..24].copy_from_slice(&self.ring_bytes.to_le_bytes());
        m
    }

    /// `None` when the magic is not the link's.
    pub(crate) fn decode(m: &[u8; HELLO_BYTES]) -> Option<ClientHello> {
        (m[..8] == CLIENT_MAGIC).then(|| ClientHello {
            version: u32::from_le_bytes(m[8..12].try_into().expect("4 bytes")),
            ring_bytes: u64::from_le_bytes(m[16..24].try_into().expect("8 bytes")),
        })
    }
}

/// Why a server refused a client (the status of its hello; 0 is "accepted").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Refusal {
    /// The client's hello did not start with the link's magic.
    NotAHello = 1,
    /// The client speaks another version.
    Version = 2,
    /// The ring size asked for is not a power of two in range.
    RingSize = 3,
    /// The hello did not carry exactly one eventfd.
    Descriptors = 4,
    /// The server could not set the region up (memory, descriptors).
    Resources = 5,
}

impl Refusal {
    fn from_status(status: u32) -> Option<Refusal> {
        Some(match status {
            1 => Refusal::NotAHello,
            2 => Refusal::Version,
            3 => Refusal::RingSize,
            4 => Refusal::Descriptors,
            5 => Refusal::Resources,
            _ => return None,
        })
    }

    /// Why, in words (completes "the server refused: ...").
    pub(crate) fn describe(status: u32, server_version: u32) -> String {
        match Refusal::from_status(status) {
            Some(Refusal::NotAHello) => "our hello was not a shared-memory link hello".into(),
            Some(Refusal::Version) => format!(
                "it speaks version {server_version} of the shared-memory link, we speak {VERSION}"
            ),
            Some(Refusal::RingSize) => format!(
                "the ring size asked for is not a power of two from {MIN_RING_BYTES} to \
                 {MAX_RING_BYTES} bytes"
            ),
            Some(Refusal::Descriptors) => "our hello did not carry exactly one eventfd".into(),
            Some(Refusal::Resources) => {
                "it could not set up the shared memory (out of memory or descriptors)".into()
            }
            None => format!("status {status}, unknown to this version"),
        }
    }
}

/// The server's hello: accepted (status 0, with its memfd and eventfd attached) or refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ServerHello {
    pub(crate) version: u32,
    pub(crate) status: u32,
    /// The ring size per direction granted.
    pub(crate) ring_bytes: u64,
    /// The memfd's size.
    pub(crate) region_bytes: u64,
}

impl ServerHello {
    pub(crate) fn accepted(ring_bytes: usize) -> ServerHello {
        ServerHello {
            version: VERSION,
            status: 0,
            ring_bytes: ring_bytes as u64,
            region_bytes: region_bytes(ring_bytes) as u64,
        }
    }

    pub(crate) fn refused(why: Refusal) -> ServerHello {
        ServerHello {
            version: VERSION,
            status: why as u32,
            ring_bytes: 0,
            region_bytes: 0,
        }
    }

    pub(crate) fn encode(&self) -> [u8; HELLO_BYTES] {
        let mut m = [0u8; HELLO_BYTES];
        m[..8].copy_from_slice(&SERVER_MAGIC);
        m[8..12].copy_from_slice(&self.version.to_le_bytes());
        m[12..16].copy_from_slice(&self.status.to_le_bytes());
        m[16..24].copy_from_slice(&self.ring_bytes.to_le_bytes());
        m[24..32].copy_from_slice(&self.region_bytes.to_le_bytes());
        m
    }

    /// `None` when the magic is not the link's.
    pub(crate) fn decode(m: &[u8; HELLO_BYTES]) -> Option<ServerHello> {
        (m[..8] == SERVER_MAGIC).then(|| ServerHello {
            version: u32::from_le_bytes(m[8..12].try_into().expect("4 bytes")),
            status: u32::from_le_bytes(m[12..16].try_into().expect("4 bytes")),
            ring_bytes: u64::from_le_bytes(m[16..24].try_into().expect("8 bytes")),
            region_bytes: u64::from_le_bytes(m[24..32].try_into().expect("8 bytes")),
        })
    }
}

/// The client's acknowledgement: it mapped the region and the link is up.
pub(crate) fn ack() -> [u8; HELLO_BYTES] {
    let mut m = [0u8; HELLO_BYTES];
    m[..8].copy_from_slice(&ACK_MAGIC);
    m
}

pub(crate) fn is_ack(m: &[u8; HELLO_BYTES]) -> bool {
    m[..8] == ACK_MAGIC && m[8..].iter().all(|&b| b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hellos_round_trip_and_reject_foreign_magic() {
        let c = ClientHello {
            version: VERSION,
            ring_bytes: 1 << 20,
        };
        assert_eq!(ClientHello::decode(&c.encode()), Some(c));
        let s = ServerHello::accepted(1 << 16);
        assert_eq!(ServerHello::decode(&s.encode()), Some(s));
        assert_eq!(ServerHello::decode(&c.encode()), None);
        assert_eq!(ClientHello::decode(&s.encode()), None);
        assert!(is_ack(&ack()) && !is_ack(&c.encode()));
    }

    #[test]
    fn the_sides_see_each_other_s_words_and_rings_mirrored() {
        let ring = 1 << 16;
        let (s, c) = (Role::Server.offsets(ring), Role::Client.offsets(ring));
        assert_eq!(
            (s.rx_ring, s.rx_produced, s.rx_consumed),
            (c.tx_ring, c.tx_produced, c.tx_consumed)
        );
        assert_eq!(
            (c.rx_ring, c.rx_produced, c.rx_consumed),
            (s.tx_ring, s.tx_produced, s.tx_consumed)
        );
        assert_eq!((s.my_parked, s.peer_parked), (c.peer_parked, c.my_parked));
        let words = [
            s.rx_produced,
            s.rx_consumed,
            s.tx_produced,
            s.tx_consumed,
            s.my_parked,
            s.peer_parked,
        ];
        for (i, a) in words.iter().enumerate() {
            assert!(a % LINE == 0 && *a >= HEADER_FIELDS && a + 8 <= HEADER_BYTES);
            for b in &words[i + 1..] {
                assert!(a.abs_diff(*b) >= LINE);
            }
        }
        assert_eq!(s.tx_ring + ring, region_bytes(ring));
        assert!(check_header(&header(ring), ring).is_ok());
        assert!(check_header(&header(ring), ring * 2).is_err());
    }

    #[test]
    fn ring_sizes_are_powers_of_two_in_range() {
        assert!(ring_bytes_ok(64 << 10) && ring_bytes_ok(64 << 20) && ring_bytes_ok(4 << 20));
        assert!(!ring_bytes_ok(32 << 10) && !ring_bytes_ok(128 << 20) && !ring_bytes_ok(100_000));
        assert!(!ring_bytes_ok(0) && !ring_bytes_ok(u64::MAX));
    }
}
