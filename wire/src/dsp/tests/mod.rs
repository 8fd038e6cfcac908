//! Hex vectors and error cases of the DSP codec; its properties over generated frames are
//! in `properties`.

use crate::xxh3::hash64;
use proptest::prelude::*;

use super::*;

const MAX: u32 = 1 << 20;

fn nexus() -> NexusId {
    NexusId::from_u128(0x0011_2233_4455_6677_8899_aabb_ccdd_eeff)
}

fn attrs(slots: u32) -> ChannelAttrs {
    ChannelAttrs {
        slots,
        max_request_size: 0x0010_0000,
        max_response_size: 0x0020_0000,
        max_cached_response_size: 0x1000,
    }
}

/// One sample of every kind, with the exact bytes it must encode to (digest off).
fn vectors() -> Vec<(Frame<'static>, &'static str)> {
    vec![
        (
            Frame::Hello(Hello {
                min_version: 1,
                max_version: 2,
                capabilities: Capabilities::DIGEST | Capabilities::LZ4,
                nonce: [0xab; 16],
            }),
            HELLO,
        ),
        (
            Frame::Auth(Auth {
                mechanism: "PLAIN",
                initial_response: Some(b"\0u\0p"),
            }),
            AUTH,
        ),
        (
            Frame::Auth(Auth {
                mechanism: "ANONYMOUS",
                initial_response: None,
            }),
            AUTH_NO_INITIAL,
        ),
        (
            Frame::AuthChallenge(AuthChallenge { data: b"nonce" }),
            AUTH_CHALLENGE,
        ),
        (
            Frame::AuthResponse(AuthResponse { data: b"proof" }),
            AUTH_RESPONSE,
        ),
        (
            Frame::AuthResult(AuthResult {
                status: Status::AUTH_FAILED,
                additional_data: b"sp",
                reason: "bad proof",
            }),
            AUTH_RESULT,
        ),
        (
            Frame::NexusCreate(NexusCreate {
                fore: attrs(64),
                back: attrs(4),
                grace_period_ms: 30_000,
                features: NexusFeatures::DIGEST | NexusFeatures::BACKCHANNEL,
                client_identity: "host-a",
            }),
            NEXUS_CREATE,
        ),
        (
            Frame::NexusCreated(NexusCreated {
                status: Status::OK,
                nexus: nexus(),
                fore: attrs(32),
                back: attrs(4),
                grace_period_ms: 30_000,
                features: NexusFeatures::DIGEST,
                reason: "",
            }),
            NEXUS_CREATED,
        ),
        (
            Frame::BindConnection(BindConnection { nexus: nexus() }),
            BIND_CONNECTION,
        ),
        (
            Frame::BindAck(BindAck {
                status: Status::OK,
                nexus: nexus(),
                reason: "",
            }),
            BIND_ACK,
        ),
        (
            Frame::NexusRecover(NexusRecover {
                nexus: nexus(),
                client_identity: "host-a",
            }),
            NEXUS_RECOVER,
        ),
        (
            Frame::NexusRecovered(NexusRecovered {
                status: Status::UNKNOWN_NEXUS,
                nexus: nexus(),
                reason: "expired",
            }),
            NEXUS_RECOVERED,
        ),
        (
            Frame::NexusDestroy(NexusDestroy { nexus: nexus() }),
            NEXUS_DESTROY,
        ),
        (
            Frame::NexusDestroyed(NexusDestroyed {
                status: Status::OK,
                nexus: nexus(),
                reason: "",
            }),
            NEXUS_DESTROYED,
        ),
        (
            Frame::Request(Request {
                channel: Channel::Fore,
                slot: 3,
                sequence: 9,
                request_id: 0x0102_0304_0506_0708,
                exchange: 0x2a,
                order: None,
                body: b"hello",
            }),
            REQUEST,
        ),
        (
            Frame::Request(Request {
                channel: Channel::Back,
                slot: 1,
                sequence: 2,
                request_id: 3,
                exchange: 7,
                order: Some(5),
                body: b"",
            }),
            REQUEST_ORDERED_BACK,
        ),
        (
            Frame::Response(Response {
                channel: Channel::Fore,
                slot: 3,
                sequence: 9,
                request_id: 0x0102_0304_0506_0708,
                body: b"world",
            }),
            RESPONSE,
        ),
        (
            Frame::ResponseError(ResponseError {
                channel: Channel::Back,
                slot: 0,
                sequence: 1,
                request_id: 2,
                exception: b"x",
            }),
            RESPONSE_ERROR,
        ),
        (
            Frame::Cancel(Cancel {
                channel: Channel::Fore,
                slot: 3,
                sequence: 9,
                request_id: 77,
            }),
            CANCEL,
        ),
        (
            Frame::Credit(Credit {
                channel: Channel::Back,
                slots: 8,
            }),
            CREDIT,
        ),
        (
            Frame::Ping(Ping {
                token: 0x1122_3344_5566_7788,
            }),
            PING,
        ),
        (
            Frame::Pong(Pong {
                token: 0x1122_3344_5566_7788,
            }),
            PONG,
        ),
        (
            Frame::GoAway(GoAway {
                code: GoAwayCode::SHUTTING_DOWN,
                reason: "bye",
            }),
            GO_AWAY,
        ),
    ]
}

