//! The fixed-layout control bodies a DTP server and client read from the nexus
//! (`hawser_dtp::control`): a finish (session, digest, optional mode and mtime) and a
//! stat answer. Whatever the bytes, decoding never panics, accepts only the exact
//! lengths, and what it accepts encodes back to the very bytes (with the mode bits
//! beyond 0o7777 cleared).
#![no_main]

use hawser_dtp::control::{FileStat, FinishRequest};
use libfuzzer_sys::fuzz_target;

/// The input with the mode field (4 bytes at `at`) cleared of bits beyond 0o7777.
fn masked(data: &[u8], at: usize) -> Vec<u8> {
    let mut bytes = data.to_vec();
    let mode = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) & 0o7777;
    bytes[at..at + 4].copy_from_slice(&mode.to_be_bytes());
    bytes
}

fuzz_target!(|data: &[u8]| {
    match FinishRequest::decode(data) {
        Some(finish) => {
            let expected = if data.len() == FinishRequest::FULL_LEN {
                masked(data, 20)
            } else {
                assert_eq!(data.len(), FinishRequest::BARE_LEN);
                data.to_vec()
            };
            assert_eq!(finish.encode(), expected);
        }
        None => assert!(
            data.len() != FinishRequest::BARE_LEN && data.len() != FinishRequest::FULL_LEN
        ),
    }
    match FileStat::decode(data) {
        Some(stat) => assert_eq!(stat.encode(), masked(data, 8)),
        None => assert_ne!(data.len(), FileStat::LEN),
    }
});
