//! Hex vectors, decode errors and property tests for DTP.

use proptest::prelude::*;

use super::*;

fn iv(offset: u64, length: u64) -> Interval {
    Interval::new(offset, length).unwrap()
}

fn set(intervals: &[Interval]) -> IntervalSet {
    IntervalSet::from_canonical(intervals.to_vec()).unwrap()
}

fn hex_bytes(text: &str) -> Vec<u8> {
    hex::decode(text.replace(' ', "")).unwrap()
}

/// The key of the hex vectors: bytes 0x00 to 0x1f.
fn key() -> [u8; 32] {
    std::array::from_fn(|i| i as u8)
}

const KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

fn encode(message: &ControlMessage<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    message.encode(&mut out).unwrap();
    assert_eq!(out.len(), message.encoded_len());
    out
}

#[test]
fn transfer_request_hex_vector() {
    let message = ControlMessage::TransferRequest(TransferRequest {
        payload_id: b"ds",
        intervals: set(&[iv(0, 0x1000), iv(0x2000, 1)]),
        max_throughput: 125_000_000,
        mtu: 1472,
    });
    let expected = hex_bytes(
        "01 0002 6473 00000000077359 40 05c0 00000002 \
         0000000000000000 0000000000001000 0000000000002000 0000000000000001",
    );
    assert_eq!(encode(&message), expected);
    assert_eq!(ControlMessage::decode(&expected), Ok(message));
}

#[test]
fn transfer_response_hex_vector() {
    let message = ControlMessage::TransferResponse(TransferResponse {
        session_id: 7,
        total_size: 0x1_0000_0001,
        bytes_expected: 0x1000,
        form: DatagramForm::Extended,
        datagram_size: 1472,
        key: key(),
        data_port: 8415,
    });
    let expected = hex_bytes(
        "02 00000007 0000000100000001 0000000000001000 01 05c0 \
         000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f 20df",
    );
    assert_eq!(encode(&message), expected);
    assert_eq!(ControlMessage::decode(&expected), Ok(message));
}

#[test]
fn hole_report_hex_vectors() {
    let resend = ControlMessage::HoleReport(HoleReport {
        session_id: 7,
        stop: false,
        holes: set(&[iv(0x10, 0x20)]),
    });
    let expected = hex_bytes("03 00000007 00 00000001 0000000000000010 0000000000000020");
    assert_eq!(encode(&resend), expected);
    assert_eq!(ControlMessage::decode(&expected), Ok(resend));
    let complete = ControlMessage::HoleReport(HoleReport {
        session_id: 7,
        stop: true,
        holes: IntervalSet::new(),
    });
    let expected = hex_bytes("03 00000007 01 00000000");
    assert_eq!(encode(&complete), expected);
    assert_eq!(ControlMessage::decode(&expected), Ok(complete));
}

#[test]
fn push_request_hex_vector() {
    let message = ControlMessage::PushRequest(PushRequest {
        payload_id: b"ds",
        total_size: 0x2000,
        max_throughput: 125_000_000,
        mtu: 1472,
        resume: true,
    });
    let expected = hex_bytes("04 0002 6473 0000000000002000 0000000007735940 05c0 01");
    assert_eq!(encode(&message), expected);
    assert_eq!(ControlMessage::decode(&expected), Ok(message));
}

#[test]
fn push_response_hex_vector() {
    let message = ControlMessage::PushResponse(PushResponse {
        session_id: 9,
        form: DatagramForm::Basic,
        datagram_size: 1472,
        key: key(),
        data_port: 8415,
        wanted: set(&[iv(0, 0x2000)]),
    });
    let expected = hex_bytes(
        "05 00000009 00 05c0 \
         000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f 20df \
         00000001 0000000000000000 0000000000002000",
    );
    assert_eq!(encode(&message), expected);
    assert_eq!(ControlMessage::decode(&expected), Ok(message));
}

fn encode_feedback(feedback: &Feedback) -> Vec<u8> {
    let mut out = Vec::new();
    feedback.encode(&mut out).unwrap();
    assert_eq!(out.len(), feedback.encoded_len());
    out
}

