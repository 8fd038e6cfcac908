//! Properties over all message kinds: no decoder panics on any input.

use super::*;
use proptest::prelude::*;

/// Runs every decoder on `bytes`; each must return, never panic.
fn decode_everything(bytes: &[u8]) {
    let _ = MessageKind::of(bytes);
    let _ = Begin::decode(bytes);
    let _ = BeginAck::decode(bytes);
    let _ = ManifestBatch::decode(bytes);
    let _ = ManifestAnswer::decode(bytes);
    let _ = BlockHeader::decode(bytes);
    let _ = BlockAck::decode(bytes);
    let _ = CommitFile::decode(bytes);
    let _ = CommitAck::decode(bytes);
    let _ = DeleteRequest::decode(bytes);
    let _ = DeleteList::decode(bytes);
    let _ = Finish::decode(bytes);
    let _ = FinishReport::decode(bytes);
    let _ = PullRequest::decode(bytes);
    let _ = PullReport::decode(bytes);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decoders_never_panic_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        decode_everything(&bytes);
    }

    #[test]
    fn decoders_never_panic_after_a_valid_tag(tag in prop::sample::select(vec![1u8, 2, 3, 4, 5, 6, 0x10, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x90]),
                                              rest in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut bytes = vec![tag];
        bytes.extend_from_slice(&rest);
        decode_everything(&bytes);
    }
}

#[test]
fn tags_and_exchange_ids() {
    for tag in 0..=255u8 {
        if let Ok(kind) = MessageKind::from_tag(tag) {
            assert_eq!(kind.tag(), tag);
            assert_eq!(kind.is_request(), tag < 0x80);
        }
    }
    assert_eq!(MessageKind::Block.exchange_id(), 0x5245_5003);
    assert_eq!(MessageKind::of(&[]), Err(ProtoError::Truncated));
}
