//! Feeds arbitrary bytes to the DSP streaming decoder, walking frame after frame as a
//! receive loop would, and checks that whatever decodes re-encodes to a frame that
//! decodes to the same value. The decoder must never panic.
//!
//! The first input byte picks a mode. Raw mode (even) feeds the rest as it is. Framed mode
//! (odd) reads `kind, flags (2 bytes), slot (1 byte)` and wraps the remaining bytes in a
//! header with a correct checksum (and a correct digest when the flag asks for one), so
//! the fuzzer spends its time in the payload decoders and lz4 instead of bouncing off the
//! header checksum.

#![no_main]

use hawser_wire::dsp::{
    Compression, EncodeOptions, Flags, FrameDecoder, FrameEncoder, FrameHeader, FrameKind,
    HEADER_LEN, encode_header, payload_digest, peek_header,
};
use libfuzzer_sys::fuzz_target;

/// Small enough that the fuzzer reaches the length checks, large enough for real frames.
const MAX_PAYLOAD: u32 = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        walk(rest);
        return;
    }
    let [kind, flag_hi, flag_lo, slot, payload @ ..] = rest else {
        return;
    };
    let Some(kind) = FrameKind::from_u8(*kind) else {
        return;
    };
    let flags = Flags(u16::from_be_bytes([*flag_hi, *flag_lo]));
    let exchange = kind.uses_exchange_fields();
    let header = FrameHeader {
        kind,
        flags,
        slot: if exchange { u32::from(*slot) } else { 0 },
        sequence: if exchange { 1 } else { 0 },
        request_id: if exchange { 2 } else { 0 },
        payload_len: u32::try_from(payload.len()).unwrap_or(u32::MAX),
    };
    let mut head = [0; HEADER_LEN];
    encode_header(&header, &mut head);
    let mut frame = head.to_vec();
    frame.extend_from_slice(payload);
    if flags.contains(Flags::DIGEST) {
        frame.extend_from_slice(&payload_digest(&[payload]).to_be_bytes());
    }
    walk(&frame);
});

fn walk(data: &[u8]) {
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
                assert_eq!(again, Some((frame, out.len())));
                offset += consumed;
            }
            Ok(None) | Err(_) => break,
        }
    }
}