#[test]
fn feedback_hex_vectors() {
    let report = Feedback {
        session_id: 7,
        sequence: 3,
        complete: false,
        final_pass: true,
        received_bytes: 0x10000,
        received_datagrams: 45,
        delivery_rate: 12_500_000,
        echo_offset: 0xf000,
        echo_hold_us: 250,
        holes: set(&[iv(0x1000, 0x5c0)]),
    };
    let expected = hex_bytes(
        "00000007 00000003 02 0000000000010000 000000000000002d 0000000000bebc20 \
         000000000000f000 000000fa 00000001 0000000000001000 00000000000005c0",
    );
    assert_eq!(encode_feedback(&report), expected);
    assert_eq!(Feedback::decode(&expected), Ok(report));

    let hello = Feedback {
        session_id: 7,
        sequence: 0,
        complete: false,
        final_pass: false,
        received_bytes: 0,
        received_datagrams: 0,
        delivery_rate: 0,
        echo_offset: 0,
        echo_hold_us: 0,
        holes: IntervalSet::new(),
    };
    let expected = hex_bytes(
        "00000007 00000000 00 0000000000000000 0000000000000000 0000000000000000 \
         0000000000000000 00000000 00000000",
    );
    assert_eq!(expected.len(), Feedback::FIXED_LEN);
    assert_eq!(encode_feedback(&hello), expected);
    assert_eq!(Feedback::decode(&expected), Ok(hello));
}

#[test]
fn feedback_errors_and_room() {
    use DtpErrorKind::*;
    let fixed = "00000007 00000001 {flags} 0000000000000000 0000000000000000 \
                 0000000000000000 0000000000000000 00000000 00000000";
    let body = |flags: &str| hex_bytes(&fixed.replace("{flags}", flags));
    assert_eq!(
        Feedback::decode(&body("04")),
        Err(DtpError::at(8, ReservedFlags(4)))
    );
    let mut trailing = body("03");
    assert!(Feedback::decode(&trailing).is_ok());
    trailing.push(0);
    assert_eq!(
        Feedback::decode(&trailing),
        Err(DtpError::at(49, TrailingBytes(1)))
    );
    assert_eq!(Feedback::decode(&[]), Err(DtpError::at(0, Truncated)));
    assert_eq!(
        Feedback::decode(&body("00")[..48]),
        Err(DtpError::at(45, Truncated))
    );
    assert_eq!(Feedback::holes_that_fit(0), 0);
    assert_eq!(Feedback::holes_that_fit(Feedback::FIXED_LEN + 15), 0);
    assert_eq!(Feedback::holes_that_fit(Feedback::FIXED_LEN + 16), 1);
    // A 1472-byte UDP payload less the 8-byte tag.
    assert_eq!(Feedback::holes_that_fit(1464), (1464 - 49) / 16);
}

#[test]
fn datagram_hex_vectors() {
    let basic = hex_bytes("00001000 6869");
    let decoded = Datagram::decode(&basic, DatagramForm::Basic).unwrap();
    assert_eq!(
        decoded,
        Datagram::Basic {
            offset: 0x1000,
            data: b"hi"
        }
    );
    let mut out = Vec::new();
    decoded.encode(&mut out);
    assert_eq!(out, basic);

    let extended = hex_bytes("00000007 0000000100000000 6869");
    let decoded = Datagram::decode(&extended, DatagramForm::Extended).unwrap();
    assert_eq!(
        decoded,
        Datagram::Extended {
            session_id: 7,
            offset: 1 << 32,
            data: b"hi"
        }
    );
    assert_eq!((decoded.offset(), decoded.data()), (1 << 32, &b"hi"[..]));
    let mut out = Vec::new();
    decoded.encode(&mut out);
    assert_eq!(out, extended);
    // The data borrows from the packet.
    assert!(std::ptr::eq(
        decoded.data().as_ptr(),
        extended[12..].as_ptr()
    ));
}

