//! DSP trunk frames: the framing of the session protocol on every trunk connection of a
//! nexus. The byte-by-byte specification is `docs/PROTOCOL.md` ("DSP trunk frames").
//!
//! # Layout
//!
//! Every frame is a fixed 32-byte big-endian [`FrameHeader`], the payload, and, when the
//! DIGEST flag is set, an 8-byte xxh3-64 digest of the payload as sent:
//!
//! ```text
//!  0  u16 magic 0x4857 "HW"     2 u8 version (1)    3 u8 frame kind
//!  4  u16 flags: COMPRESSED | DIGEST | BACKCHANNEL | ORDERED, others reserved (0)
//!  6  u16 reserved (0)
//!  8  u32 slot id               12 u32 sequence id
//! 16  u64 request id
//! 24  u32 payload length as sent
//! 28  u32 header checksum = low 32 bits of xxh3-64(bytes 0..28)
//! 32  payload ... [u64 digest]
//! ```
//!
//! A receive loop learns the whole frame's length from the header alone
//! ([`peek_header`], [`FrameHeader::frame_len`]), and a header announcing more than the
//! negotiated maximum is rejected right there ([`DspError::TooLong`]), before anything is
//! allocated. Request, Response and ResponseError bodies may be lz4-compressed (`u32`
//! uncompressed length + lz4 block); the encoder keeps the compressed form only if it is
//! smaller.
//!
//! # Decoding and encoding
//!
//! Decoding borrows: a [`Frame`] points into the input (or, for a compressed body, into
//! the decoder's reused scratch buffer); nothing else is copied. Every kind with
//! variable-length fields is generic over how it holds them: [`Frame`] borrows
//! (`&[u8]`, `&str`), and [`Frame::to_shared`] turns it into a [`SharedFrame`] (`Bytes`,
//! `String`) whose bodies share the receive buffer, for a state machine to keep. Encoding works from
//! either and writes into any [`bytes::BufMut`]; [`FrameOf::split`] and [`encode_header`]
//! let a large body go out by vectored write from where it lies.
//!
//! ```
//! use hawser_wire::dsp::*;
//!
//! // Encode a request on the fore channel, with digest and lz4 when it pays.
//! let mut encoder = FrameEncoder::new(EncodeOptions { digest: true, compression: Compression::Lz4 });
//! let body = vec![b'a'; 4096];
//! let request = Frame::Request(Request {
//!     channel: Channel::Fore,
//!     slot: 3,
//!     sequence: 17,
//!     request_id: 1001,
//!     exchange: 42,
//!     order: None,
//!     body: &body,
//! });
//! let mut wire = Vec::new();
//! let header = encoder.encode(&request, &mut wire)?;
//! assert!(header.is_compressed() && header.has_digest());
//! assert!(wire.len() < body.len());
//!
//! // Decode it from a stream that arrives in two pieces.
//! let mut decoder = FrameDecoder::new(1 << 20);
//! assert!(decoder.decode(&wire[..10])?.is_none()); // need more bytes
//! let header = peek_header(&wire, 1 << 20)?.expect("32 bytes are there");
//! assert_eq!(header.frame_len(), wire.len());
//! let (frame, consumed) = decoder.decode(&wire)?.expect("whole frame");
//! assert_eq!(consumed, wire.len());
//! assert_eq!(frame, request);
//! # Ok::<(), DspError>(())
//! ```

mod codec;
mod error;
mod frame;
mod header;
mod kind;
mod share;
mod sink;
mod types;

#[cfg(test)]
mod tests;

pub use codec::{
    Compression, EncodeOptions, FrameDecoder, FrameEncoder, HANDSHAKE_MAX_PAYLOAD,
    MIN_COMPRESS_LEN, SplitFrame, compress_body, decode_frame, decompress_body, payload_digest,
};
pub use error::DspError;
pub use frame::{Frame, FrameOf, SharedFrame};
pub use header::{
    DIGEST_LEN, Flags, FrameHeader, FrameKind, HEADER_LEN, MAGIC, VERSION, encode_header,
    parse_header, peek_header,
};
pub use kind::{
    Auth, AuthChallenge, AuthResponse, AuthResult, BindAck, BindConnection, Cancel, Credit, GoAway,
    Hello, NexusCreate, NexusCreated, NexusDestroy, NexusDestroyed, NexusRecover, NexusRecovered,
    Ping, Pong, Request, Response, ResponseError,
};
pub use types::{
    Capabilities, Channel, ChannelAttrs, GoAwayCode, NexusFeatures, NexusId, Role, Status,
    identity_route, max_payload_after_bind,
};
