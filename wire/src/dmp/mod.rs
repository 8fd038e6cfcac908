//! DMP direct messages: the byte format of a direct connection forked off a nexus.
//!
//! A direct connection carries, client to server: the 8-octet [`Preamble`] (`AMQP` +
//! protocol 10, instance 1, version 0.1), one [`Command`] (the lease, a short string), then
//! [`Message`]s (Put). Server to client: two [`Response`]s (`200 OK DMP/0.1`, then the
//! lease verdict), then messages (Get). Either side may send [`Message::Null`] (four zero
//! octets) as a heartbeat. The bytes are specified in `docs/PROTOCOL.md` ("DMP direct messages").
//!
//! Every decoder borrows from its input (a message body is a slice of the received bytes)
//! and answers `Ok(None)` when more bytes are needed. [`StreamDecoder`] walks a whole
//! direction of a connection, for captures and for the engine's direct-connection reader.
//!
//! [`wiring`] is the other half of DMP: the request/response bodies a client sends over its
//! nexus to declare, delete and bind sinks and feeds and to obtain the lease a direct
//! connection starts with (the seed's `Direct.Put` / `Direct.Get`).
//!
//! ```
//! use hawser_wire::dmp::{
//!     Command, Direction, Envelope, Item, Message, Preamble, ShortStr, StreamDecoder,
//! };
//!
//! // A client opening a Put connection and sending one message.
//! let mut wire = Vec::new();
//! Preamble::DMP.encode(&mut wire);
//! Command { text: ShortStr::text("lease-42").unwrap() }.encode(&mut wire);
//! let envelope = Envelope {
//!     exchange: ShortStr::text("somesink").unwrap(),
//!     body: b"hello",
//!     ..Envelope::default()
//! };
//! Message::Envelope(envelope).encode(&mut wire).unwrap();
//! Message::Null.encode(&mut wire).unwrap();
//!
//! let mut decoder = StreamDecoder::detect();
//! let mut rest = &wire[..];
//! let mut reencoded = Vec::new();
//! while let Some((item, consumed)) = decoder.decode(rest).unwrap() {
//!     item.encode(&mut reencoded).unwrap();
//!     if let Item::Message(Message::Envelope(e)) = item {
//!         assert_eq!(e.body, b"hello"); // borrowed from `wire`, not copied
//!     }
//!     rest = &rest[consumed..];
//! }
//! assert!(rest.is_empty());
//! assert_eq!(decoder.direction(), Some(Direction::ClientToServer));
//! assert_eq!(reencoded, wire);
//! ```

mod command;
mod envelope;
mod error;
mod preamble;
mod properties;
mod response;
mod short_str;
mod stream;
#[cfg(test)]
mod tests;
pub mod wiring;

pub use command::Command;
pub use envelope::{DEFAULT_MAX_MESSAGE_SIZE, Envelope, MAX_BODY_LEN, Message, PublishOptions};
pub use error::{DmpEncodeError, DmpError, DmpErrorKind};
pub use preamble::Preamble;
pub use properties::{Properties, flag as property_flag};
pub use response::{Response, ResponseCode};
pub use short_str::ShortStr;
pub use stream::{Direction, Item, StreamDecoder};
