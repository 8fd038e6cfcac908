//! Feeds arbitrary bytes to the DDF decoders, as one unframed text and as a stream of
//! length-prefixed frames. Whatever decodes must survive encode → decode unchanged, and
//! an `exception` tree must survive the RemoteException round trip.
#![no_main]

use hawser_wire::ddf::{self, FrameDecoder, Node, RemoteException};
use libfuzzer_sys::fuzz_target;

fn check(node: &Node) {
    let text = node.to_text();
    assert_eq!(
        ddf::decode(&text).as_ref(),
        Ok(node),
        "encode → decode round trip"
    );
    if let Ok(exception) = RemoteException::from_node(node) {
        assert_eq!(
            RemoteException::from_node(&exception.to_node()),
            Ok(exception)
        );
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(node) = ddf::decode(data) {
        check(&node);
    }
    let mut decoder = FrameDecoder::new().with_max_len(1 << 20);
    let mut rest = data;
    while let Ok(Some((node, consumed))) = decoder.decode(rest) {
        check(&node);
        rest = &rest[consumed..];
    }
});
