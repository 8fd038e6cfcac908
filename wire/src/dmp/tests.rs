//! Hex vectors, error cases, streams and property tests for the whole DMP module.

use proptest::prelude::*;

use super::*;

fn encode_message(m: &Message<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    m.encode(&mut out).unwrap();
    out
}

fn s(text: &str) -> ShortStr<'_> {
    ShortStr::text(text).unwrap()
}

#[test]
fn null_message_is_four_zero_octets() {
    assert_eq!(encode_message(&Message::Null), [0, 0, 0, 0]);
    assert_eq!(
        Message::decode(&[0, 0, 0, 0, 9], 100),
        Ok(Some((Message::Null, 4)))
    );
}

#[test]
fn minimal_envelope_hex_vector() {
    let m = Message::Envelope(Envelope {
        exchange: s("ex"),
        routing_key: s("rk"),
        options: PublishOptions {
            mandatory: true,
            immediate: false,
        },
        body: b"hi",
        ..Envelope::default()
    });
    let expected =
        hex::decode("0000000e 02 6578 02 726b 0000 02 000002 6869".replace(' ', "")).unwrap();
    assert_eq!(encode_message(&m), expected);
    assert_eq!(
        Message::decode(&expected, 1 << 20),
        Ok(Some((m, expected.len())))
    );
}

#[test]
fn envelope_with_every_property_hex_vector() {
    let properties = Properties {
        content_type: Some(s("a")),
        content_encoding: Some(s("b")),
        headers: Some(b"\x01k"),
        delivery_mode: Some(2),
        priority: Some(9),
        correlation_id: Some(s("c")),
        reply_to: Some(s("d")),
        expiration: Some(s("e")),
        message_id: Some(s("f")),
        timestamp: Some(0x0102_0304_0506_0708),
        message_type: Some(s("g")),
        user_id: Some(s("h")),
        app_id: Some(s("i")),
        cluster_id: Some(s("j")),
    };
    assert_eq!(properties.flags(), 0xfffc);
    let m = Message::Envelope(Envelope {
        exchange: s(""),
        routing_key: s(""),
        properties,
        options: PublishOptions {
            mandatory: false,
            immediate: true,
        },
        body: b"",
    });
    let expected = hex::decode(
        [
            "0000002c",            // size 44
            "00",                  // exchange ""
            "00",                  // routing key ""
            "fffc",                // property flags
            "0161 0162",           // content-type, content-encoding
            "00000002 016b",       // headers (raw table)
            "02 09",               // delivery-mode, priority
            "0163 0164 0165 0166", // correlation-id, reply-to, expiration, message-id
            "0102030405060708",    // timestamp
            "0167 0168 0169 016a", // type, user-id, app-id, cluster-id
            "01",                  // options: immediate
            "000000",              // body length 0
        ]
        .concat()
        .replace(' ', ""),
    )
    .unwrap();
    assert_eq!(encode_message(&m), expected);
    assert_eq!(
        Message::decode(&expected, 1 << 20),
        Ok(Some((m, expected.len())))
    );
}

#[test]
fn message_waits_for_all_its_bytes() {
    let bytes = encode_message(&Message::Envelope(Envelope {
        body: b"0123456789",
        ..Envelope::default()
    }));
    for cut in 0..bytes.len() {
        assert_eq!(
            Message::decode(&bytes[..cut], 1 << 20),
            Ok(None),
            "cut {cut}"
        );
    }
}

#[test]
fn message_decode_errors() {
    let decode = |hex_text: &str| {
        let bytes = hex::decode(hex_text.replace(' ', "")).unwrap();
        Message::decode(&bytes, 1000).unwrap_err()
    };
    assert_eq!(
        decode("000003e9"),
        DmpError::at(
            0,
            DmpErrorKind::MessageTooLarge {
                size: 1001,
                max: 1000
            }
        )
    );
    // Size 8 but the exchange claims 9 bytes.
    assert_eq!(
        decode("00000008 09 00 0000 00 000000"),
        DmpError::at(4, DmpErrorKind::FieldPastEnd)
    );
    // Body length 2 but only one byte left inside the size.
    assert_eq!(
        decode("00000009 00 00 0000 00 000002 41"),
        DmpError::at(9, DmpErrorKind::FieldPastEnd)
    );
    // One byte inside the size after the body.
    assert_eq!(
        decode("00000009 00 00 0000 00 000000 41"),
        DmpError::at(12, DmpErrorKind::TrailingBytes(1))
    );
    assert_eq!(
        decode("00000008 00 00 0001 00 000000"),
        DmpError::at(7, DmpErrorKind::PropertyContinuation)
    );
    assert_eq!(
        decode("00000008 00 00 0002 00 000000"),
        DmpError::at(7, DmpErrorKind::ReservedPropertyFlag)
    );
    assert_eq!(
        decode("00000008 00 00 0000 04 000000"),
        DmpError::at(8, DmpErrorKind::ReservedOptionBits(4))
    );
    // A property announced by its flag but cut off by the size.
    assert_eq!(
        decode("00000006 00 00 0040 00 00"),
        DmpError::at(8, DmpErrorKind::FieldPastEnd)
    );
}

