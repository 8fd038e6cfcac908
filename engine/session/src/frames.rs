//! The frames the session sends, built from its own types (request and nexus ids, channel
//! attributes, slot keys), and what it reads back out of a peer's Hello.

use bytes::Bytes;
use hawser_wire::dsp::{
    self as wire, Capabilities, ChannelAttrs, GoAwayCode, Hello, NexusFeatures, Status,
};

use super::codec::Frame;
use super::config::ChannelAttributes;
use super::types::{Channel, ExchangeId, NexusId, SlotKey};

/// The only protocol version spoken.
pub(crate) const VERSION: u8 = wire::VERSION;

/// The nexus features this implementation serves: the backchannel and ordered exchanges
/// (digest and lz4 are agreed per connection in Hello, see `docs/PROTOCOL.md`).
pub(crate) const SERVED_FEATURES: NexusFeatures =
    NexusFeatures(NexusFeatures::BACKCHANNEL.0 | NexusFeatures::ORDERED.0);

/// Texts a peer reads (reasons) are cut to this many bytes, so that an answer always
/// fits the handshake payload limit whatever it quotes (a client's identity, say).
const MAX_REASON_LEN: usize = 1024;

/// A Hello offering (client) or agreeing to (server) these options, with this side's
/// nonce.
#[cfg(test)]
pub(crate) fn hello(digest: bool, compress: bool, nonce: [u8; 16]) -> Frame {
    hello_with(digest, compress, false, None, nonce)
}

/// [`hello`], also asking for (client) or agreeing to (server) TLS when `tls`, and
/// saying the client's `route` (see [`Capabilities::ROUTED`]).
pub(crate) fn hello_with(
    digest: bool,
    compress: bool,
    tls: bool,
    route: Option<u16>,
    nonce: [u8; 16],
) -> Frame {
    let mut capabilities = Capabilities::BACKCHANNEL;
    if tls {
        capabilities = capabilities | Capabilities::TLS;
    }
    if digest {
        capabilities = capabilities | Capabilities::DIGEST;
    }
    if compress {
        capabilities = capabilities | Capabilities::LZ4;
    }
    if let Some(route) = route {
        capabilities = capabilities.with_route(route);
    }
    Frame::Hello(Hello {
        min_version: VERSION,
        max_version: VERSION,
        capabilities,
        nonce,
    })
}

/// Whether a Hello asks for or agreed to TLS.
pub(crate) fn hello_tls(hello: &Hello) -> bool {
    hello.capabilities.contains(Capabilities::TLS)
}

/// The options a Hello offers or agreed to: (digest, lz4).
pub(crate) fn hello_options(hello: &Hello) -> (bool, bool) {
    let c = hello.capabilities;
    (
        c.contains(Capabilities::DIGEST),
        c.contains(Capabilities::LZ4),
    )
}

/// The server's list of the SASL mechanisms it offers on a connection (its first
/// `AuthChallenge`, before the client's `Auth`).
pub(crate) fn mechanisms(offered: &[crate::auth::Mechanism]) -> Frame {
    auth_challenge(crate::auth::mechanism_list(offered).into())
}

/// The client's `Auth`: its chosen mechanism and initial response.
pub(crate) fn auth(mechanism: crate::auth::Mechanism, initial: Bytes) -> Frame {
    Frame::Auth(wire::Auth {
        mechanism: mechanism.name().to_owned(),
        initial_response: Some(initial),
    })
}

/// A SASL challenge.
pub(crate) fn auth_challenge(data: Bytes) -> Frame {
    Frame::AuthChallenge(wire::AuthChallenge { data })
}

/// A SASL response.
pub(crate) fn auth_response(data: Bytes) -> Frame {
    Frame::AuthResponse(wire::AuthResponse { data })
}

/// A request on `channel`. `order` 0 is unordered; order numbers start at 1.
pub(crate) fn request(
    channel: Channel,
    key: SlotKey,
    exchange: ExchangeId,
    order: u64,
    body: Bytes,
) -> Frame {
    Frame::Request(wire::Request {
        channel,
        slot: key.slot,
        sequence: key.seq,
        request_id: key.request.0,
        exchange: exchange.0,
        order: (order != 0).then_some(order),
        body,
    })
}

