//! The session layer's view of DSP trunk frames, mapped onto `hawser_wire::dsp`.
//!
//! The state machines speak [`Frame`]: owned, with payloads as [`Bytes`] so a request body
//! can sit in a reply cache or a retry queue without borrowing the receive buffer. The
//! bytes are the wire crate's business (`docs/PROTOCOL.md` ("DSP trunk frames")): [`Codec`] wraps its
//! encoder and streaming decoder, and decoded bodies are sliced out of the received
//! buffer without copying (only lz4-compressed bodies, decompressed by the wire decoder
//! into its scratch, are copied out).

use bytes::{Bytes, BytesMut};
use hawser_wire::dsp as wire;

use super::auth::{Mechanism, PROOF_LEN};
use super::config::ChannelAttributes;
use super::types::{Channel, ExchangeId, NexusId, RequestId};

/// The only protocol version spoken.
pub(crate) const VERSION: u8 = wire::VERSION;
/// Length of the fixed header.
pub(crate) const HEADER_LEN: usize = wire::HEADER_LEN;
/// Payload limit before a nexus has negotiated its own.
pub(crate) const HANDSHAKE_MAX_PAYLOAD: u32 = wire::HANDSHAKE_MAX_PAYLOAD;
/// Bytes a request payload carries besides the application body (exchange + order).
pub(crate) const REQUEST_OVERHEAD: u32 = wire::Request::MAX_FIXED_LEN as u32;

/// Why bytes are not a frame: the wire codec's error.
pub type FrameError = wire::DspError;

/// Outcome of a nexus operation, as the wire's answer frames carry it.
pub(crate) type Status = wire::Status;

/// Per-nexus features, requested in NexusCreate and granted in NexusCreated.
pub(crate) type Features = wire::NexusFeatures;

/// The nexus features this implementation serves: the backchannel and ordered exchanges
/// (digest and lz4 are agreed per connection in Hello, see `docs/PROTOCOL.md`).
pub(crate) const SERVED_FEATURES: Features =
    wire::NexusFeatures(Features::BACKCHANNEL.0 | Features::ORDERED.0);

/// One trunk frame as the session state machines see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Frame {
    /// First frame of each side: the client offers its version range, the server answers
    /// with the version chosen (min = max) and what was agreed (digest, lz4), each with
    /// its own nonce.
    Hello {
        versions: (u8, u8),
        digest: bool,
        compress: bool,
        nonce: [u8; 16],
    },
    /// Client → server: mechanism, identity and proof (the SASL initial response).
    Auth {
        mechanism: Mechanism,
        identity: String,
        proof: Bytes,
    },
    /// Server → client: authentication outcome, with the server's proof (success) or
    /// the reason (failure).
    AuthResult {
        status: Status,
        proof: Bytes,
        reason: String,
    },
    /// Client → server: create a nexus with these proposed channel attributes, grace
    /// period (milliseconds, 0: the server's) and features.
    NexusCreate {
        fore: ChannelAttributes,
        back: ChannelAttributes,
        grace_ms: u32,
        features: Features,
        identity: String,
    },
    /// Server → client: the nexus, the negotiated attributes, grace period and features
    /// (or a refusal, or the provisional `HELD`).
    NexusCreated {
        status: Status,
        nexus: NexusId,
        fore: ChannelAttributes,
        back: ChannelAttributes,
        grace_ms: u32,
        features: Features,
        reason: String,
    },
    /// Client → server: join this connection to a live nexus.
    Bind { nexus: NexusId },
    /// Client → server: reinstate a nexus that has lost all its connections.
    Recover { nexus: NexusId, identity: String },
    /// Server → client: answer to Bind (`recovered: false`) or Recover (`true`).
    BindAck {
        status: Status,
        nexus: NexusId,
        recovered: bool,
        reason: String,
    },
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
    GoAway {
        code: wire::GoAwayCode,
        reason: String,
    },
}