include!("test_vectors.rs");

fn unhex(s: &str) -> Vec<u8> {
    let compact: String = s.split_whitespace().collect();
    hex::decode(compact).expect("test vector is hex")
}

fn encode<B: AsRef<[u8]>, T: AsRef<str>>(frame: &FrameOf<B, T>, options: EncodeOptions) -> Vec<u8> {
    let mut out = Vec::new();
    FrameEncoder::new(options)
        .encode(frame, &mut out)
        .expect("encodes");
    out
}

#[test]
#[ignore = "prints the vectors; run with --ignored --nocapture after a deliberate format change"]
fn print_vectors() {
    let spaced = |bytes: &[u8]| {
        let (head, payload) = bytes.split_at(HEADER_LEN);
        let h = hex::encode(head);
        let cuts = [0, 4, 6, 8, 12, 16, 24, 32, 48, 56, 64];
        let fields: Vec<&str> = cuts.windows(2).filter_map(|w| h.get(w[0]..w[1])).collect();
        format!("{} {}", fields.join(" "), hex::encode(payload))
    };
    for (frame, _) in vectors() {
        println!(
            "{:?}: {}",
            frame.kind(),
            spaced(&encode(&frame, EncodeOptions::default()))
        );
    }
    let digest = EncodeOptions {
        digest: true,
        compression: Compression::Off,
    };
    println!(
        "PING_DIGEST: {}",
        spaced(&encode(
            &Frame::Ping(Ping {
                token: 0x1122_3344_5566_7788
            }),
            digest
        ))
    );
    let body = [b'z'; 128];
    let lz4 = EncodeOptions {
        digest: false,
        compression: Compression::Lz4,
    };
    let frame = Frame::Request(Request {
        channel: Channel::Fore,
        slot: 1,
        sequence: 1,
        request_id: 1,
        exchange: 9,
        order: None,
        body: &body,
    });
    println!("REQUEST_LZ4: {}", spaced(&encode(&frame, lz4)));
}

#[test]
fn hex_vectors_encode_and_decode_exactly() {
    let mut scratch = Vec::new();
    for (frame, hex) in vectors() {
        let wire = unhex(hex);
        assert_eq!(
            hex::encode(encode(&frame, EncodeOptions::default())),
            hex::encode(&wire),
            "encoding of {frame:?}"
        );
        assert_eq!(frame.encoded_len(false), wire.len());
        let (header, decoded, consumed) = decode_frame(&wire, MAX, &mut scratch)
            .expect("vector decodes")
            .expect("vector is complete");
        assert_eq!(decoded, frame);
        assert_eq!(consumed, wire.len());
        assert_eq!(header, frame.header(false).expect("header"));
    }
}

#[test]
fn hex_vector_with_digest() {
    let frame = Frame::Ping(Ping {
        token: 0x1122_3344_5566_7788,
    });
    let wire = unhex(PING_DIGEST);
    let options = EncodeOptions {
        digest: true,
        compression: Compression::Off,
    };
    assert_eq!(hex::encode(encode(&frame, options)), hex::encode(&wire));
    // The trailer is xxh3-64 of the 8 payload bytes.
    let payload = wire.get(HEADER_LEN..HEADER_LEN + 8).expect("payload");
    assert_eq!(
        wire.get(HEADER_LEN + 8..),
        Some(&hash64(payload).to_be_bytes()[..])
    );
    let mut d = FrameDecoder::new(MAX);
    assert_eq!(d.decode(&wire), Ok(Some((frame, wire.len()))));
}