/// The successful answer to the request `key` names.
pub(crate) fn response(channel: Channel, key: SlotKey, body: Bytes) -> Frame {
    Frame::Response(wire::Response {
        channel,
        slot: key.slot,
        sequence: key.seq,
        request_id: key.request.0,
        body,
    })
}

/// The failed answer to the request `key` names: an encoded remote exception.
pub(crate) fn response_error(channel: Channel, key: SlotKey, exception: Bytes) -> Frame {
    Frame::ResponseError(wire::ResponseError {
        channel,
        slot: key.slot,
        sequence: key.seq,
        request_id: key.request.0,
        exception,
    })
}

/// Asks the responder to cancel the request `key` names.
pub(crate) fn cancel(channel: Channel, key: SlotKey) -> Frame {
    Frame::Cancel(wire::Cancel {
        channel,
        slot: key.slot,
        sequence: key.seq,
        request_id: key.request.0,
    })
}

/// The sender is closing the connection, for this reason.
pub(crate) fn go_away(code: GoAwayCode, reason: String) -> Frame {
    Frame::GoAway(wire::GoAway {
        code,
        reason: truncated(reason),
    })
}

/// The outcome of an authentication: the server's proof, or why not.
pub(crate) fn auth_result(status: Status, proof: Bytes, reason: String) -> Frame {
    Frame::AuthResult(wire::AuthResult {
        status,
        additional_data: proof,
        reason: truncated(reason),
    })
}

/// A created nexus with its negotiated attributes.
pub(crate) fn nexus_created(
    nexus: NexusId,
    fore: ChannelAttributes,
    back: ChannelAttributes,
    grace_ms: u32,
    features: NexusFeatures,
) -> Frame {
    Frame::NexusCreated(wire::NexusCreated {
        status: Status::OK,
        nexus: nexus.into(),
        fore: fore.into(),
        back: back.into(),
        grace_period_ms: grace_ms,
        features,
        reason: String::new(),
    })
}

/// A NexusCreated refusing a create, or, with [`Status::HELD`], holding it for `nexus`
/// (the identity's previous one) for `grace_ms` more.
pub(crate) fn create_refused(
    status: Status,
    nexus: Option<NexusId>,
    grace_ms: u32,
    reason: String,
) -> Frame {
    Frame::NexusCreated(wire::NexusCreated {
        status,
        nexus: nexus.map_or_else(wire::NexusId::default, Into::into),
        fore: ChannelAttrs::default(),
        back: ChannelAttrs::default(),
        grace_period_ms: grace_ms,
        features: NexusFeatures::default(),
        reason: truncated(reason),
    })
}

/// The answer to a BindConnection, or, with `recovered`, to a NexusRecover.
pub(crate) fn bind_answer(
    status: Status,
    nexus: NexusId,
    recovered: bool,
    reason: String,
) -> Frame {
    let nexus = nexus.into();
    let reason = truncated(reason);
    if recovered {
        Frame::NexusRecovered(wire::NexusRecovered {
            status,
            nexus,
            reason,
        })
    } else {
        Frame::BindAck(wire::BindAck {
            status,
            nexus,
            reason,
        })
    }
}

/// `reason`, cut at a character boundary to [`MAX_REASON_LEN`] bytes.
fn truncated(mut reason: String) -> String {
    if reason.len() > MAX_REASON_LEN {
        let mut end = MAX_REASON_LEN;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_cut_at_a_character_boundary() {
        let long = "é".repeat(MAX_REASON_LEN);
        let cut = truncated(long);
        assert!(cut.len() <= MAX_REASON_LEN && cut.len() > MAX_REASON_LEN - 2);
        assert!(cut.chars().all(|c| c == 'é'));
        assert_eq!(truncated("short".into()), "short");
    }

    #[test]
    fn hello_carries_the_options_it_offers() {
        for (digest, compress) in [(false, false), (true, false), (false, true), (true, true)] {
            let Frame::Hello(h) = hello(digest, compress, [1; 16]) else {
                panic!("a hello")
            };
            assert_eq!(hello_options(&h), (digest, compress));
            assert_eq!((h.min_version, h.max_version), (VERSION, VERSION));
        }
    }
}
