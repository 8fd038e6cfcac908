//! Hex vectors, refusals and property tests for every wiring message.

use std::fmt;

use proptest::collection::vec;
use proptest::prelude::*;

use super::*;

/// What every wiring message has, so one set of checks serves them all. (The decoders
/// are called by name in the macro, so each decode borrows from whatever it is given.)
trait Message: fmt::Debug {
    const KIND: WiringKind;
    /// Encodes the message.
    fn to_bytes(&self) -> Vec<u8>;
    /// Decodes `body` and checks it gives `self`.
    fn assert_decodes_to_self(&self, body: &[u8]);
    /// The decoder's answer to `body`: `None` if it accepts it (after checking that it
    /// re-encodes to `body`), else the error.
    fn refusal(body: &[u8]) -> Option<WiringError>;
}

macro_rules! message {
    ($($name:ident: $ty:ty),* $(,)?) => {$(
        impl Message for $ty {
            const KIND: WiringKind = WiringKind::$name;
            fn to_bytes(&self) -> Vec<u8> {
                let mut out = Vec::new();
                self.encode(&mut out);
                out
            }
            fn assert_decodes_to_self(&self, body: &[u8]) {
                assert_eq!($name::decode(body).as_ref(), Ok(self), "round trip");
            }
            fn refusal(body: &[u8]) -> Option<WiringError> {
                match $name::decode(body) {
                    Ok(message) => {
                        assert_eq!(message.to_bytes(), body, "{message:?} is not canonical");
                        None
                    }
                    Err(error) => Some(error),
                }
            }
        }
    )*};
}

message! {
    DeclareSink: DeclareSink<'_>,
    DeclareFeed: DeclareFeed<'_>,
    Declared: Declared,
    Delete: Delete<'_>,
    Done: Done,
    Bind: Bind<'_>,
    Unbind: Unbind<'_>,
    Put: Put<'_>,
    PutOk: PutOk<'_>,
    Get: Get<'_>,
    GetOk: GetOk<'_>,
}

fn s(text: &str) -> ShortStr<'_> {
    ShortStr::text(text).unwrap()
}

fn unhex(spaced: &str) -> Vec<u8> {
    hex::decode(spaced.replace(' ', "")).unwrap()
}

/// The kinds whose decoder accepts `body` (each checked to re-encode to exactly `body`).
fn accepted_by(body: &[u8]) -> Vec<WiringKind> {
    fn one<M: Message>(body: &[u8], out: &mut Vec<WiringKind>) {
        if M::refusal(body).is_none() {
            out.push(M::KIND);
        }
    }
    let mut kinds = Vec::new();
    one::<DeclareSink<'_>>(body, &mut kinds);
    one::<DeclareFeed<'_>>(body, &mut kinds);
    one::<Declared>(body, &mut kinds);
    one::<Delete<'_>>(body, &mut kinds);
    one::<Done>(body, &mut kinds);
    one::<Bind<'_>>(body, &mut kinds);
    one::<Unbind<'_>>(body, &mut kinds);
    one::<Put<'_>>(body, &mut kinds);
    one::<PutOk<'_>>(body, &mut kinds);
    one::<Get<'_>>(body, &mut kinds);
    one::<GetOk<'_>>(body, &mut kinds);
    kinds
}

/// Encodes `message`, decodes it back, and checks the refusals every message shares:
/// each shorter prefix is `FieldPastEnd`, one more byte is `TrailingBytes`, any other
/// first byte is `WrongTag`, and no other decoder accepts the bytes. Returns the bytes.
fn check<M: Message>(message: &M) -> Vec<u8> {
    let body = message.to_bytes();
    message.assert_decodes_to_self(&body);
    assert_eq!(body.first(), Some(&M::KIND.tag()));
    assert_eq!(WiringKind::of(&body), Some(M::KIND));
    let request = M::KIND.is_request().then_some(M::KIND);
    assert_eq!(request_kind(&body), request);
    assert_eq!(
        accepted_by(&body),
        [M::KIND],
        "exactly one decoder takes it"
    );

    for len in 0..body.len() {
        assert_eq!(
            M::refusal(&body[..len]),
            Some(WiringError::FieldPastEnd),
            "{message:?} cut to {len} bytes"
        );
    }
    let mut other = body.clone();
    other.push(0);
    assert_eq!(M::refusal(&other), Some(WiringError::TrailingBytes(1)));
    other.pop();
    for found in (0..=u8::MAX).filter(|&tag| tag != M::KIND.tag()) {
        other[0] = found;
        let wrong = WiringError::WrongTag {
            expected: M::KIND.tag(),
            found,
        };
        assert_eq!(M::refusal(&other), Some(wrong));
    }
    body
}

/// `check`s `message` and compares its bytes with `expected` (hex, spaces ignored).
fn vector<M: Message>(message: M, expected: &str) {
    assert_eq!(
        hex::encode(check(&message)),
        hex::encode(unhex(expected)),
        "{message:?}"
    );
}

