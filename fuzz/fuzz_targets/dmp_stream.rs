//! Feeds arbitrary bytes to the DMP stream decoder, in every mode, and checks that every
//! accepted item re-encodes to exactly the bytes it was decoded from.
#![no_main]

use hawser_wire::dmp::{Direction, StreamDecoder};
use libfuzzer_sys::fuzz_target;

fn walk(mut decoder: StreamDecoder, input: &[u8]) {
    let mut rest = input;
    while let Ok(Some((item, consumed))) = decoder.decode(rest) {
        let mut again = Vec::new();
        item.encode(&mut again).expect("a decoded item re-encodes");
        assert_eq!(&again[..], &rest[..consumed], "canonical re-encoding");
        rest = &rest[consumed..];
    }
}

fuzz_target!(|data: &[u8]| {
    walk(StreamDecoder::detect().with_max_message_size(1 << 20), data);
    walk(StreamDecoder::new(Direction::ClientToServer), data);
    walk(StreamDecoder::new(Direction::ServerToClient), data);
});
