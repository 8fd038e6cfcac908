//! The `user_data` of every submission: the kind of operation in the top byte, a 24-bit
//! generation, then a 32-bit slot index. A completion finds its connection (socket or
//! shared-memory), listener, socket or file operation by slot; the generation tells a completion of a connection
//! since closed from one of the connection now in its slot.

/// What an operation was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum OpKind {
    Recv = 1,
    Send = 2,
    Connect = 3,
    Accept = 4,
    Doorbell = 5,
    File = 6,
    Cancel = 7,
    UdpRecv = 8,
    UdpSend = 9,
    /// The receive armed on a shared-memory link's rendezvous socket (liveness).
    ShmSocket = 10,
    /// The read armed on a shared-memory link's own eventfd (the peer rang).
    ShmDoorbell = 11,
    /// A write to a shared-memory peer's eventfd (ringing it).
    ShmRing = 12,
    /// Readiness of an accepted connection a routed listener places by its first bytes.
    RoutePoll = 13,
}

/// Generations wrap within 24 bits.
pub(super) const GENERATION_MASK: u32 = 0xFF_FFFF;

#[inline]
pub(super) fn user_data(kind: OpKind, generation: u32, slot: u32) -> u64 {
    (kind as u64) << 56 | (u64::from(generation & GENERATION_MASK)) << 32 | u64::from(slot)
}

/// `(kind, generation, slot)` of a `user_data`.
#[inline]
pub(super) fn decode(ud: u64) -> (u8, u32, u32) {
    (
        (ud >> 56) as u8,
        ((ud >> 32) as u32) & GENERATION_MASK,
        ud as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_round_trips_and_wraps_the_generation() {
        let ud = user_data(OpKind::UdpSend, GENERATION_MASK, u32::MAX);
        assert_eq!(
            decode(ud),
            (OpKind::UdpSend as u8, GENERATION_MASK, u32::MAX)
        );
        let ud = user_data(OpKind::Recv, GENERATION_MASK + 2, 7);
        assert_eq!(decode(ud), (OpKind::Recv as u8, 1, 7));
    }
}