#[test]
fn declare_sink_vectors() {
    vector(
        DeclareSink {
            name: s("s1"),
            durable: true,
        },
        "01 02 7331 01",
    );
    vector(
        DeclareSink {
            name: s(""),
            durable: false,
        },
        "01 00 00",
    );
}

#[test]
fn declare_feed_vectors() {
    // "f1", not durable, block, high water 1 MiB, low water 512 KiB.
    vector(
        DeclareFeed {
            name: s("f1"),
            durable: false,
            policy: FlowPolicy::Block,
            high_water: 1 << 20,
            low_water: 512 << 10,
        },
        "02 02 6631 00 00 0000000000100000 0000000000080000",
    );
    // Durable, drop-oldest, the server's default marks.
    vector(
        DeclareFeed {
            name: s("f"),
            durable: true,
            policy: FlowPolicy::DropOldest,
            high_water: 0,
            low_water: 0,
        },
        "02 01 66 01 01 0000000000000000 0000000000000000",
    );
    vector(
        DeclareFeed {
            name: s("f"),
            durable: false,
            policy: FlowPolicy::Disconnect,
            high_water: u64::MAX,
            low_water: 1,
        },
        "02 01 66 00 02 ffffffffffffffff 0000000000000001",
    );
}

#[test]
fn declared_vectors() {
    vector(Declared { created: true }, "81 01");
    vector(Declared { created: false }, "81 00");
}

#[test]
fn delete_vectors() {
    vector(
        Delete {
            kind: EntityKind::Sink,
            name: s("s1"),
        },
        "03 00 02 7331",
    );
    vector(
        Delete {
            kind: EntityKind::Feed,
            name: s("f1"),
        },
        "03 01 02 6631",
    );
}

#[test]
fn done_vector() {
    vector(Done, "80");
}

#[test]
fn bind_and_unbind_vectors() {
    vector(
        Bind {
            feed: s("f1"),
            sink: s("s1"),
            pattern: s("a.*"),
        },
        "04 02 6631 02 7331 03 612e2a",
    );
    vector(
        Unbind {
            feed: s("f1"),
            sink: s("s1"),
            pattern: s(""),
        },
        "05 02 6631 02 7331 00",
    );
}

#[test]
fn lease_vectors() {
    vector(Put { sink: s("s1") }, "06 02 7331");
    vector(
        PutOk {
            lease: s("lease-7f3a"),
        },
        "86 0a 6c656173652d37663361",
    );
    vector(Get { feed: s("f1") }, "07 02 6631");
    vector(GetOk { lease: s("L9") }, "87 02 4c39");
}

#[test]
fn longest_names_fit() {
    let long = [b'n'; 255];
    let name = ShortStr::new(&long).unwrap();
    let bytes = check(&Bind {
        feed: name,
        sink: name,
        pattern: name,
    });
    assert_eq!(bytes.len(), 1 + 3 * 256);
}

#[test]
fn reserved_flag_bits_are_refused() {
    assert_eq!(
        DeclareSink::decode(&unhex("01 01 73 02")),
        Err(WiringError::ReservedBits {
            field: "flags",
            bits: 0x02
        })
    );
    assert_eq!(
        DeclareFeed::decode(&unhex("02 01 66 81 00 0000000000000000 0000000000000000")),
        Err(WiringError::ReservedBits {
            field: "flags",
            bits: 0x80
        })
    );
    assert_eq!(
        Declared::decode(&[0x81, 2]),
        Err(WiringError::ReservedBits {
            field: "created",
            bits: 0x02
        })
    );
    assert_eq!(
        Declared::decode(&[0x81, 0xff]),
        Err(WiringError::ReservedBits {
            field: "created",
            bits: 0xfe
        })
    );
}

#[test]
fn undefined_enumerations_are_refused() {
    for policy in 3..=u8::MAX {
        let mut body = unhex("02 01 66 00 00 0000000000000000 0000000000000000");
        body[4] = policy;
        assert_eq!(
            DeclareFeed::decode(&body),
            Err(WiringError::UnknownPolicy(policy))
        );
    }
    for kind in 2..=u8::MAX {
        assert_eq!(
            Delete::decode(&[0x03, kind, 0]),
            Err(WiringError::UnknownEntityKind(kind))
        );
    }
}

#[test]
fn short_string_running_past_the_end_is_refused() {
    assert_eq!(
        Put::decode(&unhex("06 03 7331")),
        Err(WiringError::FieldPastEnd)
    );
    assert_eq!(
        Bind::decode(&unhex("04 02 6631 02 7331 05 61")),
        Err(WiringError::FieldPastEnd)
    );
    // A name that swallows what should follow leaves a field missing, not extra bytes.
    assert_eq!(
        DeclareSink::decode(&unhex("01 02 7331")),
        Err(WiringError::FieldPastEnd)
    );
}