#[test]
fn datagram_errors() {
    assert_eq!(
        Datagram::decode(&[0, 0, 1], DatagramForm::Basic),
        Err(DtpError::at(0, DtpErrorKind::DatagramTooShort))
    );
    assert_eq!(
        Datagram::decode(&[0; 11], DatagramForm::Extended),
        Err(DtpError::at(0, DtpErrorKind::DatagramTooShort))
    );
    // Ends one byte past 4 GiB.
    assert_eq!(
        Datagram::decode(&hex_bytes("ffffffff 0102"), DatagramForm::Basic),
        Err(DtpError::at(4, DtpErrorKind::DatagramBeyondRange))
    );
    assert!(Datagram::decode(&hex_bytes("ffffffff 01"), DatagramForm::Basic).is_ok());
    assert_eq!(
        Datagram::decode(
            &hex_bytes("00000000 ffffffffffffffff 01"),
            DatagramForm::Extended
        ),
        Err(DtpError::at(12, DtpErrorKind::DatagramBeyondRange))
    );
}

#[test]
fn control_decode_errors() {
    let err = |text: &str| ControlMessage::decode(&hex_bytes(text)).unwrap_err();
    use DtpErrorKind::*;
    assert_eq!(err(""), DtpError::at(0, Empty));
    assert_eq!(err("09"), DtpError::at(0, UnknownTag(9)));
    assert_eq!(err("01 0005 6473"), DtpError::at(1, Truncated));
    assert_eq!(
        err("01 0000 0000000000000000 003f 00000000"),
        DtpError::at(11, MtuTooSmall(63))
    );
    assert_eq!(
        err("01 0000 0000000000000000 0040 00000002 0000000000000000 0000000000000001"),
        DtpError::at(13, CountExceedsInput(2))
    );
    assert_eq!(
        err("01 0000 0000000000000000 0040 00000001 0000000000000000 0000000000000000"),
        DtpError::at(25, EmptyInterval)
    );
    assert_eq!(
        err("01 0000 0000000000000000 0040 00000001 ffffffffffffffff 0000000000000001"),
        DtpError::at(17, IntervalOverflow)
    );
    assert_eq!(
        err("03 00000001 00 00000002 0000000000000000 0000000000000002 \
             0000000000000002 0000000000000001"),
        DtpError::at(26, IntervalsNotCanonical)
    );
    assert_eq!(
        err("03 00000001 02 00000000"),
        DtpError::at(5, ReservedFlags(2))
    );
    assert_eq!(
        err("03 00000001 00 00000000 00"),
        DtpError::at(10, TrailingBytes(1))
    );
    assert_eq!(
        err(&format!(
            "02 00000001 0000000000000010 0000000000000011 00 0040 {KEY_HEX} 20df"
        )),
        DtpError::at(13, ExpectedExceedsTotal)
    );
    assert_eq!(
        err(&format!(
            "02 00000001 0000000000000010 0000000000000010 02 0040 {KEY_HEX} 20df"
        )),
        DtpError::at(21, UnknownForm(2))
    );
    assert_eq!(
        err(&format!(
            "02 00000001 0000000100000001 0000000000000010 00 0040 {KEY_HEX} 20df"
        )),
        DtpError::at(21, BasicFormTooLarge)
    );
    assert_eq!(
        err(&format!(
            "02 00000001 0000000000000010 0000000000000010 01 000c {KEY_HEX} 20df"
        )),
        DtpError::at(22, DatagramSizeTooSmall(12))
    );
    assert_eq!(
        err("02 00000001 0000000000000010 0000000000000010 01 00"),
        DtpError::at(22, Truncated)
    );
    assert_eq!(
        err("02 00000001 0000000000000010 0000000000000010 01 0040 0001"),
        DtpError::at(24, Truncated)
    );
    assert_eq!(
        err("04 0000 0000000000000000 0000000000000000 003f 00"),
        DtpError::at(19, MtuTooSmall(63))
    );
    assert_eq!(
        err("04 0000 0000000000000000 0000000000000000 0040 02"),
        DtpError::at(21, ReservedFlags(2))
    );
    assert_eq!(
        err(&format!("05 00000001 02 0040 {KEY_HEX} 20df 00000000")),
        DtpError::at(5, UnknownForm(2))
    );
    assert_eq!(
        err(&format!("05 00000001 00 0004 {KEY_HEX} 20df 00000000")),
        DtpError::at(6, DatagramSizeTooSmall(4))
    );
    assert_eq!(
        err(&format!("05 00000001 00 0040 {KEY_HEX} 20df")),
        DtpError::at(42, Truncated)
    );
}

