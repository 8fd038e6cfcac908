//! One direction of a link, seen from one side: the reader's or the writer's private
//! indices, what it publishes, and the checks every index the peer publishes must pass.
//!
//! Indices are free-running byte counters (u64: at 10 GB/s they wrap after 58 years, so
//! they are treated as never wrapping). Each side keeps its own index privately and only
//! ever *stores* it into the region; the peer's index is loaded once per check and
//! validated against what this side knows for certain:
//!
//! - a reader has consumed `c` bytes and last saw the peer's produced index at `s`
//!   (`c <= s`): a new produced index `p` is valid iff `s <= p` (it never goes back) and
//!   `p - c <= capacity` (the ring cannot hold more);
//! - a writer has produced `p` bytes and last saw the peer's consumed index at `s`
//!   (`s <= p`): a new consumed index `c` is valid iff `s <= c <= p`.
//!
//! A violation is a [`Corruption`]; the connection closes on it. Nothing else the peer
//! writes into the region is ever read as an index.

use std::fmt;
use std::io;

use bytes::BytesMut;

use super::mapping::Mapping;

/// How a peer broke the ring's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Corruption {
    /// Its produced index went back.
    ProducedBackwards { index: u64, seen: u64 },
    /// Its produced index claims more unread bytes than the ring holds.
    Overfull {
        index: u64,
        consumed: u64,
        capacity: u64,
    },
    /// Its consumed index went back.
    ConsumedBackwards { index: u64, seen: u64 },
    /// Its consumed index is past what we produced.
    ConsumedAhead { index: u64, produced: u64 },
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Corruption::ProducedBackwards { index, seen } => {
                write!(f, "its produced index went back from {seen} to {index}")
            }
            Corruption::Overfull {
                index,
                consumed,
                capacity,
            } => write!(
                f,
                "its produced index {index} is {} bytes past the {consumed} we consumed, \
                 more than the ring's {capacity}",
                index - consumed
            ),
            Corruption::ConsumedBackwards { index, seen } => {
                write!(f, "its consumed index went back from {seen} to {index}")
            }
            Corruption::ConsumedAhead { index, produced } => write!(
                f,
                "its consumed index {index} is past the {produced} bytes we produced"
            ),
        }
    }
}

impl Corruption {
    /// The error a connection closes with.
    pub(crate) fn into_io_error(self) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("shared-memory peer corrupted the ring: {self}"),
        )
    }
}

/// Validates a peer's produced index `produced` for a reader that consumed `consumed`
/// bytes and last saw `seen` (`consumed <= seen`). Returns the bytes readable.
pub(crate) fn check_produced(
    produced: u64,
    consumed: u64,
    seen: u64,
    capacity: u64,
) -> Result<u64, Corruption> {
    debug_assert!(consumed <= seen);
    if produced < seen {
        return Err(Corruption::ProducedBackwards {
            index: produced,
            seen,
        });
    }
    let unread = produced - consumed;
    if unread > capacity {
        return Err(Corruption::Overfull {
            index: produced,
            consumed,
            capacity,
        });
    }
    Ok(unread)
}

/// Validates a peer's consumed index `consumed` for a writer that produced `produced`
/// bytes and last saw `seen` (`seen <= produced <= seen + capacity`). Returns the room.
pub(crate) fn check_consumed(
    consumed: u64,
    produced: u64,
    seen: u64,
    capacity: u64,
) -> Result<u64, Corruption> {
    debug_assert!(seen <= produced && produced - seen <= capacity);
    if consumed < seen {
        return Err(Corruption::ConsumedBackwards {
            index: consumed,
            seen,
        });
    }
    if consumed > produced {
        return Err(Corruption::ConsumedAhead {
            index: consumed,
            produced,
        });
    }
    Ok(capacity - (produced - consumed))
}

/// Where a ring and its two index words are, and its size (the private copy: the header
/// is never read again after the handshake).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RingPlace {
    pub(crate) data: usize,
    pub(crate) capacity: usize,
    pub(crate) produced_at: usize,
    pub(crate) consumed_at: usize,
}

impl RingPlace {
    /// The (offset, length) pieces of `n` bytes starting at counter `at`: one, or two
    /// when they wrap around the end.
    fn pieces(&self, at: u64, n: usize) -> [(usize, usize); 2] {
        let pos = (at & (self.capacity as u64 - 1)) as usize;
        let first = n.min(self.capacity - pos);
        [(self.data + pos, first), (self.data, n - first)]
    }
}

/// The reading end of a ring.
#[derive(Debug)]
pub(crate) struct Reader {
    place: RingPlace,
    consumed: u64,
    seen: u64,
}

impl Reader {
    pub(crate) fn new(place: RingPlace) -> Self {
        debug_assert!(place.capacity.is_power_of_two());
        Reader {
            place,
            consumed: 0,
            seen: 0,
        }
    }