#[test]
fn encode_refuses_oversized_bodies() {
    let body = vec![0u8; MAX_BODY_LEN + 1];
    let m = Message::Envelope(Envelope {
        body: &body,
        ..Envelope::default()
    });
    let mut out = Vec::new();
    assert_eq!(
        m.encode(&mut out),
        Err(DmpEncodeError::BodyTooLong(MAX_BODY_LEN + 1))
    );
    assert!(out.is_empty(), "nothing written on failure");
}

fn decode_all<'a>(
    mut decoder: StreamDecoder,
    mut rest: &'a [u8],
) -> Result<Vec<Item<'a>>, DmpError> {
    let mut items = Vec::new();
    while let Some((item, consumed)) = decoder.decode(rest)? {
        items.push(item);
        rest = &rest[consumed..];
    }
    assert!(rest.is_empty(), "{} bytes left undecoded", rest.len());
    Ok(items)
}

fn encode_items(items: &[Item<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for item in items {
        item.encode(&mut out).unwrap();
    }
    out
}

#[test]
fn client_stream_put() {
    let items = [
        Item::Preamble(Preamble::DMP),
        Item::Command(Command { text: s("lease") }),
        Item::Message(Message::Envelope(Envelope {
            exchange: s("somesink"),
            body: b"one",
            ..Envelope::default()
        })),
        Item::Message(Message::Null),
    ];
    let wire = encode_items(&items);
    assert_eq!(&wire[..14], b"AMQP\x0a\x01\x00\x01\x05lease");
    assert_eq!(
        decode_all(StreamDecoder::new(Direction::ClientToServer), &wire).unwrap(),
        items
    );
    assert_eq!(decode_all(StreamDecoder::detect(), &wire).unwrap(), items);
}

#[test]
fn server_stream_get() {
    let items = [
        Item::Response(Response::new(ResponseCode::Ok, Some(b"DMP/0.1")).unwrap()),
        Item::Response(
            Response::new(ResponseCode::Ok, Some(b"Ready to read from \"feed\"")).unwrap(),
        ),
        Item::Message(Message::Null),
        Item::Message(Message::Envelope(Envelope {
            routing_key: s("rk"),
            body: b"two",
            ..Envelope::default()
        })),
        Item::Message(Message::Null),
    ];
    let wire = encode_items(&items);
    let mut detected = StreamDecoder::detect();
    assert_eq!(detected.decode(&wire[..0]), Ok(None));
    assert_eq!(
        decode_all(StreamDecoder::new(Direction::ServerToClient), &wire).unwrap(),
        items
    );
    let (first, _) = detected.decode(&wire).unwrap().unwrap();
    assert_eq!(first, items[0]);
    assert_eq!(detected.direction(), Some(Direction::ServerToClient));
}

#[test]
fn refused_lease_ends_the_stream() {
    let items = [
        Item::Response(Response::new(ResponseCode::Ok, Some(b"DMP/0.1")).unwrap()),
        Item::Response(Response::new(ResponseCode::BadLease, None).unwrap()),
    ];
    let mut wire = encode_items(&items);
    assert_eq!(decode_all(StreamDecoder::detect(), &wire).unwrap(), items);
    let at = wire.len();
    wire.extend_from_slice(&[0, 0, 0, 0]);
    assert_eq!(
        decode_all(StreamDecoder::detect(), &wire),
        Err(DmpError::at(at, DmpErrorKind::DataAfterRefusal))
    );
}

#[test]
fn stream_errors_count_from_the_start_of_the_stream() {
    let mut wire = Vec::new();
    Preamble::DMP.encode(&mut wire);
    wire.extend_from_slice(b"\x01L");
    wire.extend_from_slice(&hex::decode("00000008000000000400000000").unwrap());
    assert_eq!(
        decode_all(StreamDecoder::detect(), &wire),
        Err(DmpError::at(10 + 8, DmpErrorKind::ReservedOptionBits(4)))
    );
    assert_eq!(
        decode_all(StreamDecoder::new(Direction::ClientToServer), b"AMQX"),
        Err(DmpError::at(3, DmpErrorKind::NotAmqp))
    );
    assert_eq!(StreamDecoder::detect().decode(b"AM"), Ok(None));
}

fn short_str() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..=255)
}

