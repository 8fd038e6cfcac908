//! Connection-level decoding of a captured direct connection, one direction at a time.

use bytes::BufMut;

use super::command::Command;
use super::envelope::{DEFAULT_MAX_MESSAGE_SIZE, Message};
use super::error::{DmpEncodeError, DmpError, DmpErrorKind};
use super::preamble::Preamble;
use super::response::Response;

/// Which side of a direct connection a byte stream comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Client to server: preamble, lease command, then messages (Put).
    ClientToServer,
    /// Server to client: greeting response, lease response, then messages (Get).
    ServerToClient,
}

/// One decoded unit of a direct connection.
#[allow(
    clippy::large_enum_variant,
    reason = "decoded one at a time on the stack; boxing would allocate per message"
)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Item<'a> {
    /// The client's protocol header.
    Preamble(Preamble),
    /// A client command (the lease).
    Command(Command<'a>),
    /// A server response.
    Response(Response<'a>),
    /// A message or a null message.
    Message(Message<'a>),
}

impl Item<'_> {
    /// Writes the item in its canonical wire form.
    pub fn encode(&self, buf: &mut impl BufMut) -> Result<(), DmpEncodeError> {
        match self {
            Self::Preamble(p) => p.encode(buf),
            Self::Command(c) => c.encode(buf),
            Self::Response(r) => r.encode(buf),
            Self::Message(m) => return m.encode(buf),
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Detect,
    Preamble,
    Lease,
    Greeting,
    LeaseReply,
    Messages,
    Refused,
}

/// Decodes the bytes of one direction of a direct connection, item by item.
///
/// Sans-IO: hand it the unconsumed bytes, it answers `Ok(Some((item, consumed)))`,
/// `Ok(None)` when more bytes are needed (nothing is consumed), or an error whose offset
/// counts from the start of the stream. The caller drops `consumed` bytes and calls again.
#[derive(Debug, Clone)]
pub struct StreamDecoder {
    state: State,
    direction: Option<Direction>,
    position: usize,
    max_message_size: u32,
}

impl StreamDecoder {
    /// A decoder for a stream whose direction is known.
    pub fn new(direction: Direction) -> Self {
        let state = match direction {
            Direction::ClientToServer => State::Preamble,
            Direction::ServerToClient => State::Greeting,
        };
        Self {
            state,
            direction: Some(direction),
            position: 0,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
        }
    }

    /// A decoder that tells the direction from the first bytes: a stream starting with
    /// `AMQP` is client to server, anything else server to client (a response short string
    /// starts with a length octet and a digit, never with `AM`).
    pub fn detect() -> Self {
        Self {
            state: State::Detect,
            direction: None,
            ..Self::new(Direction::ClientToServer)
        }
    }

    /// Sets the largest message size accepted (default [`DEFAULT_MAX_MESSAGE_SIZE`]).
    pub fn with_max_message_size(mut self, max: u32) -> Self {
        self.max_message_size = max;
        self
    }

    /// The direction, once known.
    pub fn direction(&self) -> Option<Direction> {
        self.direction
    }

    /// Stream offset of the next byte to decode.
    pub fn position(&self) -> usize {
        self.position
    }

    /// Decodes the next item from `buf` (the unconsumed bytes of the stream).
    pub fn decode<'a>(&mut self, buf: &'a [u8]) -> Result<Option<(Item<'a>, usize)>, DmpError> {
        let base = self.position;
        let at = |e: DmpError| DmpError::at(e.offset + base, e.kind);
        if self.state == State::Detect {
            let known = buf.len().min(Preamble::MAGIC.len());
            if known == 0 {
                return Ok(None);
            }
            let (state, direction) = if buf.get(..known) == Preamble::MAGIC.get(..known) {
                if known < Preamble::MAGIC.len() {
                    return Ok(None);
                }
                (State::Preamble, Direction::ClientToServer)
            } else {
                (State::Greeting, Direction::ServerToClient)
            };
            self.state = state;
            self.direction = Some(direction);
        }
        let decoded =
            match self.state {
                // Resolved above; answering "need more" keeps this arm panic-free.
                State::Detect => Ok(None),
                State::Preamble => Preamble::decode(buf)
                    .map(|o| o.map(|(p, n)| (Item::Preamble(p), n, State::Lease))),
                State::Lease => Command::decode(buf)
                    .map(|o| o.map(|(c, n)| (Item::Command(c), n, State::Messages))),
                State::Greeting | State::LeaseReply => Response::decode(buf).map(|o| {
                    o.map(|(r, n)| {
                        let next = match (self.state, r.code().is_success()) {
                            (_, false) => State::Refused,
                            (State::Greeting, true) => State::LeaseReply,
                            _ => State::Messages,
                        };
                        (Item::Response(r), n, next)
                    })
                }),
                State::Messages => Message::decode(buf, self.max_message_size)
                    .map(|o| o.map(|(m, n)| (Item::Message(m), n, State::Messages))),
                State::Refused if buf.is_empty() => Ok(None),
                State::Refused => Err(DmpError::at(0, DmpErrorKind::DataAfterRefusal)),
            };
        match decoded.map_err(at)? {
            None => Ok(None),
            Some((item, consumed, next)) => {
                self.state = next;
                self.position += consumed;
                Ok(Some((item, consumed)))
            }
        }
    }
}
