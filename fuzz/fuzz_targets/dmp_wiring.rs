//! Feeds arbitrary bytes to every DMP wiring decoder: the request bodies a server takes
//! from a nexus and the answers a client takes back. Whatever decodes must encode again
//! into exactly the input (the encoding is canonical), which decodes to the same message;
//! no two decoders accept the same bytes, and the accepting one is the kind the tag names.
#![no_main]

use hawser_wire::dmp::wiring::{
    Bind, DeclareFeed, DeclareSink, Declared, Delete, Done, Get, GetOk, Put, PutOk, Unbind,
    WiringKind, request_kind,
};
use libfuzzer_sys::fuzz_target;

/// Decodes `$data` as `$ty`; a message that decodes must round-trip. Evaluates to the
/// kind when it decoded.
macro_rules! round_trip {
    ($data:expr, $ty:ident) => {
        match $ty::decode($data) {
            Ok(message) => {
                let mut out = Vec::new();
                message.encode(&mut out);
                assert_eq!(&out[..], $data, "canonical re-encoding");
                assert_eq!($ty::decode(&out).ok(), Some(message), "round trip");
                Some(WiringKind::$ty)
            }
            Err(_) => None,
        }
    };
}

fuzz_target!(|data: &[u8]| {
    let kind = WiringKind::of(data);
    if let Some(kind) = kind {
        assert_eq!(data.first(), Some(&kind.tag()));
    }
    assert_eq!(request_kind(data), kind.filter(|k| k.is_request()));

    let accepted = [
        round_trip!(data, DeclareSink),
        round_trip!(data, DeclareFeed),
        round_trip!(data, Declared),
        round_trip!(data, Delete),
        round_trip!(data, Done),
        round_trip!(data, Bind),
        round_trip!(data, Unbind),
        round_trip!(data, Put),
        round_trip!(data, PutOk),
        round_trip!(data, Get),
        round_trip!(data, GetOk),
    ];
    let mut accepted = accepted.into_iter().flatten();
    if let Some(first) = accepted.next() {
        assert_eq!(Some(first), kind, "the decoder of the tag's kind");
        assert_eq!(accepted.next(), None, "one decoder only");
    }
});