#[derive(Debug, Clone)]
struct OwnedEnvelope {
    strings: Vec<Vec<u8>>,
    present: Vec<bool>,
    headers: Option<Vec<u8>>,
    delivery_mode: Option<u8>,
    priority: Option<u8>,
    timestamp: Option<u64>,
    options: u8,
    body: Vec<u8>,
}

fn owned_envelope() -> impl Strategy<Value = OwnedEnvelope> {
    (
        proptest::collection::vec(short_str(), 13),
        proptest::collection::vec(any::<bool>(), 13),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
        any::<Option<u8>>(),
        any::<Option<u8>>(),
        any::<Option<u64>>(),
        0u8..4,
        proptest::collection::vec(any::<u8>(), 0..512),
    )
        .prop_map(
            |(strings, present, headers, delivery_mode, priority, timestamp, options, body)| {
                OwnedEnvelope {
                    strings,
                    present,
                    headers,
                    delivery_mode,
                    priority,
                    timestamp,
                    options,
                    body,
                }
            },
        )
}

impl OwnedEnvelope {
    fn borrow(&self) -> Envelope<'_> {
        let at = |i: usize| ShortStr::new(&self.strings[i]).unwrap();
        let opt = |i: usize| self.present[i].then(|| at(i));
        Envelope {
            exchange: at(0),
            routing_key: at(1),
            properties: Properties {
                content_type: opt(2),
                content_encoding: opt(3),
                headers: self.headers.as_deref(),
                delivery_mode: self.delivery_mode,
                priority: self.priority,
                correlation_id: opt(4),
                reply_to: opt(5),
                expiration: opt(6),
                message_id: opt(7),
                timestamp: self.timestamp,
                message_type: opt(8),
                user_id: opt(9),
                app_id: opt(10),
                cluster_id: opt(11),
            },
            options: PublishOptions::from_octet(self.options).unwrap(),
            body: &self.body,
        }
    }
}

proptest! {
    #[test]
    fn envelope_round_trips(owned in owned_envelope()) {
        let message = Message::Envelope(owned.borrow());
        let bytes = encode_message(&message);
        prop_assert_eq!(Message::decode(&bytes, u32::MAX), Ok(Some((message, bytes.len()))));
    }

    #[test]
    fn response_round_trips(code in 0usize..9, explanation in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..230))) {
        let response = Response::new(ResponseCode::ALL[code], explanation.as_deref()).unwrap();
        let mut bytes = Vec::new();
        response.encode(&mut bytes);
        prop_assert_eq!(Response::decode(&bytes), Ok(Some((response, bytes.len()))));
    }

    #[test]
    fn command_and_preamble_round_trip(text in short_str(), raw in any::<[u8; 4]>()) {
        let command = Command { text: ShortStr::new(&text).unwrap() };
        let mut bytes = Vec::new();
        command.encode(&mut bytes);
        prop_assert_eq!(Command::decode(&bytes), Ok(Some((command, bytes.len()))));
        let preamble = Preamble { protocol_id: raw[0], instance: raw[1], major: raw[2], minor: raw[3] };
        let mut bytes = Vec::new();
        preamble.encode(&mut bytes);
        prop_assert_eq!(Preamble::decode(&bytes), Ok(Some((preamble, 8))));
    }

    #[test]
    fn stream_decoding_never_panics_and_reencodes_what_it_accepts(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
        prefix in 0usize..3,
    ) {
        // Bias some inputs towards a valid start so the later states are reached too.
        let mut input = match prefix {
            0 => b"AMQP\x0a\x01\x00\x01\x01L".to_vec(),
            1 => b"\x06200 OK\x06200 OK".to_vec(),
            _ => Vec::new(),
        };
        input.extend_from_slice(&bytes);
        let mut decoder = StreamDecoder::detect().with_max_message_size(4096);
        let mut rest = &input[..];
        while let Ok(Some((item, consumed))) = decoder.decode(rest) {
            let mut again = Vec::new();
            item.encode(&mut again).unwrap();
            prop_assert_eq!(&again[..], &rest[..consumed]);
            rest = &rest[consumed..];
        }
    }
}
