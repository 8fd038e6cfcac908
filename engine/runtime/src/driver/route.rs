//! Which shard of a server an accepted connection opens on: the one its identity's
//! route names, read from the Hello the client sends first (see PROTOCOL.md, session
//! layer §15). Every connection of an identity, so every connection of its nexuses,
//! then lives on one shard.

use std::sync::Arc;

use hawser_shards::{ROUTE_PEEK_MAX, Route, Router};
use hawser_wire::dsp::{self as wire, Frame};

/// The router of a server running on the shards `on`: a client's route `r` goes to
/// `on[r % on.len()]`; anything but a Hello with a route goes anywhere (the session
/// refuses a Hello without one; other protocols carry no route).
pub(crate) fn dsp_router(on: Vec<usize>) -> Router {
    Arc::new(move |first: &[u8]| route_of(first, &on))
}

fn route_of(first: &[u8], on: &[usize]) -> Route {
    // Not DSP (a DMP preamble, a stray TLS record): no route to wait for.
    let magic = wire::MAGIC.to_be_bytes();
    if first.iter().zip(magic).any(|(&a, b)| a != b) {
        return Route::Any;
    }
    let mut scratch = Vec::new();
    match wire::decode_frame(first, wire::HANDSHAKE_MAX_PAYLOAD, &mut scratch) {
        Ok(Some((_, Frame::Hello(hello), _))) => match hello.capabilities.route() {
            Some(route) if !on.is_empty() => Route::To(on[usize::from(route) % on.len()]),
            _ => Route::Any,
        },
        // A Hello is shorter than what is peeked: a longer frame is something else.
        Ok(None) if first.len() < ROUTE_PEEK_MAX => Route::NeedMore,
        _ => Route::Any,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(route: Option<u16>) -> Vec<u8> {
        let mut capabilities = wire::Capabilities::DIGEST;
        if let Some(r) = route {
            capabilities = capabilities.with_route(r);
        }
        let frame = Frame::Hello(wire::Hello {
            min_version: wire::VERSION,
            max_version: wire::VERSION,
            capabilities,
            nonce: [1; 16],
        });
        let mut out = Vec::new();
        wire::FrameEncoder::new(wire::EncodeOptions {
            digest: true,
            compression: wire::Compression::Off,
        })
        .encode(&frame, &mut out)
        .unwrap();
        out
    }

    #[test]
    fn a_hello_goes_to_the_shard_of_its_route_and_anything_else_anywhere() {
        let on = [1, 3];
        let routed = hello(Some(5));
        assert!(routed.len() <= ROUTE_PEEK_MAX);
        assert_eq!(route_of(&routed, &on), Route::To(3));
        assert_eq!(route_of(&hello(Some(4)), &on), Route::To(1));
        // Part of it: wait for the rest.
        assert_eq!(route_of(&routed[..1], &on), Route::NeedMore);
        assert_eq!(route_of(&routed[..10], &on), Route::NeedMore);
        assert_eq!(route_of(&routed[..routed.len() - 1], &on), Route::NeedMore);
        assert_eq!(route_of(&hello(None), &on), Route::Any);
        assert_eq!(route_of(b"AMQP\x0a\x01\x00\x01", &on), Route::Any);
        assert_eq!(route_of(&[0x16, 0x03, 0x01, 0x02, 0x00], &on), Route::Any);
        let mut corrupt = routed.clone();
        corrupt[40] ^= 1;
        assert_eq!(route_of(&corrupt, &on), Route::Any);
    }
}
