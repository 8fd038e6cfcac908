//! The session layer's view of DSP trunk frames, and their byte encoding.
//!
//! The state machines speak [`Frame`]. The layout written here follows the DSP trunk frame
//! of `docs/PROTOCOL.md` (32-byte header: magic `HW`, version, kind, flags, slot, sequence
//! id, request id, payload length, header checksum; optional xxh3-64 payload digest) and is
//! meant to be replaced by `hawser_wire::dsp` once that codec lands: only this file knows
//! bytes, so swapping codecs touches nothing else.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use xxhash_rust::xxh3::xxh3_64;

use super::config::ChannelAttributes;
use super::types::{Channel, ExchangeId, NexusId, RequestId};

/// Protocol version spoken by this implementation.
pub(crate) const VERSION: u8 = 1;
/// Length of the fixed header.
pub(crate) const HEADER_LEN: usize = 32;
/// Length of the payload digest trailer.
pub(crate) const DIGEST_LEN: usize = 8;
/// Payload limit before a nexus has negotiated its own.
pub(crate) const HANDSHAKE_MAX_PAYLOAD: u32 = 64 * 1024;
/// Bytes a request payload carries besides the application body (exchange + order).
pub(crate) const REQUEST_OVERHEAD: u32 = 12;
/// Payloads smaller than this are never compressed: the gain would not pay the call.
pub(crate) const COMPRESS_MIN: usize = 512;

const MAGIC: [u8; 2] = *b"HW";
const FLAG_COMPRESSED: u8 = 0x01;
const FLAG_DIGEST: u8 = 0x02;
const FLAG_BACKCHANNEL: u8 = 0x04;
const FLAG_ORDERED: u8 = 0x08;

/// Why bytes are not a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The header does not start with `HW`.
    #[error("bad magic")]
    BadMagic,
    /// A version this implementation does not speak.
    #[error("unsupported frame version {0}")]
    Version(u8),
    /// The header checksum does not match: the header is corrupt.
    #[error("header checksum mismatch")]
    HeaderChecksum,
    /// The payload digest does not match: the payload is corrupt.
    #[error("payload digest mismatch")]
    Digest,
    /// The payload length exceeds the allowed maximum (checked from the header alone).
    #[error("payload of {0} bytes exceeds the limit")]
    TooLarge(u32),
    /// An unknown frame kind.
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// The payload does not match its kind's layout.
    #[error("malformed {0} payload")]
    Malformed(&'static str),
}

/// One trunk frame as the session state machines see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Frame {
    /// Client → server: first frame of a connection.
    Hello {
        version: u8,
        mechanism: u8,
        digest: bool,
        compress: bool,
        nonce: [u8; 16],
        identity: String,
    },
    /// Server → client: the negotiated version and the server's nonce.
    HelloAck {
        version: u8,
        digest: bool,
        compress: bool,
        nonce: [u8; 16],
    },
    /// An authentication step (the proof of either side).
    Auth { proof: Bytes },
    /// Client → server: create a nexus with these proposed channel attributes.
    NexusCreate {
        fore: ChannelAttributes,
        back: ChannelAttributes,
    },
    /// Server → client: the nexus and the negotiated attributes.
    NexusCreated {
        nexus: NexusId,
        fore: ChannelAttributes,
        back: ChannelAttributes,
    },
    /// Client → server: join this connection to a nexus (`recover`: the nexus had lost all
    /// its connections and is being reinstated).
    Bind { nexus: NexusId, recover: bool },
    /// Server → client: the connection is part of the nexus.
    BindAck { nexus: NexusId },
    /// Client → server: destroy the nexus.
    Destroy { nexus: NexusId },
    /// Server → client: the nexus is destroyed.
    DestroyAck { nexus: NexusId },
    /// A request on a channel.
    Request {
        channel: Channel,
        slot: u32,
        seq: u32,
        request: RequestId,
        exchange: ExchangeId,
        /// Position among the initiator's ordered requests (1-based); 0 if unordered.
        order: u64,
        body: Bytes,
    },
    /// A successful response.
    Response {
        channel: Channel,
        slot: u32,
        seq: u32,
        request: RequestId,
        body: Bytes,
    },
    /// A failed response: an encoded remote exception.
    ResponseError {
        channel: Channel,
        slot: u32,
        seq: u32,
        request: RequestId,
        exception: Bytes,
    },
    /// Initiator → responder: cancel a request.
    Cancel {
        channel: Channel,
        slot: u32,
        seq: u32,
        request: RequestId,
    },
    /// Responder → initiator: how many slots the initiator may use now.
    Credit { channel: Channel, slots: u32 },
    /// Liveness probe.
    Ping { token: u64 },
    /// Answer to a ping.
    Pong { token: u64 },
    /// The sender is closing the connection.
    GoAway { code: u16, reason: String },
}

