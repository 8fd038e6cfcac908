//! Direct connections on the server: the seed's dialog (protocol header, greeting,
//! lease, verdict), then messages one way, with heartbeats both ways.

mod conn;
mod heartbeat;
mod refused;
mod scan;

pub use conn::DirectConn;
pub use heartbeat::{Beat, Heartbeat, NULL_MESSAGE};
pub use refused::Refused;
pub use scan::{Scanned, scan};

use bytes::BufMut;
use hawser_wire::dmp::{Response, ResponseCode};

/// Writes a response short string; the explanation is cut to fit one.
pub fn put_response(out: &mut impl BufMut, code: ResponseCode, explanation: &str) {
    let mut text = explanation.as_bytes();
    loop {
        if let Some(r) = Response::new(code, Some(text)) {
            r.encode(out);
            return;
        }
        // Cut at a character boundary.
        let mut cut = text.len() - 1;
        while cut > 0 && !explanation.is_char_boundary(cut) {
            cut -= 1;
        }
        text = &text[..cut];
    }
}