impl Frame {
    /// A short name for errors and logs.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Frame::Hello { .. } => "Hello",
            Frame::Auth { .. } => "Auth",
            Frame::AuthResult { .. } => "AuthResult",
            Frame::NexusCreate { .. } => "NexusCreate",
            Frame::NexusCreated { .. } => "NexusCreated",
            Frame::Bind { .. } => "BindConnection",
            Frame::Recover { .. } => "NexusRecover",
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

fn to_wire_channel(c: Channel) -> wire::Channel {
    match c {
        Channel::Fore => wire::Channel::Fore,
        Channel::Back => wire::Channel::Back,
    }
}

fn from_wire_channel(c: wire::Channel) -> Channel {
    match c {
        wire::Channel::Fore => Channel::Fore,
        wire::Channel::Back => Channel::Back,
    }
}

fn to_wire_attrs(a: &ChannelAttributes) -> wire::ChannelAttrs {
    wire::ChannelAttrs {
        slots: a.slots,
        max_request_size: a.max_request_size,
        max_response_size: a.max_response_size,
        max_cached_response_size: a.max_cached_response_size,
    }
}

fn from_wire_attrs(a: &wire::ChannelAttrs) -> ChannelAttributes {
    ChannelAttributes {
        slots: a.slots,
        max_request_size: a.max_request_size,
        max_response_size: a.max_response_size,
        max_cached_response_size: a.max_cached_response_size,
    }
}

fn to_wire_nexus(n: NexusId) -> wire::NexusId {
    wire::NexusId::from_u128(n.0)
}

fn from_wire_nexus(n: wire::NexusId) -> NexusId {
    NexusId(n.to_u128())
}

const ANONYMOUS: &str = "ANONYMOUS";
const HMAC_SHA256: &str = "HMAC-SHA256";

/// Request and response bodies at least this long are sent from where they lie (shared,
/// see [`Codec::encode`]) rather than copied behind their header.
pub(crate) const SHARED_BODY_MIN: usize = 16 * 1024;

/// A body to send after a frame's head, and the digest trailer to send after it.
#[derive(Debug)]
pub(crate) struct SharedBody {
    pub(crate) body: Bytes,
    trailer: [u8; wire::DIGEST_LEN],
    trailer_len: usize,
}

impl SharedBody {
    /// The digest trailer (empty without digest).
    pub(crate) fn trailer(&self) -> &[u8] {
        &self.trailer[..self.trailer_len]
    }
}

/// Encodes and decodes the frames of one connection, with that connection's options.
#[derive(Debug)]
pub(crate) struct Codec {
    encoder: wire::FrameEncoder,
    decoder: wire::FrameDecoder,
    /// The SASL initial response being built (identity ‖ 0 ‖ proof); reused.
    scratch: Vec<u8>,
    /// Offset within large request bodies to receive on a page boundary (see
    /// [`Codec::align_request_bodies_at`]).
    align_at: Option<usize>,
    /// The length of the frame at the front of the receive buffer, once its header is
    /// in and while the rest is not.
    incomplete_len: Option<usize>,
    /// Where that frame's body is to start on a page (see
    /// [`align_request_bodies_at`](Codec::align_request_bodies_at)), if it is.
    incomplete_alignment: Option<usize>,
    /// The last frame was large and ended exactly where the received bytes did.
    after_large: bool,
}

/// Frames at least this long are received exactly (see [`Codec::receive_limit`]).
pub(crate) const EXACT_RECEIVE_MIN: usize = 256 * 1024;
/// The first receive after a large frame takes at most this much: the next frame's
/// header, and all of it if it is small.
const FIRST_RECEIVE_AFTER_LARGE: usize = 4096;

/// Requests at least this long are received page-aligned when alignment is asked for:
/// smaller ones are not worth a fresh allocation (the replication target writes them
/// through the page cache anyway).
pub(crate) const ALIGNED_FRAME_MIN: usize = 256 * 1024;
/// The alignment of [`Codec::align_request_bodies_at`]: a page, what `O_DIRECT` needs.
pub(crate) const BODY_ALIGN: usize = 4096;
/// Spare capacity reserved beyond an incomplete frame: more than one receive buffer of
/// the driver (64 KiB), so the next frame's start fits without moving this one.
const REALIGN_SLACK: usize = 128 * 1024;

impl Default for Codec {
    fn default() -> Self {
        Codec {
            // Handshake frames always carry a digest: a corrupted identity or nexus id
            // must be caught, not acted upon.
            encoder: wire::FrameEncoder::new(wire::EncodeOptions {
                digest: true,
                compression: wire::Compression::Off,
            }),
            decoder: wire::FrameDecoder::new(HANDSHAKE_MAX_PAYLOAD),
            scratch: Vec::new(),
            align_at: None,
            incomplete_len: None,
            incomplete_alignment: None,
            after_large: false,
        }
    }
}

impl Codec {
    /// Applies what the hello exchange agreed.
    pub(crate) fn set_options(&mut self, digest: bool, compress: bool) {
        self.encoder.set_options(wire::EncodeOptions {
            digest,
            compression: if compress {
                wire::Compression::Lz4
            } else {
                wire::Compression::Off
            },
        });
    }

    /// The largest payload accepted from the peer (checked from each header).
    pub(crate) fn set_max_payload(&mut self, max: u32) {
        self.decoder.set_max_payload(max);
    }

    /// Receives each uncompressed request of [`ALIGNED_FRAME_MIN`] bytes or more into
    /// storage placed so that `body[offset..]` starts on a page boundary: an application
    /// that writes the body past `offset` with `O_DIRECT` then writes it from where it
    /// arrived instead of copying it into an aligned buffer first. The driver receives
    /// into that storage anyway (see `Link::lend_rx`), so this costs nothing but up to a
    /// page of slack per frame and, once, moving the bytes of the frame that had arrived
    /// before its header was seen.
    pub(crate) fn align_request_bodies_at(&mut self, offset: Option<usize>) {
        self.align_at = offset;
    }