#[test]
fn capture_records_and_errors() {
    let datagram = Datagram::Basic {
        offset: 5,
        data: b"x",
    };
    let mut capture = Vec::new();
    Record::Datagram(datagram).encode(&mut capture).unwrap();
    assert_eq!(capture, hex_bytes("02 00000005 00000005 78"));
    let mut decoder = CaptureDecoder::new();
    for cut in 0..capture.len() {
        assert_eq!(decoder.decode(&capture[..cut]), Ok(None));
    }
    assert_eq!(
        decoder.decode(&capture),
        Ok(Some((Record::Datagram(datagram), 10)))
    );
    // Errors in later records count from the start of the file.
    assert_eq!(
        decoder.decode(&hex_bytes("07 00000000")),
        Err(DtpError::at(10, DtpErrorKind::UnknownRecordKind(7)))
    );
    assert_eq!(
        decoder.decode(&hex_bytes("02 00010000")),
        Err(DtpError::at(
            11,
            DtpErrorKind::RecordTooLarge {
                len: 65536,
                max: MAX_DATAGRAM_RECORD
            }
        ))
    );
    assert_eq!(
        decoder.decode(&hex_bytes("01 00000001 09")),
        Err(DtpError::at(15, DtpErrorKind::UnknownTag(9)))
    );
}

fn interval_set() -> impl Strategy<Value = IntervalSet> {
    proptest::collection::vec((any::<u64>(), 1u64..1 << 20), 0..8).prop_map(|pairs| {
        pairs
            .into_iter()
            .filter_map(|(offset, length)| Interval::new(offset, length))
            .collect()
    })
}

fn form() -> impl Strategy<Value = DatagramForm> {
    any::<bool>().prop_map(|extended| {
        if extended {
            DatagramForm::Extended
        } else {
            DatagramForm::Basic
        }
    })
}

fn feedback() -> impl Strategy<Value = Feedback> {
    (
        (any::<u32>(), any::<u32>(), any::<bool>(), any::<bool>()),
        (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()),
        any::<u32>(),
        interval_set(),
    )
        .prop_map(
            |(
                (session_id, sequence, complete, final_pass),
                (received_bytes, received_datagrams, delivery_rate, echo_offset),
                echo_hold_us,
                holes,
            )| Feedback {
                session_id,
                sequence,
                complete,
                final_pass,
                received_bytes,
                received_datagrams,
                delivery_rate,
                echo_offset,
                echo_hold_us,
                holes,
            },
        )
}

fn control_message() -> impl Strategy<Value = (Vec<u8>, ControlMessage<'static>)> {
    prop_oneof![
        (
            proptest::collection::vec(any::<u8>(), 0..40),
            interval_set(),
            any::<u64>(),
            MIN_MTU..,
        )
            .prop_map(|(id, intervals, max_throughput, mtu)| {
                // The id is leaked so the borrowed message can be 'static in the strategy.
                let payload_id: &'static [u8] = Box::leak(id.clone().into_boxed_slice());
                (
                    id,
                    ControlMessage::TransferRequest(TransferRequest {
                        payload_id,
                        intervals,
                        max_throughput,
                        mtu,
                    }),
                )
            }),
        (
            any::<u32>(),
            any::<u64>(),
            any::<u64>(),
            any::<bool>(),
            13u16..,
            any::<[u8; 32]>(),
            any::<u16>(),
        )
            .prop_map(
                |(session_id, a, b, extended, datagram_size, key, data_port)| {
                    let (bytes_expected, total_size) = (a.min(b), a.max(b));
                    let form = if extended || total_size > DatagramForm::BASIC_MAX_PAYLOAD {
                        DatagramForm::Extended
                    } else {
                        DatagramForm::Basic
                    };
                    (
                        Vec::new(),
                        ControlMessage::TransferResponse(TransferResponse {
                            session_id,
                            total_size,
                            bytes_expected,
                            form,
                            datagram_size,
                            key,
                            data_port,
                        }),
                    )
                }
            ),
        (any::<u32>(), any::<bool>(), interval_set()).prop_map(|(session_id, stop, holes)| {
            (
                Vec::new(),
                ControlMessage::HoleReport(HoleReport {
                    session_id,
                    stop,
                    holes,
                }),
            )
        }),
        (
            proptest::collection::vec(any::<u8>(), 0..40),
            any::<u64>(),
            any::<u64>(),
            MIN_MTU..,
            any::<bool>(),
        )
            .prop_map(|(id, total_size, max_throughput, mtu, resume)| {
                // The id is leaked so the borrowed message can be 'static in the strategy.
                let payload_id: &'static [u8] = Box::leak(id.clone().into_boxed_slice());
                (
                    id,
                    ControlMessage::PushRequest(PushRequest {
                        payload_id,
                        total_size,
                        max_throughput,
                        mtu,
                        resume,
                    }),
                )
            }),
        (
            any::<u32>(),
            form(),
            13u16..,
            any::<[u8; 32]>(),
            any::<u16>(),
            interval_set(),
        )
            .prop_map(
                |(session_id, form, datagram_size, key, data_port, wanted)| {
                    (
                        Vec::new(),
                        ControlMessage::PushResponse(PushResponse {
                            session_id,
                            form,
                            datagram_size,
                            key,
                            data_port,
                            wanted,
                        }),
                    )
                },
            ),
    ]
}