impl Frame {
    /// A short name for errors and logs.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Frame::Hello { .. } => "Hello",
            Frame::HelloAck { .. } => "HelloAck",
            Frame::Auth { .. } => "Auth",
            Frame::NexusCreate { .. } => "NexusCreate",
            Frame::NexusCreated { .. } => "NexusCreated",
            Frame::Bind { .. } => "BindConnection",
            Frame::BindAck { .. } => "BindAck",
            Frame::Destroy { .. } => "NexusDestroy",
            Frame::DestroyAck { .. } => "NexusDestroyed",
            Frame::Request { .. } => "Request",
            Frame::Response { .. } => "Response",
            Frame::ResponseError { .. } => "ResponseError",
            Frame::Cancel { .. } => "Cancel",
            Frame::Credit { .. } => "Credit",
            Frame::Ping { .. } => "Ping",
            Frame::Pong { .. } => "Pong",
            Frame::GoAway { .. } => "GoAway",
        }
    }
}

mod kind {
    pub(super) const HELLO: u8 = 1;
    pub(super) const HELLO_ACK: u8 = 2;
    pub(super) const AUTH: u8 = 3;
    pub(super) const NEXUS_CREATE: u8 = 4;
    pub(super) const NEXUS_CREATED: u8 = 5;
    pub(super) const BIND: u8 = 6;
    pub(super) const BIND_ACK: u8 = 7;
    pub(super) const DESTROY: u8 = 9;
    pub(super) const DESTROY_ACK: u8 = 10;
    pub(super) const REQUEST: u8 = 16;
    pub(super) const RESPONSE: u8 = 17;
    pub(super) const RESPONSE_ERROR: u8 = 18;
    pub(super) const CANCEL: u8 = 19;
    pub(super) const CREDIT: u8 = 20;
    pub(super) const PING: u8 = 32;
    pub(super) const PONG: u8 = 33;
    pub(super) const GO_AWAY: u8 = 48;
}

fn channel_flag(channel: Channel) -> u8 {
    match channel {
        Channel::Fore => 0,
        Channel::Back => FLAG_BACKCHANNEL,
    }
}

fn put_attrs(out: &mut BytesMut, a: &ChannelAttributes) {
    out.put_u32(a.slots);
    out.put_u32(a.max_request_size);
    out.put_u32(a.max_response_size);
    out.put_u32(a.max_cached_response_size);
}

fn get_attrs(p: &mut &[u8]) -> Option<ChannelAttributes> {
    if p.remaining() < 16 {
        return None;
    }
    Some(ChannelAttributes {
        slots: p.get_u32(),
        max_request_size: p.get_u32(),
        max_response_size: p.get_u32(),
        max_cached_response_size: p.get_u32(),
    })
}

/// Appends the encoding of `frame` to `out`, with a payload digest when `digest` is set.
#[cfg(test)]
pub(crate) fn encode(frame: &Frame, digest: bool, out: &mut BytesMut) {
    encode_with(frame, digest, None, out);
}