    /// Where in the frame `header` describes the body's alignment point lies, if the
    /// frame is to be received aligned.
    fn alignment_point(&self, header: &wire::FrameHeader, frame_len: usize) -> Option<usize> {
        let offset = self.align_at?;
        if header.kind != wire::FrameKind::Request
            || header.flags.contains(wire::Flags::COMPRESSED)
            || frame_len < ALIGNED_FRAME_MIN
        {
            return None;
        }
        let fixed = if header.flags.contains(wire::Flags::ORDERED) {
            wire::Request::MAX_FIXED_LEN
        } else {
            4
        };
        Some(wire::HEADER_LEN + fixed + offset)
    }

    /// Appends the encoding of `frame` to `out`, except for a large body that goes out
    /// uncompressed: then only the head is appended, and the body (shared, not copied)
    /// and digest trailer to send after it are returned.
    /// With `may_compress` false the body goes out uncompressed whatever was agreed.
    #[must_use = "a shared body must be sent right after the head"]
    pub(crate) fn encode(
        &mut self,
        frame: &Frame,
        may_compress: bool,
        out: &mut BytesMut,
    ) -> Option<SharedBody> {
        let agreed = self.encoder.options();
        if !may_compress && agreed.compression != wire::Compression::Off {
            self.encoder.set_options(wire::EncodeOptions {
                compression: wire::Compression::Off,
                ..agreed
            });
            let shared = self.encode_agreed(frame, out);
            self.encoder.set_options(agreed);
            return shared;
        }
        self.encode_agreed(frame, out)
    }

    fn encode_agreed(&mut self, frame: &Frame, out: &mut BytesMut) -> Option<SharedBody> {
        let shared = match frame {
            Frame::Request { body, .. } | Frame::Response { body, .. }
                if body.len() >= SHARED_BODY_MIN =>
            {
                Some(body)
            }
            _ => None,
        };
        let w = to_wire(frame, &mut self.scratch);
        // Every field is bounded by construction (negotiated sizes, short names); an
        // encoding error would be a bug here, and the frame is then simply not sent.
        let before = out.len();
        let encoded = match shared {
            Some(body) => self.encoder.encode_head(&w, out).map(|split| {
                split.map(|split| {
                    let mut trailer = [0; wire::DIGEST_LEN];
                    let len = split.trailer().len();
                    trailer[..len].copy_from_slice(split.trailer());
                    SharedBody {
                        body: body.clone(),
                        trailer,
                        trailer_len: len,
                    }
                })
            }),
            None => self.encoder.encode(&w, out).map(|_| None),
        };
        encoded.unwrap_or_else(|_| {
            debug_assert!(false, "unencodable {} frame", frame.name());
            out.truncate(before);
            None
        })
    }

    /// How many bytes the next receive into a buffer holding `buffered` bytes (what
    /// [`decode`](Self::decode) last saw) should take at most; `None`: as many as fit.
    ///
    /// A large frame is received up to its last byte and no further, and the next
    /// receive takes only a few KiB. Otherwise the receive that completes a 1 MiB frame
    /// also brings up to a buffer's worth of the next one, which must then move into
    /// storage of that frame's size once its header is seen: a copy of up to 64 KiB per
    /// frame (3.5% of a bulk receive's CPU), traded here for one more small receive.
    pub(crate) fn receive_limit(&self, buffered: usize) -> Option<usize> {
        match self.incomplete_len {
            Some(len) if len >= EXACT_RECEIVE_MIN && buffered < len => Some(len - buffered),
            Some(_) => None,
            None if self.after_large && buffered < FIRST_RECEIVE_AFTER_LARGE => {
                Some(FIRST_RECEIVE_AFTER_LARGE - buffered)
            }
            None => None,
        }
    }

    /// The length of the incomplete frame at the front of the receive buffer, once its
    /// header is in.
    pub(crate) fn incomplete_len(&self) -> Option<usize> {
        self.incomplete_len
    }

    /// Gives `rx` (what [`decode`](Self::decode) last saw) the storage the rest of its
    /// incomplete frame is received into: the whole frame, page-aligned where asked,
    /// plus room for the start of the next one. Nothing is allocated for a frame until
    /// this is called, so the caller decides first whether it may be (the receive
    /// budget).
    pub(crate) fn prepare_storage(&self, rx: &mut BytesMut) {
        let Some(len) = self.incomplete_len.filter(|&len| rx.len() < len) else {
            return;
        };
        match self.incomplete_alignment {
            Some(point) => realign(rx, len, point),
            // Room for the start of the next frame too: it arrives in the same receive
            // buffer as this one's end, and growing then would copy the whole frame
            // again.
            None => rx.reserve(len - rx.len() + REALIGN_SLACK),
        }
    }