#[test]
fn hex_vector_compressed_request() {
    let body = [b'z'; 128];
    let frame = Frame::Request(Request {
        channel: Channel::Fore,
        slot: 1,
        sequence: 1,
        request_id: 1,
        exchange: 9,
        order: None,
        body: &body,
    });
    let wire = unhex(REQUEST_LZ4);
    let options = EncodeOptions {
        digest: false,
        compression: Compression::Lz4,
    };
    assert_eq!(hex::encode(encode(&frame, options)), hex::encode(&wire));
    let mut d = FrameDecoder::new(MAX);
    let (header, decoded, _) = d.decode_with_header(&wire).expect("ok").expect("whole");
    assert!(header.is_compressed());
    assert_eq!(decoded, frame);
}

#[test]
fn header_field_positions() {
    let header = FrameHeader {
        kind: FrameKind::Request,
        flags: Flags::DIGEST | Flags::ORDERED,
        slot: 0x0a0b_0c0d,
        sequence: 0x1112_1314,
        request_id: 0x2122_2324_2526_2728,
        payload_len: 0x0000_0100,
    };
    let bytes = header.to_bytes();
    assert_eq!(
        hex::encode(bytes.get(..28).expect("28 bytes")),
        "4857012000 0a 0000 0a0b0c0d 11121314 2122232425262728 00000100".replace(' ', "")
    );
    let checksum =
        u32::try_from(hash64(bytes.get(..28).expect("28")) & 0xffff_ffff).expect("low half");
    assert_eq!(bytes.get(28..), Some(&checksum.to_be_bytes()[..]));
    assert_eq!(parse_header(&bytes, 0x100), Ok(header));
    assert_eq!(header.frame_len(), 32 + 0x100 + 8);
}