/// [`encode`], compressing request and response payloads with lz4 when `compress` holds a
/// scratch buffer and the payload is worth it.
pub(crate) fn encode_with(
    frame: &Frame,
    digest: bool,
    compress: Option<&mut Vec<u8>>,
    out: &mut BytesMut,
) {
    let (kind, mut flags, slot, seq, request) = match frame {
        Frame::Hello { .. } => (kind::HELLO, 0, 0, 0, 0),
        Frame::HelloAck { .. } => (kind::HELLO_ACK, 0, 0, 0, 0),
        Frame::Auth { .. } => (kind::AUTH, 0, 0, 0, 0),
        Frame::NexusCreate { .. } => (kind::NEXUS_CREATE, 0, 0, 0, 0),
        Frame::NexusCreated { nexus, .. } => (kind::NEXUS_CREATED, 0, 0, 0, nexus.0),
        Frame::Bind { nexus, .. } => (kind::BIND, 0, 0, 0, nexus.0),
        Frame::BindAck { nexus } => (kind::BIND_ACK, 0, 0, 0, nexus.0),
        Frame::Destroy { nexus } => (kind::DESTROY, 0, 0, 0, nexus.0),
        Frame::DestroyAck { nexus } => (kind::DESTROY_ACK, 0, 0, 0, nexus.0),
        Frame::Request {
            channel,
            slot,
            seq,
            request,
            order,
            ..
        } => {
            let ordered = if *order != 0 { FLAG_ORDERED } else { 0 };
            (
                kind::REQUEST,
                channel_flag(*channel) | ordered,
                *slot,
                *seq,
                request.0,
            )
        }
        Frame::Response {
            channel,
            slot,
            seq,
            request,
            ..
        } => (
            kind::RESPONSE,
            channel_flag(*channel),
            *slot,
            *seq,
            request.0,
        ),
        Frame::ResponseError {
            channel,
            slot,
            seq,
            request,
            ..
        } => (
            kind::RESPONSE_ERROR,
            channel_flag(*channel),
            *slot,
            *seq,
            request.0,
        ),
        Frame::Cancel {
            channel,
            slot,
            seq,
            request,
        } => (kind::CANCEL, channel_flag(*channel), *slot, *seq, request.0),
        Frame::Credit { channel, slots } => (kind::CREDIT, channel_flag(*channel), *slots, 0, 0),
        Frame::Ping { token } => (kind::PING, 0, 0, 0, *token),
        Frame::Pong { token } => (kind::PONG, 0, 0, 0, *token),
        Frame::GoAway { .. } => (kind::GO_AWAY, 0, 0, 0, 0),
    };
    if digest {
        flags |= FLAG_DIGEST;
    }
    let header_at = out.len();
    out.put_slice(&MAGIC);
    out.put_u8(VERSION);
    out.put_u8(kind);
    out.put_u8(flags);
    out.put_slice(&[0; 3]);
    out.put_u32(slot);
    out.put_u32(seq);
    out.put_u64(request);
    out.put_u32(0); // payload length, patched below
    out.put_u32(0); // header checksum, patched below
    let payload_at = out.len();
    match frame {
        Frame::Hello {
            version,
            mechanism,
            digest,
            compress,
            nonce,
            identity,
        } => {
            out.put_u8(*version);
            out.put_u8(*mechanism);
            out.put_u8(u8::from(*digest) | u8::from(*compress) << 1);
            out.put_slice(nonce);
            out.put_slice(identity.as_bytes());
        }
        Frame::HelloAck {
            version,
            digest,
            compress,
            nonce,
        } => {
            out.put_u8(*version);
            out.put_u8(u8::from(*digest) | u8::from(*compress) << 1);
            out.put_slice(nonce);
        }
        Frame::Auth { proof } => out.put_slice(proof),
        Frame::NexusCreate { fore, back } | Frame::NexusCreated { fore, back, .. } => {
            put_attrs(out, fore);
            put_attrs(out, back);
        }
        Frame::Bind { recover, .. } => out.put_u8(u8::from(*recover)),
        Frame::Request {
            exchange,
            order,
            body,
            ..
        } => {
            out.put_u32(exchange.0);
            out.put_u64(*order);
            out.put_slice(body);
        }
        Frame::Response { body, .. } => out.put_slice(body),
        Frame::ResponseError { exception, .. } => out.put_slice(exception),
        Frame::GoAway { code, reason } => {
            out.put_u16(*code);
            out.put_slice(reason.as_bytes());
        }
        Frame::BindAck { .. }
        | Frame::Destroy { .. }
        | Frame::DestroyAck { .. }
        | Frame::Cancel { .. }
        | Frame::Credit { .. }
        | Frame::Ping { .. }
        | Frame::Pong { .. } => {}
    }
    if let Some(scratch) = compress
        && matches!(kind, kind::REQUEST | kind::RESPONSE | kind::RESPONSE_ERROR)
        && out.len() - payload_at >= COMPRESS_MIN
        && compress_payload(out, payload_at, scratch)
    {
        out[header_at + 4] |= FLAG_COMPRESSED;
    }
    // Payloads are bounded by the negotiated maxima (u32), so this cannot truncate.
    let payload_len = u32::try_from(out.len() - payload_at).unwrap_or(u32::MAX);
    out[header_at + 24..header_at + 28].copy_from_slice(&payload_len.to_be_bytes());
    let checksum = header_checksum(&out[header_at..header_at + 28]);
    out[header_at + 28..header_at + 32].copy_from_slice(&checksum.to_be_bytes());
    if digest {
        let d = xxh3_64(&out[payload_at..]);
        out.put_u64(d);
    }
}