    /// Takes one complete frame off the front of `rx`, or `Ok(None)` if more bytes are
    /// needed. Bodies are shared with `rx`'s storage, not copied. Storage for an
    /// incomplete frame is made by [`prepare_storage`](Self::prepare_storage), not here.
    pub(crate) fn decode(&mut self, rx: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        let Some(header) = self.decoder.peek_header(rx)? else {
            self.incomplete_len = None;
            self.incomplete_alignment = None;
            return Ok(None);
        };
        let len = header.frame_len();
        self.after_large = len >= EXACT_RECEIVE_MIN && rx.len() == len;
        self.incomplete_len = (rx.len() < len).then_some(len);
        if rx.len() < len {
            self.incomplete_alignment = self.alignment_point(&header, len);
            return Ok(None);
        }
        self.incomplete_alignment = None;
        let chunk = rx.split_to(len).freeze();
        let Some((w, _)) = self.decoder.decode(&chunk)? else {
            // The header said the frame is complete; the codec disagrees.
            return Err(FrameError::Truncated(header.kind));
        };
        from_wire(w, &chunk).map(Some)
    }
}

/// Makes `rx` (the start of a frame of `frame_len` bytes, incomplete) room for the whole
/// frame with byte `point` of it on a [`BODY_ALIGN`] boundary, moving what arrived so
/// far once; later calls find it placed and leave it.
fn realign(rx: &mut BytesMut, frame_len: usize, point: usize) {
    let placed = (rx.as_ptr() as usize + point).is_multiple_of(BODY_ALIGN);
    if placed && rx.capacity() >= frame_len {
        return;
    }
    // Room past the frame for the start of the next one, which arrives in the same
    // receive buffer as this one's end: growing the storage then would move it all.
    let mut placed = BytesMut::with_capacity(frame_len + BODY_ALIGN + REALIGN_SLACK);
    let lead = (BODY_ALIGN - (placed.as_ptr() as usize + point) % BODY_ALIGN) % BODY_ALIGN;
    placed.resize(lead, 0);
    bytes::Buf::advance(&mut placed, lead);
    placed.extend_from_slice(rx);
    *rx = placed;
}

/// The wire form of `frame`; `scratch` holds what must be assembled (a SASL initial
/// response).
fn to_wire<'f>(frame: &'f Frame, scratch: &'f mut Vec<u8>) -> wire::Frame<'f> {
    let capabilities = |digest: bool, compress: bool| {
        let mut c = wire::Capabilities::BACKCHANNEL;
        if digest {
            c = c | wire::Capabilities::DIGEST;
        }
        if compress {
            c = c | wire::Capabilities::LZ4;
        }
        c
    };
    match frame {
        Frame::Hello {
            versions,
            digest,
            compress,
            nonce,
        } => wire::Frame::Hello(wire::Hello {
            min_version: versions.0,
            max_version: versions.1,
            capabilities: capabilities(*digest, *compress),
            nonce: *nonce,
        }),
        Frame::Auth {
            mechanism,
            identity,
            proof,
        } => {
            scratch.clear();
            scratch.extend_from_slice(identity.as_bytes());
            let name = match mechanism {
                // Never sent: a client only uses mechanisms it knows.
                Mechanism::Anonymous | Mechanism::Unsupported => ANONYMOUS,
                Mechanism::HmacSha256 => {
                    scratch.push(0);
                    scratch.extend_from_slice(proof);
                    HMAC_SHA256
                }
            };
            wire::Frame::Auth(wire::Auth {
                mechanism: name,
                initial_response: Some(scratch),
            })
        }
        Frame::AuthResult {
            status,
            proof,
            reason,
        } => wire::Frame::AuthResult(wire::AuthResult {
            status: *status,
            additional_data: proof,
            reason: truncate(reason, 1024),
        }),
        Frame::NexusCreate {
            fore,
            back,
            grace_ms,
            features,
            identity,
        } => wire::Frame::NexusCreate(wire::NexusCreate {
            fore: to_wire_attrs(fore),
            back: to_wire_attrs(back),
            grace_period_ms: *grace_ms,
            features: *features,
            client_identity: identity,
        }),
        Frame::NexusCreated {
            status,
            nexus,
            fore,
            back,
            grace_ms,
            features,
            reason,
        } => wire::Frame::NexusCreated(wire::NexusCreated {
            status: *status,
            nexus: to_wire_nexus(*nexus),
            fore: to_wire_attrs(fore),
            back: to_wire_attrs(back),
            grace_period_ms: *grace_ms,
            features: *features,
            reason: truncate(reason, 1024),
        }),
        Frame::Bind { nexus } => wire::Frame::BindConnection(wire::BindConnection {
            nexus: to_wire_nexus(*nexus),
        }),
        Frame::Recover { nexus, identity } => wire::Frame::NexusRecover(wire::NexusRecover {
            nexus: to_wire_nexus(*nexus),
            client_identity: identity,
        }),
        Frame::BindAck {
            status,
            nexus,
            recovered,
            reason,
        } => {
            if *recovered {
                wire::Frame::NexusRecovered(wire::NexusRecovered {
                    status: *status,
                    nexus: to_wire_nexus(*nexus),
                    reason,
                })
            } else {
                wire::Frame::BindAck(wire::BindAck {
                    status: *status,
                    nexus: to_wire_nexus(*nexus),
                    reason,
                })
            }
        }
        Frame::Destroy { nexus } => wire::Frame::NexusDestroy(wire::NexusDestroy {
            nexus: to_wire_nexus(*nexus),
        }),
        Frame::DestroyAck { nexus } => wire::Frame::NexusDestroyed(wire::NexusDestroyed {
            status: Status::OK,
            nexus: to_wire_nexus(*nexus),
            reason: "",
        }),
        Frame::Request {
            channel,
            slot,
            seq,
            request,
            exchange,
            order,
            body,
        } => wire::Frame::Request(wire::Request {
            channel: to_wire_channel(*channel),
            slot: *slot,
            sequence: *seq,
            request_id: request.0,
            exchange: exchange.0,
            order: (*order != 0).then_some(*order),
            body,
        }),
        Frame::Response {
            channel,
            slot,
            seq,
            request,
            body,
        } => wire::Frame::Response(wire::Response {
            channel: to_wire_channel(*channel),
            slot: *slot,
            sequence: *seq,
            request_id: request.0,
            body,
        }),
        Frame::ResponseError {
            channel,
            slot,
            seq,
            request,
            exception,
        } => wire::Frame::ResponseError(wire::ResponseError {
            channel: to_wire_channel(*channel),
            slot: *slot,
            sequence: *seq,
            request_id: request.0,
            exception,
        }),
        Frame::Cancel {
            channel,
            slot,
            seq,
            request,
        } => wire::Frame::Cancel(wire::Cancel {
            channel: to_wire_channel(*channel),
            slot: *slot,
            sequence: *seq,
            request_id: request.0,
        }),
        Frame::Credit { channel, slots } => wire::Frame::Credit(wire::Credit {
            channel: to_wire_channel(*channel),
            slots: *slots,
        }),
        Frame::Ping { token } => wire::Frame::Ping(wire::Ping { token: *token }),
        Frame::Pong { token } => wire::Frame::Pong(wire::Pong { token: *token }),
        Frame::GoAway { code, reason } => wire::Frame::GoAway(wire::GoAway {
            code: *code,
            reason: truncate(reason, 1024),
        }),
    }
}

/// `slice` as `Bytes`: shared with `chunk` when it lies inside it (no copy), copied when
/// it does not (a body the decoder decompressed into its scratch).
fn share(chunk: &Bytes, slice: &[u8]) -> Bytes {
    if slice.is_empty() {
        return Bytes::new();
    }
    let base = chunk.as_ptr() as usize;
    let start = slice.as_ptr() as usize;
    if start >= base && start + slice.len() <= base + chunk.len() {
        chunk.slice(start - base..start - base + slice.len())
    } else {
        Bytes::copy_from_slice(slice)
    }
}

fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn from_wire(w: wire::Frame<'_>, chunk: &Bytes) -> Result<Frame, FrameError> {
    let frame = match w {
        wire::Frame::Hello(h) => Frame::Hello {
            versions: (h.min_version, h.max_version),
            digest: h.capabilities.contains(wire::Capabilities::DIGEST),
            compress: h.capabilities.contains(wire::Capabilities::LZ4),
            nonce: h.nonce,
        },
        wire::Frame::Auth(a) => {
            let invalid = FrameError::InvalidField(wire::FrameKind::Auth);
            let response = a.initial_response.unwrap_or_default();
            let (mechanism, identity, proof) = match a.mechanism {
                ANONYMOUS => (Mechanism::Anonymous, response, Bytes::new()),
                HMAC_SHA256 => {
                    let split = response.len().checked_sub(PROOF_LEN + 1).ok_or(invalid)?;
                    let (identity, rest) = response.split_at(split);
                    match rest.split_first() {
                        Some((0, proof)) => (Mechanism::HmacSha256, identity, share(chunk, proof)),
                        _ => return Err(invalid),
                    }
                }
                // Unknown mechanisms are refused by the server as unsupported.
                _ => (Mechanism::Unsupported, response, Bytes::new()),
            };
            Frame::Auth {
                mechanism,
                identity: std::str::from_utf8(identity)
                    .map_err(|_| invalid)?
                    .to_owned(),
                proof,
            }
        }
        wire::Frame::AuthResult(r) => Frame::AuthResult {
            status: r.status,
            proof: share(chunk, r.additional_data),
            reason: r.reason.to_owned(),
        },
        wire::Frame::NexusCreate(c) => Frame::NexusCreate {
            fore: from_wire_attrs(&c.fore),
            back: from_wire_attrs(&c.back),
            grace_ms: c.grace_period_ms,
            features: c.features,
            identity: c.client_identity.to_owned(),
        },
        wire::Frame::NexusCreated(c) => Frame::NexusCreated {
            status: c.status,
            nexus: from_wire_nexus(c.nexus),
            fore: from_wire_attrs(&c.fore),
            back: from_wire_attrs(&c.back),
            grace_ms: c.grace_period_ms,
            features: c.features,
            reason: c.reason.to_owned(),
        },
        wire::Frame::BindConnection(b) => Frame::Bind {
            nexus: from_wire_nexus(b.nexus),
        },
        wire::Frame::NexusRecover(r) => Frame::Recover {
            nexus: from_wire_nexus(r.nexus),
            identity: r.client_identity.to_owned(),
        },
        wire::Frame::BindAck(b) => Frame::BindAck {
            status: b.status,
            nexus: from_wire_nexus(b.nexus),
            recovered: false,
            reason: b.reason.to_owned(),
        },
        wire::Frame::NexusRecovered(r) => Frame::BindAck {
            status: r.status,
            nexus: from_wire_nexus(r.nexus),
            recovered: true,
            reason: r.reason.to_owned(),
        },
        wire::Frame::NexusDestroy(d) => Frame::Destroy {
            nexus: from_wire_nexus(d.nexus),
        },
        wire::Frame::NexusDestroyed(d) => Frame::DestroyAck {
            nexus: from_wire_nexus(d.nexus),
        },
        wire::Frame::Request(r) => Frame::Request {
            channel: from_wire_channel(r.channel),
            slot: r.slot,
            seq: r.sequence,
            request: RequestId(r.request_id),
            exchange: ExchangeId(r.exchange),
            // Order numbers start at 1; a peer sending 0 gets it treated as unordered.
            order: r.order.unwrap_or(0),
            body: share(chunk, r.body),
        },
        wire::Frame::Response(r) => Frame::Response {
            channel: from_wire_channel(r.channel),
            slot: r.slot,
            seq: r.sequence,
            request: RequestId(r.request_id),
            body: share(chunk, r.body),
        },
        wire::Frame::ResponseError(r) => Frame::ResponseError {
            channel: from_wire_channel(r.channel),
            slot: r.slot,
            seq: r.sequence,
            request: RequestId(r.request_id),
            exception: share(chunk, r.exception),
        },
        wire::Frame::Cancel(c) => Frame::Cancel {
            channel: from_wire_channel(c.channel),
            slot: c.slot,
            seq: c.sequence,
            request: RequestId(c.request_id),
        },
        wire::Frame::Credit(c) => Frame::Credit {
            channel: from_wire_channel(c.channel),
            slots: c.slots,
        },
        wire::Frame::Ping(p) => Frame::Ping { token: p.token },
        wire::Frame::Pong(p) => Frame::Pong { token: p.token },
        wire::Frame::GoAway(g) => Frame::GoAway {
            code: g.code,
            reason: g.reason.to_owned(),
        },
        // SASL multi-step mechanisms (a later issue) are not offered yet.
        wire::Frame::AuthChallenge(_) | wire::Frame::AuthResponse(_) => {
            return Err(FrameError::InvalidField(w.kind()));
        }
    };
    Ok(frame)
}

/// One-shot encoding with default (handshake) options, for tests.
#[cfg(test)]
pub(crate) fn encode(frame: &Frame, digest: bool, out: &mut BytesMut) {
    let mut codec = Codec::default();
    codec.set_options(digest, false);
    encode_with(&mut codec, frame, out);
}

/// Encodes `f` whole into `out`, appending a shared body where the codec returns one.
#[cfg(test)]
pub(crate) fn encode_with(codec: &mut Codec, f: &Frame, out: &mut BytesMut) {
    if let Some(shared) = codec.encode(f, true, out) {
        out.extend_from_slice(&shared.body);
        out.extend_from_slice(shared.trailer());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_bodies_are_shared_not_copied_and_decode_the_same() {
        for (digest, compress) in [(false, false), (true, false), (true, true)] {
            let mut codec = Codec::default();
            codec.set_options(digest, compress);
            codec.set_max_payload(1 << 20);
            // Incompressible, so that lz4 (when on) leaves it raw and it can be shared.
            let mut x = 0x9e37_79b9_7f4a_7c15_u64;
            let body: Bytes = (0..SHARED_BODY_MIN + 100)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let frame = Frame::Response {
                channel: Channel::Back,
                slot: 3,
                seq: 4,
                request: RequestId(5),
                body: body.clone(),
            };
            let mut buf = BytesMut::new();
            let shared = codec.encode(&frame, true, &mut buf).expect("shared");
            assert_eq!(
                shared.body.as_ptr(),
                body.as_ptr(),
                "the body is not copied"
            );
            assert_eq!(shared.trailer().len(), if digest { 8 } else { 0 });
            assert!(buf.len() < 64, "only the head was written: {}", buf.len());
            buf.extend_from_slice(&shared.body);
            buf.extend_from_slice(shared.trailer());
            assert_eq!(codec.decode(&mut buf).unwrap(), Some(frame));
        }
    }

    fn samples() -> Vec<Frame> {
        let attrs = ChannelAttributes::default();
        let nexus = NexusId(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
        vec![
            Frame::Hello {
                versions: (1, 3),
                digest: true,
                compress: true,
                nonce: [7; 16],
            },
            Frame::Auth {
                mechanism: Mechanism::HmacSha256,
                identity: "client-a".into(),
                proof: Bytes::from(vec![5; PROOF_LEN]),
            },
            Frame::Auth {
                mechanism: Mechanism::Anonymous,
                identity: "guest".into(),
                proof: Bytes::new(),
            },
            Frame::AuthResult {
                status: Status::OK,
                proof: Bytes::from_static(b"proof"),
                reason: String::new(),
            },
            Frame::AuthResult {
                status: Status::AUTH_FAILED,
                proof: Bytes::new(),
                reason: "no".into(),
            },
            Frame::NexusCreate {
                fore: attrs,
                back: attrs,
                grace_ms: 30_000,
                features: SERVED_FEATURES,
                identity: "client-a".into(),
            },
            Frame::NexusCreated {
                status: Status::OK,
                nexus,
                fore: attrs,
                back: attrs,
                grace_ms: 30_000,
                features: Features::BACKCHANNEL,
                reason: String::new(),
            },
            Frame::Bind { nexus },
            Frame::Recover {
                nexus,
                identity: "client-a".into(),
            },
            Frame::BindAck {
                status: Status::UNKNOWN_NEXUS,
                nexus,
                recovered: true,
                reason: "gone".into(),
            },
            Frame::Destroy { nexus },
            Frame::DestroyAck { nexus },
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
                code: wire::GoAwayCode::IDLE_TIMEOUT,
                reason: "bye".into(),
            },
        ]
    }

    #[test]
    fn every_frame_round_trips_through_the_wire_codec() {
        for (digest, compress) in [(false, false), (true, false), (true, true)] {
            let mut codec = Codec::default();
            codec.set_options(digest, compress);
            codec.set_max_payload(1 << 20);
            let mut buf = BytesMut::new();
            for f in samples() {
                encode_with(&mut codec, &f, &mut buf);
            }
            for f in samples() {
                assert_eq!(codec.decode(&mut buf).unwrap(), Some(f));
            }
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn partial_input_needs_more_and_every_flipped_bit_is_caught() {
        let mut codec = Codec::default();
        codec.set_max_payload(1 << 20);
        let mut whole = BytesMut::new();
        encode_with(&mut codec, &samples()[12], &mut whole);
        for cut in 0..whole.len() {
            let mut part = BytesMut::from(&whole[..cut]);
            assert_eq!(codec.decode(&mut part), Ok(None));
        }
        for i in 0..whole.len() {
            for bit in 0..8 {
                let mut bad = whole.clone();
                bad[i] ^= 1 << bit;
                assert!(
                    !matches!(codec.decode(&mut bad), Ok(Some(_))),
                    "flip at byte {i} bit {bit} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn bodies_are_shared_with_the_receive_buffer() {
        let mut codec = Codec::default();
        codec.set_max_payload(1 << 20);
        let mut buf = BytesMut::new();
        encode_with(&mut codec, &samples()[12], &mut buf);
        let start = buf.as_ptr() as usize;
        let end = start + buf.len();
        let Some(Frame::Request { body, .. }) = codec.decode(&mut buf).unwrap() else {
            panic!("a request")
        };
        let at = body.as_ptr() as usize;
        assert!(at >= start && at + body.len() <= end, "no copy of the body");
    }

    /// A fore-channel request on slot 0, sequence 1.
    fn fore_request(request: u64, order: u64, body: Bytes) -> Frame {
        Frame::Request {
            channel: Channel::Fore,
            slot: 0,
            seq: 1,
            request: RequestId(request),
            exchange: ExchangeId(1),
            order,
            body,
        }
    }

    /// A frame sent with `may_compress` false goes out uncompressed on a compressing
    /// connection (and the connection keeps compressing the others); both decode to the
    /// same frame.
    #[test]
    fn a_frame_can_opt_out_of_compression() {
        let mut codec = Codec::default();
        codec.set_options(true, true);
        codec.set_max_payload(1 << 20);
        let frame = fore_request(1, 0, Bytes::from(vec![b'a'; 4096]));
        for (may_compress, compressed) in [(false, false), (true, true), (false, false)] {
            let mut out = BytesMut::new();
            assert!(codec.encode(&frame, may_compress, &mut out).is_none());
            let header = wire::peek_header(&out, 1 << 20).unwrap().unwrap();
            assert_eq!(
                header.is_compressed(),
                compressed,
                "may_compress {may_compress}"
            );
            assert_eq!(codec.decode(&mut out).unwrap(), Some(frame.clone()));
        }
    }

    /// A large frame is received up to its last byte and the receive after it is small,
    /// so the next frame's first bytes never sit behind a large frame in storage that
    /// is then too small for it (and copied). Receives of at most 64 KiB, as the
    /// driver's, follow `receive_limit`; every frame still decodes.
    #[test]
    fn large_frames_are_received_exactly_and_the_next_receive_is_small() {
        let mut codec = Codec::default();
        codec.set_options(true, false);
        codec.set_max_payload(4 << 20);
        let request =
            |len: usize, fill: u8| fore_request(u64::from(fill), 0, Bytes::from(vec![fill; len]));
        let sent = [
            request(1 << 20, 1),
            request((1 << 20) + 5, 2),
            request(100, 3),
            request(300 * 1024, 4),
        ];
        let mut wire_bytes = BytesMut::new();
        let mut ends = Vec::new();
        for f in &sent {
            encode_with(&mut codec, f, &mut wire_bytes);
            ends.push(wire_bytes.len());
        }
        let (mut rx, mut at, mut got) = (BytesMut::new(), 0, Vec::new());
        let mut receives = Vec::new();
        while at < wire_bytes.len() {
            let limit = codec.receive_limit(rx.len()).unwrap_or(usize::MAX);
            let take = limit.min(64 * 1024).min(wire_bytes.len() - at);
            assert!(take > 0, "a receive of nothing at byte {at}");
            rx.extend_from_slice(&wire_bytes[at..at + take]);
            at += take;
            receives.push((at - take, at));
            while let Some(f) = codec.decode(&mut rx).unwrap() {
                got.push(f);
            }
            codec.prepare_storage(&mut rx);
        }
        assert_eq!(got, sent);
        for (i, &end) in ends.iter().enumerate().filter(|(i, _)| *i != 2) {
            assert!(
                receives.iter().any(|&(_, to)| to == end),
                "frame {i} (large) ends a receive"
            );
            if let Some(&(from, to)) = receives.iter().find(|&&(from, _)| from == end) {
                assert!(
                    to - from <= 4096,
                    "the receive after frame {i} took {}",
                    to - from
                );
            }
        }
    }

    /// With alignment asked for, a large request arriving in 64 KiB pieces (as from the
    /// driver's receive buffers, the next frame's start in the same piece as this one's
    /// end) decodes with `body[offset..]` on a page boundary, ordered or not, digested or
    /// not; small frames are left where they are.
    #[test]
    fn large_request_bodies_are_received_page_aligned_at_the_asked_offset() {
        const OFFSET: usize = 21;
        for (order, digest) in [(0, false), (4, true)] {
            let mut codec = Codec::default();
            codec.set_options(digest, false);
            codec.set_max_payload(4 << 20);
            codec.align_request_bodies_at(Some(OFFSET));
            let request =
                |len: usize, fill: u8| fore_request(1, order, Bytes::from(vec![fill; len]));
            let sent = [
                request((1 << 20) + 333, 1),
                request(100, 2),
                request(3 << 20, 3),
            ];
            let mut wire_bytes = BytesMut::new();
            for f in &sent {
                encode_with(&mut codec, f, &mut wire_bytes);
            }
            let mut rx = BytesMut::new();
            let mut got = Vec::new();
            for piece in wire_bytes.chunks(64 * 1024 + 7) {
                rx.extend_from_slice(piece);
                while let Some(f) = codec.decode(&mut rx).unwrap() {
                    got.push(f);
                }
                codec.prepare_storage(&mut rx);
            }
            assert_eq!(got, sent);
            for f in [&got[0], &got[2]] {
                let Frame::Request { body, .. } = f else {
                    panic!("a request")
                };
                let point = body[OFFSET..].as_ptr() as usize;
                assert_eq!(point % BODY_ALIGN, 0, "order {order}, digest {digest}");
            }
        }
    }

    #[test]
    fn compressible_payloads_shrink_and_oversized_ones_are_refused() {
        let mut codec = Codec::default();
        codec.set_options(true, true);
        codec.set_max_payload(1 << 20);
        let text = fore_request(1, 0, Bytes::from(b"all work and no play ".repeat(100)));
        let mut buf = BytesMut::new();
        encode_with(&mut codec, &text, &mut buf);
        assert!(buf.len() < 500, "{} bytes", buf.len());
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(text.clone()));
        let mut buf = BytesMut::new();
        encode_with(&mut codec, &text, &mut buf);
        codec.set_max_payload(1000);
        assert!(codec.decode(&mut buf).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut codec = Codec::default();
        let mut state = 0x1234_5678_u64;
        for _ in 0..2000 {
            let mut buf = BytesMut::new();
            let len = (state % 80) as usize;
            for _ in 0..len {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                buf.extend_from_slice(&[(state >> 33) as u8]);
            }
            let _ = codec.decode(&mut buf);
        }
    }
}