/// A frame with hand-chosen header fields and a correct header checksum.
fn raw_frame(
    kind: u8,
    version: u8,
    flags: u16,
    reserved: u16,
    slot: u32,
    payload: &[u8],
) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&MAGIC.to_be_bytes());
    out.push(version);
    out.push(kind);
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&reserved.to_be_bytes());
    out.extend_from_slice(&slot.to_be_bytes());
    out.extend_from_slice(&[0; 12]);
    out.extend_from_slice(&u32::try_from(payload.len()).expect("small").to_be_bytes());
    let checksum = hash64(&out) & 0xffff_ffff;
    out.extend_from_slice(&u32::try_from(checksum).expect("low half").to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn decode_err(bytes: &[u8], max: u32) -> DspError {
    let mut scratch = Vec::new();
    match decode_frame(bytes, max, &mut scratch) {
        Err(e) => e,
        other => panic!("expected an error, got {other:?}"),
    }
}

const PING_KIND: u8 = 0x30;

#[test]
fn raw_frame_helper_agrees_with_the_encoder() {
    let wire = encode(&Frame::Ping(Ping { token: 5 }), EncodeOptions::default());
    assert_eq!(raw_frame(PING_KIND, 1, 0, 0, 0, &5u64.to_be_bytes()), wire);
}

#[test]
fn bad_magic_is_reported_from_two_bytes() {
    let mut d = FrameDecoder::new(MAX);
    assert_eq!(d.decode(b"GET / HTTP/1.1"), Err(DspError::BadMagic));
    assert_eq!(d.decode(b"G"), Ok(None));
    assert_eq!(peek_header(b"HX", MAX), Err(DspError::BadMagic));
}

#[test]
fn header_checksum_catches_every_header_bit() {
    let wire = encode(&vectors()[14].0, EncodeOptions::default());
    for byte in 2..HEADER_LEN {
        for bit in 0..8 {
            let mut bad = wire.clone();
            if let Some(b) = bad.get_mut(byte) {
                *b ^= 1 << bit;
            }
            assert_eq!(
                decode_err(&bad, MAX),
                DspError::HeaderChecksum,
                "byte {byte} bit {bit}"
            );
        }
    }
}

#[test]
fn version_kind_flags_and_reserved_fields_are_checked() {
    let token = 5u64.to_be_bytes();
    assert_eq!(
        decode_err(&raw_frame(PING_KIND, 2, 0, 0, 0, &token), MAX),
        DspError::UnsupportedVersion(2)
    );
    assert_eq!(
        decode_err(&raw_frame(0x7e, 1, 0, 0, 0, &token), MAX),
        DspError::UnknownKind(0x7e)
    );
    assert_eq!(
        decode_err(&raw_frame(PING_KIND, 1, 0x0012, 0, 0, &token), MAX),
        DspError::ReservedFlags(0x0012)
    );
    assert_eq!(
        decode_err(&raw_frame(PING_KIND, 1, 0, 1, 0, &token), MAX),
        DspError::ReservedField(1)
    );
    assert_eq!(
        decode_err(
            &raw_frame(PING_KIND, 1, Flags::BACKCHANNEL.bits(), 0, 0, &token),
            MAX
        ),
        DspError::FlagNotAllowed {
            kind: FrameKind::Ping,
            flags: Flags::BACKCHANNEL.bits()
        }
    );
    assert_eq!(
        decode_err(&raw_frame(0x21, 1, Flags::ORDERED.bits(), 0, 0, b""), MAX),
        DspError::FlagNotAllowed {
            kind: FrameKind::Response,
            flags: Flags::ORDERED.bits()
        }
    );
    assert_eq!(
        decode_err(&raw_frame(PING_KIND, 1, 0, 0, 7, &token), MAX),
        DspError::HeaderFieldNotZero(FrameKind::Ping)
    );
}

#[test]
fn too_long_is_rejected_from_the_header_alone() {
    let body = vec![0; 1000];
    let wire = encode(
        &Frame::Response(Response {
            channel: Channel::Fore,
            slot: 0,
            sequence: 0,
            request_id: 0,
            body: &body,
        }),
        EncodeOptions::default(),
    );
    let only_header = wire.get(..HEADER_LEN).expect("header");
    let mut d = FrameDecoder::new(999);
    assert_eq!(
        d.decode(only_header),
        Err(DspError::TooLong {
            len: 1000,
            max: 999
        })
    );
    assert_eq!(
        d.peek_header(only_header),
        Err(DspError::TooLong {
            len: 1000,
            max: 999
        })
    );
    d.set_max_payload(1000);
    assert_eq!(d.decode(only_header), Ok(None));
}

#[test]
fn digest_mismatch_is_detected() {
    let options = EncodeOptions {
        digest: true,
        compression: Compression::Off,
    };
    let wire = encode(&vectors()[14].0, options);
    for at in HEADER_LEN..wire.len() {
        let mut bad = wire.clone();
        if let Some(b) = bad.get_mut(at) {
            *b ^= 0x40;
        }
        assert_eq!(decode_err(&bad, MAX), DspError::DigestMismatch, "byte {at}");
    }
}

#[test]
fn truncated_trailing_and_text_errors() {
    assert_eq!(
        decode_err(&raw_frame(PING_KIND, 1, 0, 0, 0, &[0; 4]), MAX),
        DspError::Truncated(FrameKind::Ping)
    );
    assert_eq!(
        decode_err(&raw_frame(PING_KIND, 1, 0, 0, 0, &[0; 9]), MAX),
        DspError::TrailingBytes(FrameKind::Ping)
    );
    assert_eq!(
        decode_err(&raw_frame(0x3f, 1, 0, 0, 0, &[0, 1, 0xff]), MAX),
        DspError::BadUtf8(FrameKind::GoAway)
    );
    assert_eq!(
        decode_err(&raw_frame(0x08, 1, 0, 0, 0, &[1, b'X', 2]), MAX),
        DspError::InvalidField(FrameKind::Auth)
    );
    assert_eq!(
        decode_err(
            &raw_frame(
                0x01,
                1,
                0,
                0,
                0,
                &[
                    2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
                ]
            ),
            MAX
        ),
        DspError::InvalidField(FrameKind::Hello)
    );
    assert_eq!(
        decode_err(&raw_frame(0x20, 1, 0, 0, 0, &[0, 0]), MAX),
        DspError::Truncated(FrameKind::Request)
    );
    // A frame cut short is not an error but "need more bytes", at every length.
    let wire = encode(
        &vectors()[14].0,
        EncodeOptions {
            digest: true,
            compression: Compression::Off,
        },
    );
    let mut d = FrameDecoder::new(MAX);
    for cut in 0..wire.len() {
        assert_eq!(
            d.decode(wire.get(..cut).expect("prefix")),
            Ok(None),
            "cut at {cut}"
        );
    }
}

#[test]
fn compressed_bodies_are_bounded_and_checked() {
    let compressed = Flags::COMPRESSED.bits();
    // Announces a 2 MiB body in an 8-byte payload: refused before allocating.
    let mut payload = (2u32 << 20).to_be_bytes().to_vec();
    payload.extend_from_slice(&[0x1f, 0, 1, 0]);
    assert_eq!(
        decode_err(&raw_frame(0x21, 1, compressed, 0, 0, &payload), MAX),
        DspError::DecompressedTooLong {
            len: 2 << 20,
            max: MAX
        }
    );
    // A corrupt block.
    let mut payload = 100u32.to_be_bytes().to_vec();
    payload.extend_from_slice(&[0xff; 6]);
    assert_eq!(
        decode_err(&raw_frame(0x21, 1, compressed, 0, 0, &payload), MAX),
        DspError::Decompress
    );
    // A valid block that yields fewer bytes than announced.
    let mut payload = 100u32.to_be_bytes().to_vec();
    payload.extend_from_slice(&lz4_flex::block::compress(&[7; 50]));
    assert_eq!(
        decode_err(&raw_frame(0x21, 1, compressed, 0, 0, &payload), MAX),
        DspError::Decompress
    );
    // Compression on a kind without a body is a flag error.
    assert_eq!(
        decode_err(&raw_frame(PING_KIND, 1, compressed, 0, 0, &[0; 8]), MAX),
        DspError::FlagNotAllowed {
            kind: FrameKind::Ping,
            flags: compressed
        }
    );
}

/// `len` incompressible bytes from a generator seeded with `seed`.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    use rand_core::{Rng, SeedableRng};
    let mut bytes = vec![0u8; len];
    rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed).fill_bytes(&mut bytes);
    bytes
}

