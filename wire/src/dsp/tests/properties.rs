//! Properties of the DSP codec over generated frames: round trips, borrowed and shared
//! decoding, and every truncation or corruption refused without a panic.

use super::*;

/// Owned field values from which a frame of any kind is built (frames borrow).
#[derive(Debug, Clone)]
struct Fields {
    kind: FrameKind,
    back: bool,
    a: u32,
    b: u32,
    c: u64,
    d: u32,
    e: u8,
    order: Option<u64>,
    nonce: [u8; 16],
    attrs: [u32; 8],
    bytes: Vec<u8>,
    data: Option<Vec<u8>>,
    text: String,
}

fn body_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        // Compressible: runs of one byte, and repeated short patterns.
        (any::<u8>(), 0..5000usize).prop_map(|(b, n)| vec![b; n]),
        (proptest::collection::vec(any::<u8>(), 1..8), 0..600usize).prop_map(|(p, n)| p
            .iter()
            .copied()
            .cycle()
            .take(n * p.len())
            .collect()),
    ]
}

fn fields_strategy() -> impl Strategy<Value = Fields> {
    (
        (
            0..FrameKind::ALL.len(),
            any::<bool>(),
            any::<u32>(),
            any::<u32>(),
            any::<u64>(),
        ),
        (
            any::<u32>(),
            any::<u8>(),
            any::<Option<u64>>(),
            any::<[u8; 16]>(),
            any::<[u32; 8]>(),
        ),
        (
            body_strategy(),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
            "\\PC{0,40}",
        ),
    )
        .prop_map(
            |((k, back, a, b, c), (d, e, order, nonce, attrs), (bytes, data, text))| Fields {
                kind: FrameKind::ALL.get(k).copied().unwrap_or(FrameKind::Ping),
                back,
                a,
                b,
                c,
                d,
                e,
                order,
                nonce,
                attrs,
                bytes,
                data,
                text,
            },
        )
}

