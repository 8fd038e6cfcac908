//! The seed's examples as test vectors, every decode error, and property tests.

use proptest::prelude::*;

use super::*;

fn foo_bar(value: Value) -> Node {
    Node::named("foo bar", value)
}

/// The seed's examples (the last one with each node on its own line, as on the wire).
fn seed_vectors() -> Vec<(&'static [u8], Node)> {
    vec![
        (b". 0\n", Node::unnamed(Value::Empty)),
        (b"foo%20bar 0\n", foo_bar(Value::Empty)),
        (b"foo%20bar 2 42\n", foo_bar(Value::Int(42))),
        (
            b"foo%20bar 3 42.1315927\n",
            foo_bar(Value::Float(42.1315927)),
        ),
        (
            b"foo%20bar 1 zorkmid%E2%98%AF%EF%B8%8F\n",
            foo_bar(Value::String("zorkmid\u{262F}\u{FE0F}".into())),
        ),
        (
            b"foo%20bar 7 foo%80bar\n",
            foo_bar(Value::UnsafeString(vec![102, 111, 111, 0x80, 98, 97, 114])),
        ),
        (
            b"foo%20bar 4 1\ninfocom 4 1\nzork 5 3\n. 2 1\n. 2 2\n. 2 3\n",
            foo_bar(Value::Struct(vec![Node::named(
                "infocom",
                Value::Struct(vec![Node::named(
                    "zork",
                    Value::List(vec![
                        Node::unnamed(Value::Int(1)),
                        Node::unnamed(Value::Int(2)),
                        Node::unnamed(Value::Int(3)),
                    ]),
                )]),
            )])),
        ),
    ]
}

#[test]
fn seed_examples_decode() {
    for (text, node) in seed_vectors() {
        assert_eq!(decode(text), Ok(node), "{}", text.escape_ascii());
    }
}

#[test]
fn seed_examples_encode() {
    for (text, node) in seed_vectors() {
        assert_eq!(node.to_text(), text, "{node:?}");
    }
}

#[test]
fn other_types_and_edge_names() {
    let vectors: Vec<(&[u8], Node)> = vec![
        (
            b"n 8 -9223372036854775808\n",
            Node::named("n", Value::Long(i64::MIN)),
        ),
        (b"n 2 -2147483648\n", Node::named("n", Value::Int(i32::MIN))),
        (b"%2E 0\n", Node::named(".", Value::Empty)),
        (b" 0\n", Node::named("", Value::Empty)),
        (b". 1 \n", Node::unnamed(Value::String(String::new()))),
        (b". 7 \n", Node::unnamed(Value::UnsafeString(Vec::new()))),
        (b". 4 0\n", Node::unnamed(Value::Struct(Vec::new()))),
        (b". 5 0\n", Node::unnamed(Value::List(Vec::new()))),
        (b". 3 1.0\n", Node::unnamed(Value::Float(1.0))),
        (b". 3 -0.0\n", Node::unnamed(Value::Float(-0.0))),
        (b". 3 1e300\n", Node::unnamed(Value::Float(1e300))),
        (b". 3 NaN\n", Node::unnamed(Value::Float(f64::NAN))),
        (
            b". 3 Infinity\n",
            Node::unnamed(Value::Float(f64::INFINITY)),
        ),
        (
            b". 3 -Infinity\n",
            Node::unnamed(Value::Float(f64::NEG_INFINITY)),
        ),
        (
            b". 5 2\nnamed 2 1\n. 2 2\n",
            Node::unnamed(Value::List(vec![
                Node::named("named", Value::Int(1)),
                Node::unnamed(Value::Int(2)),
            ])),
        ),
    ];
    for (text, node) in vectors {
        assert_eq!(decode(text), Ok(node.clone()), "{}", text.escape_ascii());
        assert_eq!(node.to_text(), text, "{node:?}");
    }
}

#[test]
fn lenient_input_decodes_to_the_same_tree() {
    assert_eq!(decode(b"foo%2fbar 1 a+b\n"), decode(b"foo%2Fbar 1 a%2Bb\n"));
    assert_eq!(
        decode(b". 1\n"),
        Ok(Node::unnamed(Value::String(String::new())))
    );
    assert_eq!(decode(b". 2 +7\n"), Ok(Node::unnamed(Value::Int(7))));
    assert_eq!(
        decode(b". 3 4.2E1\n"),
        Ok(Node::unnamed(Value::Float(42.0)))
    );
}

fn error(text: &[u8]) -> (usize, usize, DdfErrorKind) {
    let e = decode(text).unwrap_err();
    (e.offset, e.line, e.kind)
}