    /// Loads and validates the peer's produced index: the bytes readable now.
    #[inline]
    pub(crate) fn available(&mut self, map: &Mapping) -> Result<u64, Corruption> {
        let produced = map.load_index(self.place.produced_at);
        let unread = check_produced(
            produced,
            self.consumed,
            self.seen,
            self.place.capacity as u64,
        )?;
        self.seen = produced;
        Ok(unread)
    }

    /// Whether the peer published anything not consumed yet. Unvalidated: a corrupt
    /// index counts as something, for [`available`](Self::available) to catch.
    #[inline]
    pub(crate) fn maybe_readable(&self, map: &Mapping) -> bool {
        map.load_index(self.place.produced_at) != self.consumed
    }

    fn take(&mut self, n: usize) -> [(usize, usize); 2] {
        assert!(
            n as u64 <= self.seen - self.consumed,
            "reading past what was validated"
        );
        let pieces = self.place.pieces(self.consumed, n);
        self.consumed += n as u64;
        pieces
    }

    /// Copies the next `dst.len()` bytes (at most what [`available`](Self::available)
    /// last returned, less what was read since) into `dst`.
    pub(crate) fn read(&mut self, map: &Mapping, dst: &mut [u8]) {
        let [(a, la), (b, lb)] = self.take(dst.len());
        map.read(a, &mut dst[..la]);
        map.read(b, &mut dst[la..la + lb]);
    }

    /// Appends the next `n` bytes to `dst` (which has room for them).
    pub(crate) fn read_append(&mut self, map: &Mapping, n: usize, dst: &mut BytesMut) {
        let [(a, la), (b, lb)] = self.take(n);
        map.read_append(a, la, dst);
        map.read_append(b, lb, dst);
    }

    /// Tells the peer how far we consumed (the room it may fill again).
    #[inline]
    pub(crate) fn publish(&self, map: &Mapping) {
        map.store_index(self.place.consumed_at, self.consumed);
    }
}

/// The writing end of a ring.
#[derive(Debug)]
pub(crate) struct Writer {
    place: RingPlace,
    produced: u64,
    seen: u64,
}

impl Writer {
    pub(crate) fn new(place: RingPlace) -> Self {
        debug_assert!(place.capacity.is_power_of_two());
        Writer {
            place,
            produced: 0,
            seen: 0,
        }
    }

    /// Loads and validates the peer's consumed index: the bytes that fit now.
    #[inline]
    pub(crate) fn room(&mut self, map: &Mapping) -> Result<u64, Corruption> {
        let consumed = map.load_index(self.place.consumed_at);
        let room = check_consumed(
            consumed,
            self.produced,
            self.seen,
            self.place.capacity as u64,
        )?;
        self.seen = consumed;
        Ok(room)
    }

    /// Whether there may be room: some is known, or the peer moved its index (unvalidated,
    /// as [`Reader::maybe_readable`]).
    #[inline]
    pub(crate) fn maybe_room(&self, map: &Mapping) -> bool {
        self.produced - self.seen < self.place.capacity as u64
            || map.load_index(self.place.consumed_at) != self.seen
    }

    /// Copies `src` into the ring (at most the room [`room`](Self::room) last returned,
    /// less what was written since).
    pub(crate) fn write(&mut self, map: &Mapping, src: &[u8]) {
        assert!(
            self.produced + src.len() as u64 <= self.seen + self.place.capacity as u64,
            "writing past the validated room"
        );
        let [(a, la), (b, lb)] = self.place.pieces(self.produced, src.len());
        map.write(a, &src[..la]);
        map.write(b, &src[la..la + lb]);
        self.produced += src.len() as u64;
    }

