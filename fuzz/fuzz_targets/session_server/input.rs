//! The session server fuzz target's input: operations by selector byte, and their
//! operands, read as zero past the end so that every input is a whole program.

/// Operations, by selector byte modulo their count.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Op {
    /// `nonce fill, flags (bit 0: read through lent buffers, bit 1: has a peer address)`.
    Accept,
    /// `conn, capabilities, versions, nonce fill, encoding`: a Hello.
    Hello,
    /// `conn, identity and mechanism, encoding`: an Auth made up here: ANONYMOUS, a
    /// SCRAM-SHA-256 client-first, the retired HMAC-SHA256 or PLAIN.
    AuthAnonymous,
    /// `conn, identity, flags (bit 0: wrong password, bit 1: digest, bit 2: lz4), nonce
    /// fill`: Hello, Auth and AuthResponse produced by a real client with SCRAM-SHA-256.
    AuthScram,
    /// `conn, identity, fore and back attributes (2 bytes each), features, encoding`.
    NexusCreate,
    /// `conn, which (Bind / Recover / Destroy), nexus, identity, encoding`.
    Nexus,
    /// `conn, channel+order flags, slot, sequence mode, exchange, body, encoding`.
    Request,
    /// `conn, kind (Response / ResponseError / Cancel), slot, sequence, request, body,
    /// encoding`: answers to the server's backchannel calls (or lies about them).
    Answer,
    /// `conn, kind, a few operand bytes, encoding`: every other frame kind, including
    /// those only a server sends.
    Other,
    /// `conn, length u16, bytes`: raw bytes.
    Raw,
    /// `conn, position u16, bit`: flips a bit of the bytes queued and not delivered.
    Corrupt,
    /// `conn, length u16` (0: all): delivers queued bytes.
    Deliver,
    /// `exponent`: advances time by 2^exponent ms (or to the next deadline), runs timers.
    Advance,
    /// `which, kind, body length`: answers a request the application holds.
    Respond,
    /// `conn`: the transport failed.
    Lost,
    /// `nexus, body length, flags (bit 0: ordered, bit 1: uncompressed, bit 2: then
    /// cancel)`: a backchannel call.
    Call,
    /// `nexus, slots`: lowers the client's fore-channel credit.
    Credit,
}

impl Op {
    /// Whether the operation calls the server: the others only queue bytes on a
    /// connection, so there is nothing new to check after them.
    pub(crate) fn reaches_server(self) -> bool {
        !matches!(
            self,
            Op::Hello
                | Op::AuthAnonymous
                | Op::NexusCreate
                | Op::Nexus
                | Op::Request
                | Op::Answer
                | Op::Other
                | Op::Raw
                | Op::Corrupt
        )
    }
}

pub(crate) const OPS: [Op; 17] = [
    Op::Accept,
    Op::Hello,
    Op::AuthAnonymous,
    Op::AuthScram,
    Op::NexusCreate,
    Op::Nexus,
    Op::Request,
    Op::Answer,
    Op::Other,
    Op::Raw,
    Op::Corrupt,
    Op::Deliver,
    Op::Advance,
    Op::Respond,
    Op::Lost,
    Op::Call,
    Op::Credit,
];

/// Reads operands; past the end everything is zero, so every input is a whole program.
pub(crate) struct Input<'a>(pub(crate) &'a [u8]);

impl<'a> Input<'a> {
    pub(crate) fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    pub(crate) fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }
    pub(crate) fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }
}