#[test]
fn decode_errors_name_offset_and_line() {
    use DdfErrorKind::*;
    assert_eq!(error(b""), (0, 1, Empty));
    assert_eq!(error(b". 0"), (3, 1, UnterminatedLine));
    assert_eq!(error(b"foo\n"), (3, 1, MissingType));
    assert_eq!(error(b". x\n"), (2, 1, BadType));
    assert_eq!(error(b". 12 3\n"), (2, 1, BadType));
    assert_eq!(error(b". 6\n"), (2, 1, UnknownType(6)));
    assert_eq!(error(b". 9 1\n"), (2, 1, UnknownType(9)));
    assert_eq!(error(b". 2\n"), (3, 1, MissingValue));
    assert_eq!(error(b". 0 x\n"), (3, 1, UnexpectedField));
    assert_eq!(error(b". 1 a b\n"), (5, 1, UnexpectedField));
    assert_eq!(error(b". 2 2147483648\n"), (4, 1, BadInt));
    assert_eq!(error(b". 8 1x\n"), (4, 1, BadLong));
    assert_eq!(error(b". 3 1.2.3\n"), (4, 1, BadFloat));
    assert_eq!(error(b". 4 -1\n"), (4, 1, BadCount));
    assert_eq!(error(b". 1 ab%zz\n"), (6, 1, BadEscape));
    assert_eq!(error(b"a%4 0\n"), (1, 1, BadEscape));
    assert_eq!(error(b". 1 %80\n"), (4, 1, InvalidUtf8));
    assert_eq!(error(b"%FF 0\n"), (0, 1, InvalidUtf8));
    // Seven bytes left cannot hold three lines of at least three bytes.
    assert_eq!(error(b". 4 3\n. 0\n. 0\n"), (4, 1, CountExceedsInput(3)));
    assert_eq!(error(b". 4 2\n. 0\n"), (4, 1, CountExceedsInput(2)));
    assert_eq!(
        error(b". 4 2\n. 4 1\n. 0\n"),
        (
            16,
            4,
            MissingChildren {
                announced: 2,
                found: 1
            }
        )
    );
    assert_eq!(error(b". 5 2\n. 0\n. 0\n. 0\n"), (14, 4, TrailingData));
    assert_eq!(error(b". 0\n\n"), (4, 2, TrailingData));
    assert_eq!(error(b". 0\n. 0\n"), (4, 2, TrailingData));
}

#[test]
fn nesting_is_limited_without_recursion() {
    let nested = |levels: usize| {
        let mut text = b". 4 1\n".repeat(levels - 1);
        text.extend_from_slice(b". 0\n");
        text
    };
    assert!(decode(&nested(MAX_DEPTH)).is_ok());
    let too_deep = nested(MAX_DEPTH + 1);
    assert_eq!(
        error(&too_deep),
        (MAX_DEPTH * 6, MAX_DEPTH + 1, DdfErrorKind::TooDeep)
    );
    // Far deeper input fails the same way, early, without exhausting the stack.
    assert_eq!(error(&nested(1_000_000)).2, DdfErrorKind::TooDeep);
}

#[test]
fn huge_child_counts_allocate_nothing_up_front() {
    assert_eq!(
        error(b". 5 4294967295\n. 0\n").2,
        DdfErrorKind::CountExceedsInput(u32::MAX)
    );
}

#[test]
fn exception_vectors() {
    let text = b"exception 4 3\ntype 1 java.io.IOException\nmessage 1 disk%20full\n\
exception 4 1\ntype 1 java.lang.RuntimeException\n";
    let exception = RemoteException::new("java.io.IOException")
        .with_message("disk full")
        .with_cause(RemoteException::new("java.lang.RuntimeException"));
    assert_eq!(exception.to_node().to_text(), text);
    assert_eq!(
        RemoteException::from_node(&decode(text).unwrap()),
        Ok(exception)
    );
}

#[test]
fn exception_errors() {
    let read = |text: &[u8]| RemoteException::from_node(&decode(text).unwrap());
    assert_eq!(read(b"oops 4 0\n"), Err(ExceptionError::NotAnException));
    assert_eq!(
        read(b"exception 1 x\n"),
        Err(ExceptionError::NotAnException)
    );
    assert_eq!(
        read(b"exception 4 0\n"),
        Err(ExceptionError::MissingType { depth: 0 })
    );
    assert_eq!(
        read(b"exception 4 1\ntype 2 1\n"),
        Err(ExceptionError::NotAString { depth: 0 })
    );
    assert_eq!(
        read(b"exception 4 2\ntype 1 A\nexception 1 B\n"),
        Err(ExceptionError::CauseNotAStruct { depth: 0 })
    );
    assert_eq!(
        read(b"exception 4 2\ntype 1 A\nexception 4 1\nmessage 1 m\n"),
        Err(ExceptionError::MissingType { depth: 1 })
    );
    // Unknown members are ignored.
    assert_eq!(
        read(b"exception 4 2\nstack 5 0\ntype 1 A\n"),
        Ok(RemoteException::new("A"))
    );
}

