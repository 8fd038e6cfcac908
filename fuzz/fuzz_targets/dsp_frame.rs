//! Feeds arbitrary bytes to the DSP streaming decoder, walking frame after frame as a
//! receive loop would, and checks that whatever decodes re-encodes to a frame that
//! decodes to the same value. The decoder must never panic.

#![no_main]

use hawser_wire::dsp::{
    Compression, EncodeOptions, FrameDecoder, FrameEncoder, HEADER_LEN, peek_header,
};
use libfuzzer_sys::fuzz_target;

/// Small enough that the fuzzer reaches the length checks, large enough for real frames.
const MAX_PAYLOAD: u32 = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let mut decoder = FrameDecoder::new(MAX_PAYLOAD);
    let mut check = FrameDecoder::new(MAX_PAYLOAD);
    let mut out = Vec::new();
    let mut offset = 0;
    while let Some(rest) = data.get(offset..) {
        let header = peek_header(rest, MAX_PAYLOAD);
        match decoder.decode_with_header(rest) {
            Ok(Some((h, frame, consumed))) => {
                assert!(consumed >= HEADER_LEN);
                assert_eq!(header, Ok(Some(h)), "peek_header agrees with decode");
                assert_eq!(consumed, h.frame_len());
                // Re-encode with the same flags and decode again: same frame.
                let options = EncodeOptions {
                    digest: h.has_digest(),
                    compression: if h.is_compressed() {
                        Compression::Lz4
                    } else {
                        Compression::Off
                    },
                };
                out.clear();
                FrameEncoder::new(options)
                    .encode(&frame, &mut out)
                    .expect("a decoded frame re-encodes");
                let again = check.decode(&out).expect("re-encoded frame decodes");
                assert_eq!(again.map(|(f, n)| (f, n)), Some((frame, out.len())));
                offset += consumed;
            }
            Ok(None) | Err(_) => break,
        }
    }
});