/// Replaces `out[payload_at..]` by `u32 raw length ‖ lz4 block` if that saves at least an
/// eighth; incompressible payloads stay raw.
fn compress_payload(out: &mut BytesMut, payload_at: usize, scratch: &mut Vec<u8>) -> bool {
    let raw = &out[payload_at..];
    scratch.clear();
    scratch.resize(4 + lz4_flex::block::get_maximum_output_size(raw.len()), 0);
    let Ok(n) = lz4_flex::block::compress_into(raw, &mut scratch[4..]) else {
        return false;
    };
    if 4 + n > raw.len() - raw.len() / 8 {
        return false;
    }
    let raw_len = u32::try_from(raw.len()).unwrap_or(u32::MAX);
    scratch[..4].copy_from_slice(&raw_len.to_be_bytes());
    out.truncate(payload_at);
    out.extend_from_slice(&scratch[..4 + n]);
    true
}

fn header_checksum(header: &[u8]) -> u32 {
    // The low half of xxh3-64: cheap, and catches any corruption of the length before it
    // is trusted.
    (xxh3_64(header) & 0xffff_ffff) as u32
}

/// A header whose checksum, magic, version and length have been checked.
#[derive(Debug, Clone, Copy)]
struct Header {
    kind: u8,
    flags: u8,
    slot: u32,
    seq: u32,
    request: u64,
    payload_len: u32,
}

fn parse_header(h: &[u8], max_payload: u32) -> Result<Header, FrameError> {
    let mut p = h;
    let magic = [p.get_u8(), p.get_u8()];
    let version = p.get_u8();
    let kind = p.get_u8();
    let flags = p.get_u8();
    p.advance(3);
    let slot = p.get_u32();
    let seq = p.get_u32();
    let request = p.get_u64();
    let payload_len = p.get_u32();
    let checksum = p.get_u32();
    // Checksum first: a flipped bit anywhere in the header is reported as corruption.
    if header_checksum(&h[..28]) != checksum {
        return Err(FrameError::HeaderChecksum);
    }
    if magic != MAGIC {
        return Err(FrameError::BadMagic);
    }
    if version != VERSION {
        return Err(FrameError::Version(version));
    }
    if payload_len > max_payload {
        return Err(FrameError::TooLarge(payload_len));
    }
    Ok(Header {
        kind,
        flags,
        slot,
        seq,
        request,
        payload_len,
    })
}

/// Takes one complete frame off the front of `buf`, or returns `Ok(None)` if more bytes
/// are needed. Payload bytes are shared with `buf`'s storage, not copied. `max_payload` is
/// enforced from the header alone, before anything is buffered for the payload.
pub(crate) fn decode(buf: &mut BytesMut, max_payload: u32) -> Result<Option<Frame>, FrameError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let h = parse_header(&buf[..HEADER_LEN], max_payload)?;
    let has_digest = h.flags & FLAG_DIGEST != 0;
    let payload_len = h.payload_len as usize;
    let total = HEADER_LEN + payload_len + if has_digest { DIGEST_LEN } else { 0 };
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    let mut frame = buf.split_to(total).freeze();
    frame.advance(HEADER_LEN);
    if has_digest {
        let expected = u64::from_be_bytes(
            frame[payload_len..payload_len + DIGEST_LEN]
                .try_into()
                .map_err(|_| FrameError::Digest)?,
        );
        if xxh3_64(&frame[..payload_len]) != expected {
            return Err(FrameError::Digest);
        }
        frame.truncate(payload_len);
    }
    if h.flags & FLAG_COMPRESSED != 0 {
        frame = decompress(&frame, max_payload)?;
    }
    parse_payload(h, frame).map(Some)
}

fn decompress(payload: &[u8], max_payload: u32) -> Result<Bytes, FrameError> {
    let malformed = FrameError::Malformed("compressed");
    let (len, block) = payload.split_at_checked(4).ok_or(malformed)?;
    let raw_len = u32::from_be_bytes(len.try_into().map_err(|_| malformed)?);
    // Checked before allocating: a small frame must not claim a huge expansion.
    if raw_len > max_payload {
        return Err(FrameError::TooLarge(raw_len));
    }
    let mut raw = vec![0; raw_len as usize];
    match lz4_flex::block::decompress_into(block, &mut raw) {
        Ok(n) if n == raw.len() => Ok(Bytes::from(raw)),
        _ => Err(malformed),
    }
}

fn channel_of(flags: u8) -> Channel {
    if flags & FLAG_BACKCHANNEL != 0 {
        Channel::Back
    } else {
        Channel::Fore
    }
}