#[test]
fn frames() {
    let node = foo_bar(Value::Int(42));
    let mut wire = Vec::new();
    encode_frame(&node, &mut wire).unwrap();
    assert_eq!(wire, b"\x00\x00\x00\x0ffoo%20bar 2 42\n");
    assert_eq!(decode_frame(&wire, 100), Ok(Some((node, 19))));
    for cut in 0..wire.len() {
        assert_eq!(decode_frame(&wire[..cut], 100), Ok(None));
    }
    let too_large = decode_frame(&wire, 14).unwrap_err();
    assert_eq!(
        (too_large.offset, too_large.kind),
        (0, DdfErrorKind::FrameTooLarge { len: 15, max: 14 })
    );
    // A bad second frame: the offset counts from the start of the stream.
    wire.extend_from_slice(b"\x00\x00\x00\x04. 6\n");
    let mut decoder = FrameDecoder::new();
    let (_, used) = decoder.decode(&wire).unwrap().unwrap();
    let e = decoder.decode(&wire[used..]).unwrap_err();
    assert_eq!(
        (e.offset, e.line, e.kind),
        (19 + 4 + 2, 1, DdfErrorKind::UnknownType(6))
    );
}

fn name() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(prop_oneof![
        Just(".".to_owned()),
        Just(String::new()),
        ".{0,12}"
    ])
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Empty),
        ".{0,20}".prop_map(Value::String),
        any::<i32>().prop_map(Value::Int),
        any::<f64>().prop_map(Value::Float),
        proptest::collection::vec(any::<u8>(), 0..20).prop_map(Value::UnsafeString),
        any::<i64>().prop_map(Value::Long),
    ]
}

fn node() -> impl Strategy<Value = Node> {
    let leaf_node = (name(), leaf()).prop_map(|(name, value)| Node { name, value });
    leaf_node.prop_recursive(6, 64, 6, |inner| {
        (
            name(),
            any::<bool>(),
            proptest::collection::vec(inner, 0..6),
        )
            .prop_map(|(name, is_list, children)| Node {
                name,
                value: if is_list {
                    Value::List(children)
                } else {
                    Value::Struct(children)
                },
            })
    })
}

fn exception() -> impl Strategy<Value = RemoteException> {
    proptest::collection::vec((".{0,16}", proptest::option::of(".{0,16}")), 1..6).prop_map(
        |links| {
            links
                .into_iter()
                .rev()
                .fold(None::<RemoteException>, |cause, (type_name, message)| {
                    Some(RemoteException {
                        type_name,
                        message,
                        cause: cause.map(Box::new),
                    })
                })
                .unwrap()
        },
    )
}

proptest! {
    #[test]
    fn node_round_trips(node in node()) {
        let text = node.to_text();
        prop_assert_eq!(decode(&text), Ok(node.clone()));
        let mut framed = Vec::new();
        encode_frame(&node, &mut framed).unwrap();
        prop_assert_eq!(decode_frame(&framed, u32::MAX), Ok(Some((node, framed.len()))));
    }

    #[test]
    fn exception_round_trips(exception in exception()) {
        let text = exception.to_node().to_text();
        prop_assert_eq!(RemoteException::from_node(&decode(&text).unwrap()), Ok(exception));
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(node) = decode(&bytes) {
            // Whatever decodes re-encodes to something that decodes to the same tree.
            prop_assert_eq!(decode(&node.to_text()), Ok(node));
        }
        let _ = decode_frame(&bytes, 1 << 20);
    }

    #[test]
    fn decoding_line_shaped_noise_never_panics(
        lines in proptest::collection::vec(
            ("[.a%]{0,3}", "[0-9]{1,2}", proptest::option::of("[-+.0-9a-fA-F%eE]{0,6}")), 1..12)
    ) {
        let mut text = Vec::new();
        for (name, type_field, value) in lines {
            text.extend_from_slice(name.as_bytes());
            text.push(b' ');
            text.extend_from_slice(type_field.as_bytes());
            if let Some(value) = value {
                text.push(b' ');
                text.extend_from_slice(value.as_bytes());
            }
            text.push(b'\n');
        }
        if let Ok(node) = decode(&text) {
            prop_assert_eq!(decode(&node.to_text()), Ok(node));
        }
    }
}
