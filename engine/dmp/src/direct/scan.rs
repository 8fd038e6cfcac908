//! Finding the whole messages of a publisher's bytes and their routing keys, reading
//! each envelope no further than routing needs (size, exchange, routing key).

use hawser_wire::dmp::ResponseCode;

use crate::broker::{MessageRef, Refusal};

/// The least an envelope holds after its two short strings: property flags (2), the
/// options octet (1) and the body length (3).
const ENVELOPE_TAIL: usize = 6;

/// What [`scan`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scanned {
    /// Bytes of whole messages and null messages at the start.
    pub consumed: usize,
    /// The whole size of the incomplete message after them, once its size field is there.
    pub next_len: Option<usize>,
}

/// Scans `buf` for whole messages written to the sink `sink_name`, appending each
/// envelope's place to `out` (null messages are skipped). An envelope naming another
/// exchange than the sink (an empty one means the sink) is refused, as is a size over
/// `max_size` or an envelope too short for its fields.
pub fn scan(
    buf: &[u8],
    max_size: u32,
    sink_name: &[u8],
    out: &mut Vec<MessageRef>,
) -> Result<Scanned, Refusal> {
    let mut pos = 0usize;
    loop {
        let Some(size) = buf.get(pos..pos + 4) else {
            return Ok(Scanned {
                consumed: pos,
                next_len: None,
            });
        };
        let size = u32::from_be_bytes([size[0], size[1], size[2], size[3]]);
        if size == 0 {
            pos += 4;
            continue;
        }
        if size > max_size {
            return Err(Refusal::new(
                ResponseCode::NotAllowed,
                format!(
                    "a message of {size} bytes exceeds this server's limit of {max_size} \
                     (max_message_size)"
                ),
            ));
        }
        let len = 4 + size as usize;
        let Some(envelope) = buf.get(pos + 4..pos + len) else {
            return Ok(Scanned {
                consumed: pos,
                next_len: Some(len),
            });
        };
        let malformed = || {
            Refusal::new(
                ResponseCode::SyntaxError,
                format!(
                    "the message at byte {pos} of this receive is malformed: its fields \
                     overrun its size of {size}"
                ),
            )
        };
        let exchange_len = usize::from(envelope[0]);
        let key_at = 1 + exchange_len;
        let key_len = usize::from(*envelope.get(key_at).ok_or_else(malformed)?);
        if key_at + 1 + key_len + ENVELOPE_TAIL > envelope.len() {
            return Err(malformed());
        }
        let exchange = &envelope[1..key_at];
        if !exchange.is_empty() && exchange != sink_name {
            return Err(Refusal::new(
                ResponseCode::NoAccess,
                format!(
                    "this connection writes to sink \"{}\" only; a message named exchange \
                     \"{}\"",
                    String::from_utf8_lossy(sink_name),
                    String::from_utf8_lossy(exchange)
                ),
            ));
        }
        out.push(MessageRef {
            start: pos,
            end: pos + len,
            key_start: pos + 4 + key_at + 1,
            key_end: pos + 4 + key_at + 1 + key_len,
        });
        pos += len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hawser_wire::dmp::{Envelope, Message, ShortStr};

    fn message(exchange: &str, key: &str, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        Message::Envelope(Envelope {
            exchange: ShortStr::text(exchange).unwrap(),
            routing_key: ShortStr::text(key).unwrap(),
            body,
            ..Envelope::default()
        })
        .encode(&mut out)
        .unwrap();
        out
    }

    #[test]
    fn finds_whole_messages_keys_and_the_incomplete_tail() {
        let mut buf = message("", "k1", b"hello");
        buf.extend_from_slice(&[0, 0, 0, 0]);
        let second = message("s", "key.two", b"world!");
        buf.extend_from_slice(&second);
        let third = message("s", "k3", &[7; 100]);
        buf.extend_from_slice(&third[..10]);
        let mut out = Vec::new();
        let s = scan(&buf, 1 << 20, b"s", &mut out).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(&buf[out[0].key_start..out[0].key_end], b"k1");
        assert_eq!(&buf[out[1].key_start..out[1].key_end], b"key.two");
        assert_eq!(out[1].start, out[0].end + 4, "the null message is skipped");
        assert_eq!(s.consumed, out[1].end);
        assert_eq!(s.next_len, Some(third.len()));
    }

    #[test]
    fn refuses_foreign_exchanges_oversized_and_malformed_messages() {
        let mut out = Vec::new();
        let e = scan(&message("other", "k", b"x"), 1 << 20, b"s", &mut out).unwrap_err();
        assert_eq!(e.code, ResponseCode::NoAccess);
        let e = scan(&[0xff, 0xff, 0xff, 0xff], 1 << 20, b"s", &mut out).unwrap_err();
        assert_eq!(e.code, ResponseCode::NotAllowed);
        // Size 3: an exchange length of 200 overruns it.
        let e = scan(&[0, 0, 0, 3, 200, 0, 0], 1 << 20, b"s", &mut out).unwrap_err();
        assert_eq!(e.code, ResponseCode::SyntaxError);
    }
}
