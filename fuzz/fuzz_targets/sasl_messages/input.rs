//! The SASL fuzz target's input: a setup byte, then operations by selector byte, each
//! followed by its operands, read as zero past the end so that every input is a whole
//! program.

/// The connection both sides run over, from the setup byte.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Setup {
    /// Bit 0: the server accepts anonymous clients.
    pub(crate) allow_anonymous: bool,
    /// Bit 1: the server's end runs TLS (it offers PLAIN and SCRAM-SHA-256-PLUS).
    pub(crate) server_tls: bool,
    /// Bits 2-3: the client's end: 0 clear text, 1 the server's TLS session, 2 and 3
    /// another one (a relay between two TLS sessions).
    pub(crate) client_tls: u8,
    /// Bits 4-5: the peer the server sees: 0 unknown, 1 an IP address, 2 a local process
    /// of the uid EXTERNAL maps, 3 one of another uid.
    pub(crate) peer: u8,
}

impl Setup {
    pub(crate) fn read(input: &mut Input<'_>) -> Setup {
        let b = input.u8();
        Setup {
            allow_anonymous: b & 1 != 0,
            server_tls: b & 2 != 0,
            client_tls: b >> 2 & 3,
            peer: b >> 4 & 3,
        }
    }
}

/// Operations, by selector byte modulo their count. Each message one comes with is read
/// as a [`Source`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Op {
    /// `mechanism, initial response (source)`: a client's `Auth` reaches the server,
    /// which starts a new exchange. Mechanism: 0 the real client's, 1-5 each known name,
    /// 6 a known name in lower case, 7-8 unknown names (the retired HMAC-SHA256 among
    /// them), 9 empty, 10 and up `length u8, bytes` of the input.
    Auth,
    /// `source`: an `AuthResponse` for the server's exchange in progress.
    Response,
    /// `list (source), credentials, identity, password, insist`: a real client reads a
    /// server's list of mechanisms, chooses and starts (its `Auth` becomes the real
    /// client's last message).
    Start,
    /// `source`: an `AuthChallenge` for the real client's exchange.
    Challenge,
    /// `source`: an `AuthResult` OK with this additional data, for the real client's
    /// exchange.
    Result,
}

pub(crate) const OPS: [Op; 5] = [Op::Auth, Op::Response, Op::Start, Op::Challenge, Op::Result];

/// Where a message comes from: a kind byte (modulo 4), then its operands.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Source<'a> {
    /// The real other side's last message, as it is (for the server: the real client's;
    /// for the client: the real server's list, challenge or result).
    Real,
    /// `position u16, xor byte`: that message with one byte changed, or cut at the
    /// position if the xor byte is zero.
    Mutated { at: u16, xor: u8 },
    /// `length u16, bytes`: bytes of the input.
    Raw(&'a [u8]),
    /// A message of the expected shape with chosen parts (see the target: each op reads
    /// its own operands).
    Made,
}

impl<'a> Source<'a> {
    pub(crate) fn read(input: &mut Input<'a>) -> Source<'a> {
        match input.u8() % 4 {
            0 => Source::Real,
            1 => Source::Mutated {
                at: input.u16(),
                xor: input.u8(),
            },
            2 => {
                let len = input.u16();
                Source::Raw(input.bytes(usize::from(len)))
            }
            _ => Source::Made,
        }
    }

    /// Whether the message is the real side's own (changed or not).
    pub(crate) fn is_real(self) -> bool {
        matches!(self, Source::Real | Source::Mutated { .. })
    }

    /// The message, for `Real` and `Mutated` from `real` (empty if there is none yet).
    pub(crate) fn apply(self, real: &[u8]) -> Vec<u8> {
        let mut message = real.to_vec();
        if let Source::Mutated { at, xor } = self
            && !message.is_empty()
        {
            let at = usize::from(at) % message.len();
            if xor == 0 {
                message.truncate(at);
            } else {
                message[at] ^= xor;
            }
        }
        message
    }
}

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
    /// `length u8, bytes`.
    pub(crate) fn short_bytes(&mut self) -> &'a [u8] {
        let len = self.u8();
        self.bytes(usize::from(len))
    }
    /// One of `table`, by the next byte.
    pub(crate) fn pick<T: Copy>(&mut self, table: &[T]) -> T {
        table[usize::from(self.u8()) % table.len()]
    }
}