#[test]
fn auto_compression_skips_incompressible_and_small_bodies() {
    let options = EncodeOptions {
        digest: true,
        compression: Compression::Lz4,
    };
    let noise = noise(7, 4096);
    for (body, expect_compressed) in [
        (&noise[..], false),
        (&[0u8; 4096][..], true),
        (&[0u8; 16][..], false),
    ] {
        assert_response_compression(options, body, expect_compressed);
    }
}

/// Encodes `body` as a Response with `options`, checks whether it went compressed, and
/// that it decodes back.
fn assert_response_compression(options: EncodeOptions, body: &[u8], expect_compressed: bool) {
    let frame = Frame::Response(Response {
        channel: Channel::Fore,
        slot: 0,
        sequence: 0,
        request_id: 0,
        body,
    });
    let mut out = Vec::new();
    let header = FrameEncoder::new(options)
        .encode(&frame, &mut out)
        .expect("encodes");
    assert_eq!(
        header.is_compressed(),
        expect_compressed,
        "{} body bytes, {} on the wire",
        body.len(),
        out.len()
    );
    let mut d = FrameDecoder::new(4 << 20);
    assert_eq!(d.decode(&out), Ok(Some((frame, out.len()))));
}

#[test]
fn large_bodies_are_probed_before_being_compressed() {
    let options = EncodeOptions {
        digest: false,
        compression: Compression::Lz4,
    };
    let noise = noise(0x2545_f491_4f6c_dd1d, 1 << 20);
    // Random but for a compressible middle: the probe (taken from the middle) says
    // compress, and the whole body shrinks by about that middle.
    let mut middle_only = noise.clone();
    let mid = middle_only.len() / 2;
    middle_only[mid - 40_000..mid + 40_000].fill(7);
    // Compressible everywhere but in the middle: the probe says no, so it goes raw
    // although lz4 would have shrunk it (the price of probing).
    let mut all_but_middle = vec![1u8; 1 << 20];
    all_but_middle[mid - 40_000..mid + 40_000].copy_from_slice(&noise[..80_000]);
    for (body, expect_compressed) in [
        (&noise[..], false),
        (&vec![0u8; 1 << 20][..], true),
        (&middle_only[..], true),
        (&all_but_middle[..], false),
    ] {
        assert_response_compression(options, body, expect_compressed);
    }
}

#[test]
fn split_frames_match_contiguous_encoding() {
    let body = vec![3u8; 5000];
    for frame in [
        Frame::Request(Request {
            channel: Channel::Back,
            slot: 1,
            sequence: 2,
            request_id: 3,
            exchange: 4,
            order: Some(5),
            body: &body,
        }),
        Frame::Response(Response {
            channel: Channel::Fore,
            slot: 1,
            sequence: 2,
            request_id: 3,
            body: &body,
        }),
    ] {
        for digest in [false, true] {
            let split = frame.split(digest).expect("splittable").expect("valid");
            let mut joined = Vec::new();
            for piece in split.io_slices() {
                joined.extend_from_slice(&piece);
            }
            let mut contiguous = Vec::new();
            frame.encode(digest, &mut contiguous).expect("encodes");
            assert_eq!(joined, contiguous);
            assert_eq!(split.wire_len(), contiguous.len());
            assert!(std::ptr::eq(split.body(), &body[..]), "body is not copied");
        }
    }
    let long = Frame::GoAway(GoAway {
        code: GoAwayCode::NORMAL,
        reason: "a reason far longer than thirty-two bytes of fixed fields",
    });
    assert!(long.split(false).is_none());
}

