//! Feeds arbitrary bytes to every DTP decoder: the first byte picks control message,
//! basic datagram, extended datagram, feedback body or capture file; the rest is the
//! input. Everything accepted must re-encode to exactly the bytes it was decoded from.
#![no_main]

use hawser_wire::dtp::{CaptureDecoder, ControlMessage, Datagram, DatagramForm, Feedback};
use libfuzzer_sys::fuzz_target;

fn datagram(input: &[u8], form: DatagramForm) {
    if let Ok(datagram) = Datagram::decode(input, form) {
        let mut again = Vec::new();
        datagram.encode(&mut again);
        assert_eq!(again, input);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    match selector % 5 {
        0 => {
            if let Ok(message) = ControlMessage::decode(input) {
                let mut again = Vec::new();
                message
                    .encode(&mut again)
                    .expect("a decoded message re-encodes");
                assert_eq!(again, input);
            }
        }
        1 => datagram(input, DatagramForm::Basic),
        2 => datagram(input, DatagramForm::Extended),
        3 => {
            if let Ok(feedback) = Feedback::decode(input) {
                let mut again = Vec::new();
                feedback
                    .encode(&mut again)
                    .expect("a decoded feedback re-encodes");
                assert_eq!(again, input);
            }
        }
        _ => {
            let mut decoder = CaptureDecoder::new();
            let mut rest = input;
            while let Ok(Some((record, consumed))) = decoder.decode(rest) {
                let mut again = Vec::new();
                record
                    .encode(&mut again)
                    .expect("a decoded record re-encodes");
                assert_eq!(&again[..], &rest[..consumed]);
                rest = &rest[consumed..];
            }
        }
    }
});