fn build(f: &Fields) -> Frame<'_> {
    let channel = if f.back { Channel::Back } else { Channel::Fore };
    let [s1, s2, s3, s4, s5, s6, s7, s8] = f.attrs;
    let fore = ChannelAttrs {
        slots: s1,
        max_request_size: s2,
        max_response_size: s3,
        max_cached_response_size: s4,
    };
    let back = ChannelAttrs {
        slots: s5,
        max_request_size: s6,
        max_response_size: s7,
        max_cached_response_size: s8,
    };
    let nexus = NexusId(f.nonce);
    let status = Status(f.e);
    let text = f.text.as_str();
    let bytes = f.bytes.as_slice();
    match f.kind {
        FrameKind::Hello => Frame::Hello(Hello {
            min_version: f.e.min(f.e ^ 0x55),
            max_version: f.e.max(f.e ^ 0x55),
            capabilities: Capabilities(f.a),
            nonce: f.nonce,
        }),
        FrameKind::Auth => Frame::Auth(Auth {
            mechanism: if text.is_empty() { "ANONYMOUS" } else { text },
            initial_response: f.data.as_deref(),
        }),
        FrameKind::AuthChallenge => Frame::AuthChallenge(AuthChallenge { data: bytes }),
        FrameKind::AuthResponse => Frame::AuthResponse(AuthResponse { data: bytes }),
        FrameKind::AuthResult => Frame::AuthResult(AuthResult {
            status,
            additional_data: f.data.as_deref().unwrap_or_default(),
            reason: text,
        }),
        FrameKind::NexusCreate => Frame::NexusCreate(NexusCreate {
            fore,
            back,
            grace_period_ms: f.a,
            features: NexusFeatures(f.b),
            client_identity: text,
        }),
        FrameKind::NexusCreated => Frame::NexusCreated(NexusCreated {
            status,
            nexus,
            fore,
            back,
            grace_period_ms: f.a,
            features: NexusFeatures(f.b),
            reason: text,
        }),
        FrameKind::BindConnection => Frame::BindConnection(BindConnection { nexus }),
        FrameKind::BindAck => Frame::BindAck(BindAck {
            status,
            nexus,
            reason: text,
        }),
        FrameKind::NexusRecover => Frame::NexusRecover(NexusRecover {
            nexus,
            client_identity: text,
        }),
        FrameKind::NexusRecovered => Frame::NexusRecovered(NexusRecovered {
            status,
            nexus,
            reason: text,
        }),
        FrameKind::NexusDestroy => Frame::NexusDestroy(NexusDestroy { nexus }),
        FrameKind::NexusDestroyed => Frame::NexusDestroyed(NexusDestroyed {
            status,
            nexus,
            reason: text,
        }),
        FrameKind::Request => Frame::Request(Request {
            channel,
            slot: f.a,
            sequence: f.b,
            request_id: f.c,
            exchange: f.d,
            order: f.order,
            body: bytes,
        }),
        FrameKind::Response => Frame::Response(Response {
            channel,
            slot: f.a,
            sequence: f.b,
            request_id: f.c,
            body: bytes,
        }),
        FrameKind::ResponseError => Frame::ResponseError(ResponseError {
            channel,
            slot: f.a,
            sequence: f.b,
            request_id: f.c,
            exception: bytes,
        }),
        FrameKind::Cancel => Frame::Cancel(Cancel {
            channel,
            slot: f.a,
            sequence: f.b,
            request_id: f.c,
        }),
        FrameKind::Credit => Frame::Credit(Credit {
            channel,
            slots: f.a,
        }),
        FrameKind::Ping => Frame::Ping(Ping { token: f.c }),
        FrameKind::Pong => Frame::Pong(Pong { token: f.c }),
        FrameKind::GoAway => Frame::GoAway(GoAway {
            code: GoAwayCode(u16::from(f.e)),
            reason: text,
        }),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_kind_round_trips(fields in fields_strategy(), digest: bool, lz4: bool) {
        let frame = build(&fields);
        let options = EncodeOptions {
            digest,
            compression: if lz4 { Compression::Lz4 } else { Compression::Off },
        };
        let wire = encode(&frame, options);
        if !lz4 {
            prop_assert_eq!(wire.len(), frame.encoded_len(digest));
        }
        let mut d = FrameDecoder::new(MAX);
        let (header, decoded, consumed) =
            d.decode_with_header(&wire).expect("decodes").expect("complete");
        prop_assert_eq!(decoded, frame);
        prop_assert_eq!(consumed, wire.len());
        prop_assert_eq!(header.has_digest(), digest);
        // Canonical: re-encoding what was decoded gives the same bytes.
        prop_assert_eq!(&encode(&decoded, options), &wire);
        // So does its shared form, owning its fields.
        let input = bytes::Bytes::copy_from_slice(&wire);
        let (decoded, _) = d.decode(&input).expect("decodes").expect("complete");
        let shared = decoded.to_shared(&input);
        prop_assert_eq!(shared.kind(), frame.kind());
        prop_assert_eq!(shared.body(), frame.body());
        prop_assert_eq!(encode(&shared, options), wire);
    }

    #[test]
    fn head_then_shared_body_equals_the_contiguous_encoding(
        fields in fields_strategy(), digest: bool, lz4: bool,
    ) {
        let frame = build(&fields);
        let options = EncodeOptions {
            digest,
            compression: if lz4 { Compression::Lz4 } else { Compression::Off },
        };
        let mut joined = Vec::new();
        let split = FrameEncoder::new(options)
            .encode_head(&frame, &mut joined)
            .expect("encodes");
        if let Some(split) = split {
            prop_assert_eq!(joined.as_slice(), split.head());
            prop_assert!(std::ptr::eq(split.body(), frame.body()), "body is not copied");
            joined.extend_from_slice(split.body());
            joined.extend_from_slice(split.trailer());
        }
        prop_assert_eq!(joined, encode(&frame, options));
    }

    /// A body compressed by the caller ([`compress_body`]) and sent with
    /// `encode_compressed` is the frame the encoder's own lz4 makes, and decodes to the
    /// original body; [`decompress_body`] gives it back too.
    #[test]
    fn a_body_compressed_by_the_caller_is_the_encoders_own_frame(
        body in body_strategy(), digest: bool, order in proptest::option::of(any::<u64>()),
    ) {
        fn request(body: &[u8], order: Option<u64>) -> Frame<'_> {
            Frame::Request(Request {
                channel: Channel::Fore,
                slot: 3,
                sequence: 9,
                request_id: 77,
                exchange: 0x4853_0001,
                order,
                body,
            })
        }
        let options = EncodeOptions { digest, compression: Compression::Lz4 };
        let expected = encode(&request(&body, order), options);
        match compress_body(&body) {
            Some(compressed) => {
                prop_assert_eq!(decompress_body(&compressed, body.len()).expect("inflates"), body.clone());
                prop_assert!(decompress_body(&compressed, body.len() - 1).is_err(), "over the limit");
                let mut wire = Vec::new();
                let header = FrameEncoder::new(options)
                    .encode_compressed(&request(&compressed, order), &mut wire)
                    .expect("encodes");
                prop_assert!(header.is_compressed());
                prop_assert_eq!(&wire, &expected);
                let mut d = FrameDecoder::new(MAX);
                let (decoded, _) = d.decode(&wire).expect("decodes").expect("complete");
                prop_assert_eq!(decoded, request(&body, order));
            }
            // Not worth it: the encoder sends it raw as well.
            None => prop_assert_eq!(&expected, &encode(&request(&body, order), EncodeOptions { digest, compression: Compression::Off })),
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512), max in 0u32..4096) {
        let mut d = FrameDecoder::new(max);
        let mut offset = 0;
        while let Ok(Some((_, consumed))) = d.decode(bytes.get(offset..).unwrap_or_default()) {
            prop_assert!(consumed >= HEADER_LEN);
            offset += consumed;
        }
        let _ = peek_header(&bytes, max);
    }

    #[test]
    fn corrupted_frames_never_panic_and_mostly_fail(
        fields in fields_strategy(),
        digest: bool,
        lz4: bool,
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let frame = build(&fields);
        let options = EncodeOptions {
            digest,
            compression: if lz4 { Compression::Lz4 } else { Compression::Off },
        };
        let mut wire = encode(&frame, options);
        let i = at.index(wire.len());
        if let Some(b) = wire.get_mut(i) {
            *b ^= flip;
        }
        let mut d = FrameDecoder::new(MAX);
        let result = d.decode(&wire);
        // A flipped header byte or a digested payload byte can never pass unnoticed.
        if i < HEADER_LEN || digest {
            prop_assert!(!matches!(result, Ok(Some(_))), "flip at {} went unnoticed", i);
        }
    }
}