#[test]
fn header_only_encoding_for_vectored_bodies() {
    let body = vec![9u8; 3000];
    let frame = Frame::Response(Response {
        channel: Channel::Fore,
        slot: 4,
        sequence: 5,
        request_id: 6,
        body: &body,
    });
    let header = frame.header(true).expect("header");
    let mut head = [0; HEADER_LEN];
    encode_header(&header, &mut head);
    let mut joined = head.to_vec();
    joined.extend_from_slice(&body);
    joined.extend_from_slice(&payload_digest(&[&body]).to_be_bytes());
    let mut contiguous = Vec::new();
    frame.encode(true, &mut contiguous).expect("encodes");
    assert_eq!(joined, contiguous);
}

#[test]
fn streaming_decoder_walks_concatenated_frames() {
    let options = EncodeOptions {
        digest: true,
        compression: Compression::Lz4,
    };
    let mut wire = Vec::new();
    let mut encoder = FrameEncoder::new(options);
    for (frame, _) in vectors() {
        encoder.encode(&frame, &mut wire).expect("encodes");
    }
    let mut d = FrameDecoder::new(MAX);
    let mut offset = 0;
    let mut decoded = Vec::new();
    while let Some((frame, consumed)) = d
        .decode(wire.get(offset..).expect("in range"))
        .expect("valid")
    {
        decoded.push(format!("{frame:?}"));
        offset += consumed;
    }
    assert_eq!(offset, wire.len());
    let expected: Vec<String> = vectors().iter().map(|(f, _)| format!("{f:?}")).collect();
    assert_eq!(decoded, expected);
}

#[test]
fn errors_map_to_goaway_codes() {
    assert_eq!(
        GoAwayCode::from(DspError::DigestMismatch),
        GoAwayCode::CORRUPT_FRAME
    );
    assert_eq!(
        GoAwayCode::from(DspError::TooLong { len: 2, max: 1 }),
        GoAwayCode::TOO_LARGE
    );
    assert_eq!(
        GoAwayCode::from(DspError::BadMagic),
        GoAwayCode::PROTOCOL_ERROR
    );
    assert_eq!(format!("{}", GoAwayCode(999)), "GoAwayCode(999)");
    assert_eq!(format!("{}", Status::UNKNOWN_NEXUS), "UNKNOWN_NEXUS");
    assert_eq!(format!("{}", Status(9)), "HELD");
    assert!(!Status::HELD.is_ok());
    assert_eq!(format!("{}", GoAwayCode(10)), "RESOURCE_EXHAUSTED");
}

mod properties;

#[test]
fn a_hello_carries_its_route_in_the_high_half_of_its_capabilities() {
    let caps = (Capabilities::DIGEST | Capabilities::LZ4).with_route(0xbeef);
    assert_eq!(caps.route(), Some(0xbeef));
    assert!(caps.contains(Capabilities::DIGEST | Capabilities::LZ4 | Capabilities::ROUTED));
    assert_eq!(Capabilities::DIGEST.route(), None);
    let hello = Frame::Hello(Hello {
        min_version: VERSION,
        max_version: VERSION,
        capabilities: caps,
        nonce: [5; 16],
    });
    let mut wire = Vec::new();
    FrameEncoder::new(EncodeOptions::default())
        .encode(&hello, &mut wire)
        .unwrap();
    let mut decoder = FrameDecoder::new(HANDSHAKE_MAX_PAYLOAD);
    let (decoded, _) = decoder.decode(&wire).unwrap().unwrap();
    let Frame::Hello(h) = decoded else {
        panic!("a Hello")
    };
    assert_eq!(h.capabilities.route(), Some(0xbeef));
    // A server's answer is an intersection with its own: no route survives it.
    let server = Capabilities::DIGEST | Capabilities::LZ4 | Capabilities::BACKCHANNEL;
    assert_eq!(h.capabilities.intersect(server).route(), None);
    // Both sides agree on an identity's route.
    assert_eq!(identity_route("alice"), identity_route("alice"));
    assert_ne!(identity_route("alice"), identity_route("bob"));
}
