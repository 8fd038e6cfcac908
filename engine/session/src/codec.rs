//! One connection's frame codec: encoding [`Frame`]s with the options the connection
//! agreed, large bodies going out from where they lie, and decoding received bytes into
//! frames whose bodies share the receive buffer (see `docs/PROTOCOL.md`, "DSP trunk
//! frames", for the bytes). The receive side also decides how much each receive should
//! take and where a large frame's storage starts, so that a large body lands in place.

use bytes::{Bytes, BytesMut};
use hawser_wire::dsp as wire;

use crate::config::StorageAdvice;

/// A trunk frame as the state machines hold it: owned, bodies shared with the buffer
/// they arrived in, so a request can wait in a retry queue and a reply in the reply
/// cache without borrowing anything.
pub(crate) type Frame = wire::SharedFrame;

/// Why bytes are not a frame: the wire codec's error.
pub type FrameError = wire::DspError;

/// Bytes a request payload carries besides the application body, at most: the exchange
/// id and the order number.
pub(crate) const REQUEST_OVERHEAD: usize = wire::Request::<Bytes>::MAX_FIXED_LEN;
/// What an unordered request carries besides its body: the exchange id.
const UNORDERED_REQUEST_OVERHEAD: usize = 4;

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
    /// Told of each aligned frame's storage when it is allocated.
    advice: Option<StorageAdvice>,
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
            decoder: wire::FrameDecoder::new(wire::HANDSHAKE_MAX_PAYLOAD),
            align_at: None,
            incomplete_len: None,
            incomplete_alignment: None,
            after_large: false,
            advice: None,
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

    /// Whether bodies may go out lz4-compressed (the hello agreed on it).
    pub(crate) fn compresses(&self) -> bool {
        self.encoder.options().compression == wire::Compression::Lz4
    }

    /// Appends `frame`, whose body the caller compressed already; false (nothing
    /// appended) if this connection does not compress or the frame cannot be sent so.
    pub(crate) fn encode_compressed(&mut self, frame: &Frame, out: &mut BytesMut) -> bool {
        self.compresses() && self.encoder.encode_compressed(frame, out).is_ok()
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

    /// Tells `advice` of each aligned frame's storage when it is allocated (see
    /// [`ServerConfig::advise_body_storage`](crate::ServerConfig::advise_body_storage)).
    pub(crate) fn advise_storage_with(&mut self, advice: Option<StorageAdvice>) {
        self.advice = advice;
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
            REQUEST_OVERHEAD
        } else {
            UNORDERED_REQUEST_OVERHEAD
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
            Frame::Request(wire::Request { body, .. })
            | Frame::Response(wire::Response { body, .. })
                if body.len() >= SHARED_BODY_MIN =>
            {
                Some(body)
            }
            _ => None,
        };
        // Every field is bounded by construction (negotiated sizes, short names); an
        // encoding error would be a bug here, and the frame is then simply not sent.
        let before = out.len();
        let encoded = match shared {
            Some(body) => self.encoder.encode_head(frame, out).map(|split| {
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
            None => self.encoder.encode(frame, out).map(|_| None),
        };
        encoded.unwrap_or_else(|_| {
            debug_assert!(false, "unencodable {} frame", frame.kind().name());
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
    /// storage of that frame's size once its header is seen: a copy of up to a receive
    /// buffer per frame, traded here for one more small receive.
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
            Some(point) => realign(rx, len, point, self.advice),
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
        let Some((frame, _)) = self.decoder.decode(&chunk)? else {
            // The header said the frame is complete; the codec disagrees.
            return Err(FrameError::Truncated(header.kind));
        };
        Ok(Some(frame.to_shared(&chunk)))
    }
}

/// Makes `rx` (the start of a frame of `frame_len` bytes, incomplete) room for the whole
/// frame with byte `point` of it on a [`BODY_ALIGN`] boundary, moving what arrived so
/// far once; later calls find it placed and leave it.
fn realign(rx: &mut BytesMut, frame_len: usize, point: usize, advice: Option<StorageAdvice>) {
    let placed = (rx.as_ptr() as usize + point).is_multiple_of(BODY_ALIGN);
    if placed && rx.capacity() >= frame_len {
        return;
    }
    // Room past the frame for the start of the next one, which arrives in the same
    // receive buffer as this one's end: growing the storage then would move it all.
    let mut placed = BytesMut::with_capacity(frame_len + BODY_ALIGN + REALIGN_SLACK);
    if let Some(advise) = advice {
        advise(placed.as_ptr(), placed.capacity());
    }
    let lead = (BODY_ALIGN - (placed.as_ptr() as usize + point) % BODY_ALIGN) % BODY_ALIGN;
    placed.resize(lead, 0);
    bytes::Buf::advance(&mut placed, lead);
    placed.extend_from_slice(rx);
    *rx = placed;
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
    use crate::auth::Mechanism;
    use crate::config::ChannelAttributes;
    use crate::frames;
    use crate::types::{Channel, ExchangeId, NexusId, SlotKey};
    use rand_core::{Rng, SeedableRng};
    use rand_xoshiro::Xoshiro256PlusPlus;
    use wire::Status;

    #[test]
    fn large_bodies_are_shared_not_copied_and_decode_the_same() {
        for (digest, compress) in [(false, false), (true, false), (true, true)] {
            let mut codec = Codec::default();
            codec.set_options(digest, compress);
            codec.set_max_payload(1 << 20);
            // Incompressible, so that lz4 (when on) leaves it raw and it can be shared.
            let mut body = vec![0; SHARED_BODY_MIN + 100];
            Xoshiro256PlusPlus::seed_from_u64(1).fill_bytes(&mut body);
            let body = Bytes::from(body);
            let frame = frames::response(Channel::Back, SlotKey::new(3, 4, 5), body.clone());
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

    /// Which of [`samples`] is a request.
    const REQUEST_SAMPLE: usize = 14;

    fn samples() -> Vec<Frame> {
        let attrs: wire::ChannelAttrs = ChannelAttributes::default().into();
        let nexus = NexusId(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
        let key = SlotKey::new(3, 9, 77);
        vec![
            frames::hello(true, true, [7; 16]),
            frames::auth(
                Mechanism::ScramSha256,
                Bytes::from_static(b"n,,n=client-a,r=abc"),
            ),
            frames::auth(Mechanism::Anonymous, Bytes::from_static(b"guest")),
            frames::auth_result(Status::OK, Bytes::from_static(b"proof"), String::new()),
            frames::auth_result(Status::AUTH_FAILED, Bytes::new(), "no".into()),
            Frame::NexusCreate(wire::NexusCreate {
                fore: attrs,
                back: attrs,
                grace_period_ms: 30_000,
                features: frames::SERVED_FEATURES,
                client_identity: "client-a".into(),
            }),
            frames::nexus_created(
                nexus,
                ChannelAttributes::default(),
                ChannelAttributes::default(),
                30_000,
                wire::NexusFeatures::BACKCHANNEL,
            ),
            frames::create_refused(Status::HELD, Some(nexus), 1500, "held".into()),
            Frame::BindConnection(wire::BindConnection {
                nexus: nexus.into(),
            }),
            Frame::NexusRecover(wire::NexusRecover {
                nexus: nexus.into(),
                client_identity: "client-a".into(),
            }),
            frames::bind_answer(Status::UNKNOWN_NEXUS, nexus, true, "gone".into()),
            frames::bind_answer(Status::OK, nexus, false, String::new()),
            Frame::NexusDestroy(wire::NexusDestroy {
                nexus: nexus.into(),
            }),
            Frame::NexusDestroyed(wire::NexusDestroyed {
                status: Status::OK,
                nexus: nexus.into(),
                reason: String::new(),
            }),
            frames::request(
                Channel::Back,
                key,
                ExchangeId(5),
                4,
                Bytes::from_static(b"hello"),
            ),
            frames::response(Channel::Fore, key, Bytes::from_static(b"world")),
            frames::response_error(Channel::Fore, key, Bytes::from_static(b"x")),
            frames::cancel(Channel::Fore, key),
            Frame::Credit(wire::Credit {
                channel: Channel::Back,
                slots: 8,
            }),
            Frame::Ping(wire::Ping { token: 5 }),
            Frame::Pong(wire::Pong { token: 5 }),
            frames::go_away(wire::GoAwayCode::IDLE_TIMEOUT, "bye".into()),
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
        encode_with(&mut codec, &samples()[REQUEST_SAMPLE], &mut whole);
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
        encode_with(&mut codec, &samples()[REQUEST_SAMPLE], &mut buf);
        let start = buf.as_ptr() as usize;
        let end = start + buf.len();
        let Some(Frame::Request(wire::Request { body, .. })) = codec.decode(&mut buf).unwrap()
        else {
            panic!("a request")
        };
        let at = body.as_ptr() as usize;
        assert!(at >= start && at + body.len() <= end, "no copy of the body");
    }

    /// A fore-channel request on slot 0, sequence 1.
    fn fore_request(request: u64, order: u64, body: Bytes) -> Frame {
        let key = SlotKey::new(0, 1, request);
        frames::request(Channel::Fore, key, ExchangeId(1), order, body)
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
                let Frame::Request(wire::Request { body, .. }) = f else {
                    panic!("a request")
                };
                let point = body[OFFSET..].as_ptr() as usize;
                assert_eq!(point % BODY_ALIGN, 0, "order {order}, digest {digest}");
            }
        }
    }

    thread_local! {
        static ADVISED: std::cell::RefCell<Vec<(usize, usize)>> =
            const { std::cell::RefCell::new(Vec::new()) };
    }

    fn record_advice(start: *const u8, len: usize) {
        ADVISED.with(|a| a.borrow_mut().push((start as usize, len)));
    }

    /// The advice hears of each aligned frame's storage once, and that storage holds the
    /// frame's whole body; frames received where they are (small ones) are not advised.
    #[test]
    fn the_storage_of_each_aligned_body_is_advised_once_before_it_is_filled() {
        let mut codec = Codec::default();
        codec.set_max_payload(4 << 20);
        codec.align_request_bodies_at(Some(0));
        codec.advise_storage_with(Some(record_advice));
        let sent = [
            fore_request(1, 0, Bytes::from(vec![7; 3 << 20])),
            fore_request(2, 0, Bytes::from(vec![8; 100])),
            fore_request(3, 0, Bytes::from(vec![9; 1 << 20])),
        ];
        let mut wire_bytes = BytesMut::new();
        for f in &sent {
            encode_with(&mut codec, f, &mut wire_bytes);
        }
        let (mut rx, mut got) = (BytesMut::new(), Vec::new());
        for piece in wire_bytes.chunks(64 * 1024) {
            rx.extend_from_slice(piece);
            while let Some(f) = codec.decode(&mut rx).unwrap() {
                got.push(f);
            }
            codec.prepare_storage(&mut rx);
        }
        assert_eq!(got, sent);
        let advised = ADVISED.with(|a| a.take());
        assert_eq!(advised.len(), 2, "{advised:?}");
        for (f, &(start, len)) in [&got[0], &got[2]].into_iter().zip(&advised) {
            let Frame::Request(wire::Request { body, .. }) = f else {
                panic!("a request")
            };
            let (from, to) = (body.as_ptr() as usize, body.as_ptr() as usize + body.len());
            assert!(
                start <= from && to <= start + len,
                "{start:#x}+{len} vs {from:#x}..{to:#x}"
            );
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
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(0x1234_5678);
        for _ in 0..2000 {
            let mut bytes = vec![0; (rng.next_u64() % 80) as usize];
            rng.fill_bytes(&mut bytes);
            let _ = codec.decode(&mut BytesMut::from(&bytes[..]));
        }
    }
}
