//! Feeds arbitrary bytes to every replication message decoder: the request bodies a
//! target (`hawser serve`, or a puller's backchannel service) takes from the network, and
//! the answers a source takes back. Whatever decodes must encode again into bytes that
//! decode to the same message.
#![no_main]

use hawser_wire::replicate::{
    Begin, BeginAck, BlockAck, BlockHeader, CommitAck, CommitFile, DeleteList, DeleteRequest,
    Finish, FinishReport, ManifestAnswer, ManifestBatch, MessageKind, PullReport, PullRequest,
};
use libfuzzer_sys::fuzz_target;

/// Decodes `$data` as `$ty`; a message that decodes must round-trip. `?` marks encoders
/// that can refuse (lengths beyond a field's range), which a decoded message never has.
macro_rules! round_trip {
    ($data:expr, $ty:ty) => {
        if let Ok(message) = <$ty>::decode($data) {
            let mut out = Vec::new();
            message.encode(&mut out);
            assert_eq!(<$ty>::decode(&out).ok(), Some(message), "round trip");
        }
    };
    ($data:expr, $ty:ty, ?) => {
        if let Ok(message) = <$ty>::decode($data) {
            let mut out = Vec::new();
            message.encode(&mut out).expect("a decoded message encodes");
            assert_eq!(<$ty>::decode(&out).ok(), Some(message), "round trip");
        }
    };
}

fuzz_target!(|data: &[u8]| {
    let _ = MessageKind::of(data);
    round_trip!(data, Begin<'_>, ?);
    round_trip!(data, BeginAck);
    round_trip!(data, ManifestBatch<'_>, ?);
    round_trip!(data, ManifestAnswer<'_>, ?);
    round_trip!(data, BlockAck);
    round_trip!(data, CommitFile);
    round_trip!(data, CommitAck);
    round_trip!(data, DeleteRequest);
    round_trip!(data, DeleteList<'_>, ?);
    round_trip!(data, Finish);
    round_trip!(data, FinishReport);
    round_trip!(data, PullRequest<'_>, ?);
    if let Ok((header, block)) = BlockHeader::decode(data) {
        let mut out = Vec::new();
        header.encode(&mut out);
        out.extend_from_slice(block);
        assert_eq!(BlockHeader::decode(&out).ok(), Some((header, block)));
    }
    if let Ok(report) = PullReport::decode(data) {
        let bytes = report.encode().expect("a decoded report encodes");
        let again = PullReport::decode(&bytes).expect("an encoded report decodes");
        // Compared as bytes: a compression ratio may decode as NaN, which equals nothing.
        assert_eq!(again.encode().ok(), Some(bytes), "round trip");
    }
});