    /// Tells the peer how far we produced.
    #[inline]
    pub(crate) fn publish(&self, map: &Mapping) {
        map.store_index(self.place.produced_at, self.produced);
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use rand_core::{Rng, SeedableRng};
    use rand_xoshiro::Xoshiro256PlusPlus;

    use super::*;

    /// The rule, restated with wide arithmetic so that it cannot share a bug with the
    /// code under test.
    fn produced_ok(p: u64, c: u64, s: u64, cap: u64) -> bool {
        let (p, c, s, cap) = (i128::from(p), i128::from(c), i128::from(s), i128::from(cap));
        p >= s && p - c <= cap
    }

    fn consumed_ok(c: u64, p: u64, s: u64) -> bool {
        s <= c && c <= p
    }

    /// An interesting u64 near `base`: the value itself, neighbours, extremes, noise.
    fn near(rng: &mut Xoshiro256PlusPlus, base: u64, cap: u64) -> u64 {
        match rng.next_u32() % 8 {
            0 => base,
            1 => base.wrapping_add(1),
            2 => base.wrapping_sub(1),
            3 => base.wrapping_add(cap),
            4 => base.wrapping_add(cap + 1),
            5 => u64::MAX - u64::from(rng.next_u32() % 4),
            6 => u64::from(rng.next_u32() % 4),
            _ => rng.next_u64(),
        }
    }

    #[test]
    fn index_checks_accept_exactly_the_valid_window_under_many_seeds() {
        for seed in 0..64u64 {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
            let cap = 1u64 << (16 + rng.next_u32() % 11);
            // A state reached honestly: consumed <= seen <= consumed + cap, and the
            // writer's produced <= seen + cap.
            for _ in 0..2_000 {
                let consumed = rng.next_u64() >> (rng.next_u32() % 64);
                let seen = consumed.saturating_add(rng.next_u64() % (cap + 1));
                let p = near(&mut rng, seen, cap);
                match check_produced(p, consumed, seen, cap) {
                    Ok(n) => {
                        assert!(produced_ok(p, consumed, seen, cap), "{p} {consumed} {seen}");
                        assert_eq!(n, p - consumed);
                        assert!(n <= cap);
                    }
                    Err(e) => {
                        assert!(
                            !produced_ok(p, consumed, seen, cap),
                            "{p} {consumed} {seen}"
                        );
                        assert!(e.clone().into_io_error().to_string().contains("corrupted"));
                    }
                }
                let wseen = rng.next_u64() >> (rng.next_u32() % 64);
                let produced = wseen.saturating_add(rng.next_u64() % (cap + 1));
                let c = near(&mut rng, wseen, cap);
                match check_consumed(c, produced, wseen, cap) {
                    Ok(room) => {
                        assert!(consumed_ok(c, produced, wseen));
                        assert_eq!(room, cap - (produced - c));
                    }
                    Err(_) => assert!(!consumed_ok(c, produced, wseen)),
                }
            }
        }
    }

    #[test]
    fn index_check_edges() {
        let cap = 1 << 16;
        assert_eq!(check_produced(cap, 0, 0, cap), Ok(cap));
        assert!(matches!(
            check_produced(cap + 1, 0, 0, cap),
            Err(Corruption::Overfull { .. })
        ));
        assert!(matches!(
            check_produced(5, 0, 6, cap),
            Err(Corruption::ProducedBackwards { .. })
        ));
        assert!(check_produced(u64::MAX, 0, 0, cap).is_err());
        assert_eq!(check_consumed(10, 10, 0, cap), Ok(cap));
        assert_eq!(check_consumed(0, cap, 0, cap), Ok(0));
        assert!(matches!(
            check_consumed(11, 10, 0, cap),
            Err(Corruption::ConsumedAhead { .. })
        ));
        assert!(matches!(
            check_consumed(3, 10, 4, cap),
            Err(Corruption::ConsumedBackwards { .. })
        ));
        assert!(check_consumed(u64::MAX, 10, 0, cap).is_err());
    }

    fn region(len: usize) -> Mapping {
        let fd = crate::sys::memfd_create(c"hawser-test").unwrap();
        crate::sys::ftruncate(fd.as_fd(), len as u64).unwrap();
        Mapping::map(fd.as_fd(), len).unwrap()
    }

    fn place(capacity: usize) -> RingPlace {
        RingPlace {
            data: 4096,
            capacity,
            produced_at: 128,
            consumed_at: 256,
        }
    }

    #[test]
    fn a_writer_and_a_reader_move_a_stream_through_a_small_ring_intact() {
        let cap = 1 << 12;
        let map = region(4096 + cap);
        let (mut w, mut r) = (Writer::new(place(cap)), Reader::new(place(cap)));
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
        let mut stream = vec![0u8; 1 << 20];
        rng.fill_bytes(&mut stream);
        let (mut sent, mut back) = (0, Vec::with_capacity(stream.len()));
        while back.len() < stream.len() {
            let room = w.room(&map).unwrap() as usize;
            let n = room
                .min(stream.len() - sent)
                .min(rng.next_u32() as usize % 3000);
            w.write(&map, &stream[sent..sent + n]);
            sent += n;
            w.publish(&map);
            let avail = r.available(&map).unwrap() as usize;
            let m = avail.min(rng.next_u32() as usize % 3000);
            if m.is_multiple_of(2) {
                let mut buf = vec![0u8; m];
                r.read(&map, &mut buf);
                back.extend_from_slice(&buf);
            } else {
                let mut buf = BytesMut::with_capacity(m);
                r.read_append(&map, m, &mut buf);
                back.extend_from_slice(&buf);
            }
            r.publish(&map);
        }
        assert!(back == stream);
    }

    #[test]
    #[should_panic(expected = "past the validated room")]
    fn a_writer_never_writes_past_the_room_it_validated() {
        let cap = 1 << 12;
        let map = region(4096 + cap);
        let mut w = Writer::new(place(cap));
        w.write(&map, &vec![1u8; cap]);
        w.write(&map, &[1]);
    }
}