#[test]
fn empty_and_unknown_bodies_are_no_kind() {
    assert_eq!(WiringKind::of(&[]), None);
    assert_eq!(request_kind(&[]), None);
    assert_eq!(Done::decode(&[]), Err(WiringError::FieldPastEnd));
    for tag in [0x00, 0x08, 0x7f, 0x82, 0x85, 0x88, 0xff] {
        assert_eq!(WiringKind::of(&[tag]), None);
        assert_eq!(request_kind(&[tag]), None);
        assert!(accepted_by(&[tag, 0, 0]).is_empty());
    }
}

#[test]
fn kinds_and_tags_agree() {
    for tag in 0..=u8::MAX {
        if let Some(kind) = WiringKind::from_tag(tag) {
            assert_eq!(kind.tag(), tag);
            assert!(WiringKind::ALL.contains(&kind));
        }
    }
    for kind in WiringKind::ALL {
        assert_eq!(WiringKind::from_tag(kind.tag()), Some(kind));
        assert_eq!(kind.is_request(), kind.answer().is_some(), "{kind:?}");
        if let Some(answer) = kind.answer() {
            assert!(!answer.is_request());
            assert_eq!(request_kind(&[answer.tag()]), None);
            assert_eq!(request_kind(&[kind.tag()]), Some(kind));
        }
    }
    assert_eq!(WiringKind::Put.answer(), Some(WiringKind::PutOk));
    assert_eq!(WiringKind::Unbind.answer(), Some(WiringKind::Done));
    assert_eq!(WiringKind::DeclareFeed.answer(), Some(WiringKind::Declared));
}

#[test]
fn policy_and_entity_names() {
    let names: Vec<&str> = FlowPolicy::ALL.iter().map(|p| p.as_str()).collect();
    assert_eq!(names, ["block", "drop-oldest", "disconnect"]);
    for policy in FlowPolicy::ALL {
        assert_eq!(policy.as_str().parse(), Ok(policy));
        assert_eq!(policy.to_string(), policy.as_str());
        assert_eq!(FlowPolicy::from_wire(policy.to_wire()), Ok(policy));
    }
    for bad in ["", "Block", "drop_oldest", "dropoldest", "block "] {
        assert_eq!(
            bad.parse::<FlowPolicy>(),
            Err(ParseFlowPolicyError),
            "{bad:?}"
        );
    }
    assert_eq!(EntityKind::Sink.to_string(), "sink");
    assert_eq!(EntityKind::Feed.as_str(), "feed");
}

#[test]
fn errors_read_well() {
    let wrong = WiringError::WrongTag {
        expected: 0x06,
        found: 0x86,
    };
    assert_eq!(
        wrong.to_string(),
        "expected wiring message 0x06, found tag 0x86"
    );
    assert_eq!(
        WiringError::ReservedBits {
            field: "flags",
            bits: 2
        }
        .to_string(),
        "reserved bits set in flags: 0x02"
    );
}

fn policy() -> impl Strategy<Value = FlowPolicy> {
    prop::sample::select(FlowPolicy::ALL.to_vec())
}

fn entity() -> impl Strategy<Value = EntityKind> {
    prop::sample::select(vec![EntityKind::Sink, EntityKind::Feed])
}

/// The content of a short string: up to 255 arbitrary bytes.
fn name() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..=255)
}

fn short(bytes: &[u8]) -> ShortStr<'_> {
    ShortStr::new(bytes).unwrap()
}

proptest! {
    #[test]
    fn declares_round_trip(name in name(), durable: bool, policy in policy(),
                           high_water: u64, low_water: u64, created: bool) {
        check(&DeclareSink { name: short(&name), durable });
        check(&DeclareFeed { name: short(&name), durable, policy, high_water, low_water });
        check(&Declared { created });
    }

    #[test]
    fn delete_round_trips(kind in entity(), name in name()) {
        check(&Delete { kind, name: short(&name) });
        check(&Done);
    }

    #[test]
    fn bindings_round_trip(feed in name(), sink in name(), pattern in name()) {
        let (feed, sink, pattern) = (short(&feed), short(&sink), short(&pattern));
        check(&Bind { feed, sink, pattern });
        check(&Unbind { feed, sink, pattern });
    }

    #[test]
    fn leases_round_trip(name in name(), lease in name()) {
        check(&Put { sink: short(&name) });
        check(&PutOk { lease: short(&lease) });
        check(&Get { feed: short(&name) });
        check(&GetOk { lease: short(&lease) });
    }

    /// Arbitrary bodies starting with a wiring tag: no decoder panics, at most one
    /// accepts, and what it accepts re-encodes to the same bytes (checked in
    /// `accepted_by`).
    #[test]
    fn arbitrary_bodies_never_panic(
        tag in prop::sample::select(WiringKind::ALL.to_vec()),
        rest in vec(any::<u8>(), 0..40),
    ) {
        let mut body = vec![tag.tag()];
        body.extend_from_slice(&rest);
        let kinds = accepted_by(&body);
        prop_assert!(kinds.is_empty() || kinds == [tag]);
    }
}
