//! The fixed-layout control bodies a DTP server and client read from the nexus
//! (`hawser_dtp::control`): a finish (session, digest, optional mode and mtime), a stat
//! answer and a listing. Whatever the bytes, decoding never panics; a finish and a stat
//! accept only their exact lengths and encode back to the very bytes (with the mode bits
//! beyond 0o7777 cleared); a listing accepted re-encodes to as many bytes and decodes to
//! itself, its paths within the limit.
#![no_main]

use hawser_dtp::control::{FileListing, FileStat, FinishRequest, MAX_LISTED_PATH};
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
    if let Some(listing) = FileListing::decode(data) {
        assert_eq!(listing.encode().len(), data.len());
        assert_eq!(FileListing::decode(&listing.encode()), Some(listing.clone()));
        assert!(listing.files.iter().all(|f| f.rel.len() <= MAX_LISTED_PATH));
    }
});