proptest! {
    #[test]
    fn control_messages_round_trip((_id, message) in control_message()) {
        let bytes = encode(&message);
        prop_assert_eq!(ControlMessage::decode(&bytes), Ok(message.clone()));
        let mut record = Vec::new();
        Record::Control(message.clone()).encode(&mut record).unwrap();
        prop_assert_eq!(Record::decode(&record), Ok(Some((Record::Control(message), record.len()))));
    }

    #[test]
    fn feedback_round_trips(feedback in feedback()) {
        let bytes = encode_feedback(&feedback);
        prop_assert_eq!(Feedback::decode(&bytes), Ok(feedback));
    }

    #[test]
    fn datagrams_round_trip(
        session_id in any::<u32>(),
        offset in any::<u64>(),
        data in proptest::collection::vec(any::<u8>(), 0..64),
        extended in any::<bool>(),
    ) {
        let datagram = if extended {
            Datagram::Extended { session_id, offset: offset >> 1, data: &data }
        } else {
            Datagram::Basic { offset: (offset >> 33) as u32, data: &data }
        };
        let mut bytes = Vec::new();
        datagram.encode(&mut bytes);
        prop_assert_eq!(Datagram::decode(&bytes, datagram.form()), Ok(datagram));
        let mut record = Vec::new();
        Record::Datagram(datagram).encode(&mut record).unwrap();
        prop_assert_eq!(Record::decode(&record), Ok(Some((Record::Datagram(datagram), record.len()))));
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(message) = ControlMessage::decode(&bytes) {
            prop_assert_eq!(encode(&message), bytes.clone());
        }
        if let Ok(feedback) = Feedback::decode(&bytes) {
            prop_assert_eq!(encode_feedback(&feedback), bytes.clone());
        }
        for form in [DatagramForm::Basic, DatagramForm::Extended] {
            if let Ok(datagram) = Datagram::decode(&bytes, form) {
                let mut again = Vec::new();
                datagram.encode(&mut again);
                prop_assert_eq!(&again, &bytes);
            }
        }
        let mut decoder = CaptureDecoder::new();
        let mut rest = &bytes[..];
        while let Ok(Some((record, used))) = decoder.decode(rest) {
            let mut again = Vec::new();
            record.encode(&mut again).unwrap();
            prop_assert_eq!(&again[..], &rest[..used]);
            rest = &rest[used..];
        }
    }

    #[test]
    fn control_messages_with_a_valid_tag_never_panic(
        tag in 1u8..=5,
        bytes in proptest::collection::vec(any::<u8>(), 0..128),
    ) {
        let mut input = vec![tag];
        input.extend_from_slice(&bytes);
        if let Ok(message) = ControlMessage::decode(&input) {
            prop_assert_eq!(encode(&message), input);
        }
    }
}