fn utf8(bytes: &[u8], what: &'static str) -> Result<String, FrameError> {
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|_| FrameError::Malformed(what))
}

fn parse_payload(h: Header, payload: Bytes) -> Result<Frame, FrameError> {
    let channel = channel_of(h.flags);
    let request = RequestId(h.request);
    let nexus = NexusId(h.request);
    let mut p: &[u8] = &payload;
    let frame = match h.kind {
        kind::HELLO => {
            if p.len() < 19 {
                return Err(FrameError::Malformed("Hello"));
            }
            let version = p.get_u8();
            let mechanism = p.get_u8();
            let options = p.get_u8();
            let mut nonce = [0; 16];
            p.copy_to_slice(&mut nonce);
            Frame::Hello {
                version,
                mechanism,
                digest: options & 1 != 0,
                compress: options & 2 != 0,
                nonce,
                identity: utf8(p, "Hello")?,
            }
        }
        kind::HELLO_ACK => {
            if p.len() != 18 {
                return Err(FrameError::Malformed("HelloAck"));
            }
            let version = p.get_u8();
            let options = p.get_u8();
            let mut nonce = [0; 16];
            p.copy_to_slice(&mut nonce);
            Frame::HelloAck {
                version,
                digest: options & 1 != 0,
                compress: options & 2 != 0,
                nonce,
            }
        }
        kind::AUTH => Frame::Auth { proof: payload },
        kind::NEXUS_CREATE | kind::NEXUS_CREATED => {
            let fore = get_attrs(&mut p).ok_or(FrameError::Malformed("NexusCreate"))?;
            let back = get_attrs(&mut p).ok_or(FrameError::Malformed("NexusCreate"))?;
            if !p.is_empty() {
                return Err(FrameError::Malformed("NexusCreate"));
            }
            if h.kind == kind::NEXUS_CREATE {
                Frame::NexusCreate { fore, back }
            } else {
                Frame::NexusCreated { nexus, fore, back }
            }
        }
        kind::BIND => match p {
            [r] => Frame::Bind {
                nexus,
                recover: *r != 0,
            },
            _ => return Err(FrameError::Malformed("BindConnection")),
        },
        kind::BIND_ACK => Frame::BindAck { nexus },
        kind::DESTROY => Frame::Destroy { nexus },
        kind::DESTROY_ACK => Frame::DestroyAck { nexus },
        kind::REQUEST => {
            if p.len() < REQUEST_OVERHEAD as usize {
                return Err(FrameError::Malformed("Request"));
            }
            let exchange = ExchangeId(p.get_u32());
            let order = p.get_u64();
            if (order != 0) != (h.flags & FLAG_ORDERED != 0) {
                return Err(FrameError::Malformed("Request"));
            }
            Frame::Request {
                channel,
                slot: h.slot,
                seq: h.seq,
                request,
                exchange,
                order,
                body: payload.slice(REQUEST_OVERHEAD as usize..),
            }
        }
        kind::RESPONSE => Frame::Response {
            channel,
            slot: h.slot,
            seq: h.seq,
            request,
            body: payload,
        },
        kind::RESPONSE_ERROR => Frame::ResponseError {
            channel,
            slot: h.slot,
            seq: h.seq,
            request,
            exception: payload,
        },
        kind::CANCEL => Frame::Cancel {
            channel,
            slot: h.slot,
            seq: h.seq,
            request,
        },
        kind::CREDIT => Frame::Credit {
            channel,
            slots: h.slot,
        },
        kind::PING => Frame::Ping { token: h.request },
        kind::PONG => Frame::Pong { token: h.request },
        kind::GO_AWAY => {
            if p.len() < 2 {
                return Err(FrameError::Malformed("GoAway"));
            }
            let code = p.get_u16();
            Frame::GoAway {
                code,
                reason: String::from_utf8_lossy(p).into_owned(),
            }
        }
        other => return Err(FrameError::UnknownKind(other)),
    };
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Frame> {
        let attrs = ChannelAttributes::default();
        vec![
            Frame::Hello {
                version: 1,
                mechanism: 1,
                digest: true,
                compress: true,
                nonce: [7; 16],
                identity: "client-a".into(),
            },
            Frame::HelloAck {
                version: 1,
                digest: false,
                compress: true,
                nonce: [9; 16],
            },
            Frame::Auth {
                proof: Bytes::from_static(b"proof"),
            },
            Frame::NexusCreate {
                fore: attrs,
                back: attrs,
            },
            Frame::NexusCreated {
                nexus: NexusId(42),
                fore: attrs,
                back: attrs,
            },
            Frame::Bind {
                nexus: NexusId(42),
                recover: true,
            },
            Frame::BindAck { nexus: NexusId(42) },
            Frame::Destroy { nexus: NexusId(42) },
            Frame::DestroyAck { nexus: NexusId(42) },
            Frame::Request {
                channel: Channel::Back,
                slot: 3,
                seq: 9,
                request: RequestId(77),
                exchange: ExchangeId(5),
                order: 4,
                body: Bytes::from_static(b"hello"),
            },
            Frame::Response {
                channel: Channel::Fore,
                slot: 3,
                seq: 9,
                request: RequestId(77),
                body: Bytes::from_static(b"world"),
            },
            Frame::ResponseError {
                channel: Channel::Fore,
                slot: 1,
                seq: 2,
                request: RequestId(3),
                exception: Bytes::from_static(b"x"),
            },
            Frame::Cancel {
                channel: Channel::Fore,
                slot: 1,
                seq: 2,
                request: RequestId(3),
            },
            Frame::Credit {
                channel: Channel::Back,
                slots: 8,
            },
            Frame::Ping { token: 5 },
            Frame::Pong { token: 5 },
            Frame::GoAway {
                code: 3,
                reason: "bye".into(),
            },
        ]
    }

    #[test]
    fn every_kind_round_trips_with_and_without_digest() {
        for digest in [false, true] {
            let mut buf = BytesMut::new();
            for f in samples() {
                encode(&f, digest, &mut buf);
            }
            for f in samples() {
                assert_eq!(decode(&mut buf, 1 << 20).unwrap(), Some(f));
            }
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn partial_input_needs_more_and_every_flipped_bit_is_caught() {
        let mut whole = BytesMut::new();
        encode(&samples()[9], true, &mut whole);
        for cut in 0..whole.len() {
            let mut part = BytesMut::from(&whole[..cut]);
            assert_eq!(decode(&mut part, 1 << 20), Ok(None));
        }
        for i in 0..whole.len() {
            for bit in 0..8 {
                let mut bad = whole.clone();
                bad[i] ^= 1 << bit;
                assert!(
                    !matches!(decode(&mut bad, 1 << 20), Ok(Some(_))),
                    "flip at byte {i} bit {bit} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn compressible_payloads_shrink_and_incompressible_ones_go_raw() {
        let mut scratch = Vec::new();
        let request = |body: Vec<u8>| Frame::Request {
            channel: Channel::Fore,
            slot: 0,
            seq: 1,
            request: RequestId(1),
            exchange: ExchangeId(1),
            order: 0,
            body: Bytes::from(body),
        };
        let text = request(b"all work and no play ".repeat(100));
        let mut buf = BytesMut::new();
        encode_with(&text, true, Some(&mut scratch), &mut buf);
        assert!(buf[4] & FLAG_COMPRESSED != 0);
        assert!(buf.len() < 500, "{} bytes", buf.len());
        assert_eq!(decode(&mut buf, 1 << 20).unwrap(), Some(text.clone()));
        // Pseudo-random bytes do not compress: sent raw.
        let mut state = 7u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                (state >> 33) as u8
            })
            .collect();
        let noise = request(noise);
        let mut buf = BytesMut::new();
        encode_with(&noise, true, Some(&mut scratch), &mut buf);
        assert_eq!(buf[4] & FLAG_COMPRESSED, 0);
        assert_eq!(decode(&mut buf, 1 << 20).unwrap(), Some(noise));
        // A compressed frame may not expand beyond the limit.
        let mut buf = BytesMut::new();
        encode_with(&text, false, Some(&mut scratch), &mut buf);
        assert_eq!(decode(&mut buf, 1000), Err(FrameError::TooLarge(2112)));
    }

    #[test]
    fn oversized_payload_is_rejected_from_the_header() {
        let mut buf = BytesMut::new();
        encode(&samples()[9], false, &mut buf);
        buf.truncate(HEADER_LEN);
        assert_eq!(decode(&mut buf, 4), Err(FrameError::TooLarge(17)));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut state = 0x1234_5678_u64;
        for _ in 0..2000 {
            let mut buf = BytesMut::new();
            let len = (state % 80) as usize;
            for _ in 0..len {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                buf.put_u8((state >> 33) as u8);
            }
            let _ = decode(&mut buf, 1 << 16);
        }
    }
}