#[test]
fn decoded_bodies_point_into_the_input() {
    let body = vec![5u8; 10_000];
    let frame = Frame::Request(Request {
        channel: Channel::Fore,
        slot: 0,
        sequence: 1,
        request_id: 2,
        exchange: 3,
        order: None,
        body: &body,
    });
    let wire = encode(
        &frame,
        EncodeOptions {
            digest: true,
            compression: Compression::Off,
        },
    );
    let mut d = FrameDecoder::new(MAX);
    let Ok(Some((Frame::Request(r), _))) = d.decode(&wire) else {
        panic!("request expected");
    };
    let input = wire.as_ptr_range();
    let decoded = r.body.as_ptr_range();
    assert!(
        input.start <= decoded.start && decoded.end <= input.end,
        "body was copied"
    );
    assert_eq!(r.body, &body[..]);
}

#[test]
fn shared_frames_share_the_input_and_copy_decompressed_bodies() {
    let body = vec![5u8; 10_000];
    let frame = Frame::Response(Response {
        channel: Channel::Back,
        slot: 1,
        sequence: 2,
        request_id: 3,
        body: &body,
    });
    for compression in [Compression::Off, Compression::Lz4] {
        let input = bytes::Bytes::from(encode(
            &frame,
            EncodeOptions {
                digest: false,
                compression,
            },
        ));
        let mut d = FrameDecoder::new(MAX);
        let (decoded, _) = d.decode(&input).unwrap().unwrap();
        let FrameOf::Response(r) = decoded.to_shared(&input) else {
            panic!("response expected");
        };
        assert_eq!(r.body, body);
        let inside = input.as_ptr_range().contains(&r.body.as_ptr());
        assert_eq!(inside, compression == Compression::Off, "{compression:?}");
    }
}

#[test]
fn receive_limit_after_bind_follows_the_spec() {
    let fore = ChannelAttrs {
        slots: 8,
        max_request_size: 4 << 20,
        max_response_size: 1 << 20,
        max_cached_response_size: 0,
    };
    let back = ChannelAttrs {
        slots: 2,
        max_request_size: 1000,
        max_response_size: 2000,
        max_cached_response_size: 0,
    };
    assert_eq!(
        max_payload_after_bind(Role::Server, &fore, &back),
        (4 << 20) + 12
    );
    assert_eq!(max_payload_after_bind(Role::Client, &fore, &back), 1 << 20);
    let tiny = ChannelAttrs::default();
    assert_eq!(
        max_payload_after_bind(Role::Client, &tiny, &tiny),
        HANDSHAKE_MAX_PAYLOAD
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// A receive loop whose buffer grows by arbitrary chunks sees "need more bytes" until
    /// each frame is complete, then exactly the frames that were sent.
    #[test]
    fn chunked_stream_yields_the_frames_sent(
        frames in proptest::collection::vec(fields_strategy(), 1..6),
        chunks in proptest::collection::vec(1usize..700, 1..40),
        digest: bool,
    ) {
        let options = EncodeOptions { digest, compression: Compression::Lz4 };
        let mut encoder = FrameEncoder::new(options);
        let mut wire = Vec::new();
        let mut sent = Vec::new();
        for fields in &frames {
            let frame = build(fields);
            encoder.encode(&frame, &mut wire).expect("encodes");
            sent.push(format!("{frame:?}"));
        }
        let mut decoder = FrameDecoder::new(MAX);
        let mut received = Vec::new();
        let (mut start, mut end) = (0, 0);
        let mut chunk = chunks.iter().cycle();
        while start < wire.len() {
            end = (end + chunk.next().copied().unwrap_or(1)).min(wire.len());
            let window = wire.get(start..end).expect("in range");
            // Decode everything complete in the window, like a receive loop.
            let mut offset = 0;
            while let Some((frame, consumed)) =
                decoder.decode(window.get(offset..).expect("in range")).expect("valid stream")
            {
                received.push(format!("{frame:?}"));
                offset += consumed;
            }
            start += offset;
        }
        prop_assert_eq!(received, sent);
    }
}
