//! Dissecting a DSP trunk-connection byte stream (one direction).

use hawser_wire::dsp::{
    Channel, ChannelAttrs, Compression, DIGEST_LEN, DspError, EncodeOptions, Frame, FrameEncoder,
    FrameHeader, HEADER_LEN, NexusId, decode_frame,
};

use super::{Decoded, Dissector, Fields, Malformed, Options, Value};

pub(super) struct DspDissector {
    max_payload: u32,
    full_payload: bool,
    scratch: Vec<u8>,
    /// A Hello with the TLS capability went by: what follows is TLS records.
    tls: bool,
}

impl DspDissector {
    pub(super) fn new(options: &Options) -> Self {
        Self {
            max_payload: options.max_payload,
            full_payload: options.full_payload,
            scratch: Vec::new(),
            tls: false,
        }
    }
}

/// Where in a frame an error was detected, so the reported offset points at the culprit.
fn error_offset(error: &DspError, header: Option<&FrameHeader>) -> usize {
    match (error, header) {
        (DspError::DigestMismatch, Some(h)) => h.frame_len() - DIGEST_LEN,
        (DspError::BadMagic, _) => 0,
        (DspError::UnsupportedVersion(_), _) => 2,
        (DspError::UnknownKind(_), _) => 3,
        (DspError::ReservedFlags(_) | DspError::FlagNotAllowed { .. }, _) => 4,
        (DspError::ReservedField(_), _) => 6,
        (DspError::TooLong { .. }, _) => 24,
        (DspError::HeaderChecksum, _) => 28,
        _ => HEADER_LEN,
    }
}

impl Dissector for DspDissector {
    fn next_item(
        &mut self,
        buf: &[u8],
        canonical: Option<&mut Vec<u8>>,
    ) -> Result<Option<Decoded>, Malformed> {
        if self.tls {
            return tls_record(buf);
        }
        // The header is validated on its own first so a payload error can name its offset.
        let header = hawser_wire::dsp::peek_header(buf, self.max_payload)
            .map_err(|e| Malformed::new(error_offset(&e, None), e))?;
        let (header, frame, consumed) = match decode_frame(buf, self.max_payload, &mut self.scratch)
        {
            Ok(Some(decoded)) => decoded,
            Ok(None) => return Ok(None),
            Err(e) => return Err(Malformed::new(error_offset(&e, header.as_ref()), e)),
        };
        if let Some(out) = canonical {
            let mut encoder = FrameEncoder::new(EncodeOptions {
                digest: header.has_digest(),
                compression: if header.is_compressed() {
                    Compression::Lz4
                } else {
                    Compression::Off
                },
            });
            encoder.encode(&frame, out).map_err(Malformed::reencode)?;
        }
        if let Frame::Hello(hello) = &frame {
            self.tls = hello
                .capabilities
                .contains(hawser_wire::dsp::Capabilities::TLS);
        }
        let mut fields = header_fields(&header);
        frame_fields(&frame, self.full_payload, &mut fields);
        Ok(Some(Decoded {
            consumed,
            kind: header.kind.name(),
            fields,
        }))
    }
}

/// One TLS record after a Hello that agreed to TLS: its type and length; the content is
/// encrypted (decrypting a capture takes the session keys, see `SSLKEYLOGFILE` in
/// docs/PROTOCOL.md).
fn tls_record(buf: &[u8]) -> Result<Option<Decoded>, Malformed> {
    const HEADER: usize = 5;
    let Some(head) = buf.get(..HEADER) else {
        return Ok(None);
    };
    let kind = match head[0] {
        20 => "TLS change_cipher_spec",
        21 => "TLS alert",
        22 => "TLS handshake",
        23 => "TLS application_data",
        _ => {
            return Err(Malformed::new(
                0,
                "not a TLS record (the Hello agreed to TLS, so everything after it is TLS)",
            ));
        }
    };
    if head[1] != 3 {
        return Err(Malformed::new(1, "not a TLS record version (3.x)"));
    }
    let len = usize::from(u16::from_be_bytes([head[3], head[4]]));
    if len > (1 << 14) + 256 {
        return Err(Malformed::new(
            3,
            format!("TLS record of {len} bytes: too long"),
        ));
    }
    if buf.len() < HEADER + len {
        return Ok(None);
    }
    Ok(Some(Decoded {
        consumed: HEADER + len,
        kind,
        fields: Fields::new()
            .with("length", Value::U64(len as u64))
            .with("content", Value::Text("encrypted".into())),
    }))
}

fn header_fields(header: &FrameHeader) -> Fields {
    let mut flags = Vec::new();
    if header.is_compressed() {
        flags.push("compressed");
    }
    if header.has_digest() {
        flags.push("digest");
    }
    let bits = header.flags.bits();
    if bits & hawser_wire::dsp::Flags::BACKCHANNEL.bits() != 0 {
        flags.push("backchannel");
    }
    if bits & hawser_wire::dsp::Flags::ORDERED.bits() != 0 {
        flags.push("ordered");
    }
    Fields::new()
        .with("flags", Value::Text(flags.join("|")))
        .with("payload_len", Value::U64(u64::from(header.payload_len)))
}

fn nexus(id: NexusId) -> Value {
    Value::Text(format!("{:032x}", id.to_u128()))
}

fn attrs(a: &ChannelAttrs) -> Value {
    Value::Nested(serde_json::json!({
        "slots": a.slots,
        "max_request_size": a.max_request_size,
        "max_response_size": a.max_response_size,
        "max_cached_response_size": a.max_cached_response_size,
    }))
}

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

fn code<T: std::fmt::Display>(c: T) -> Value {
    Value::Text(c.to_string())
}

fn channel(channel: Channel) -> Value {
    let name = match channel {
        Channel::Fore => "fore",
        Channel::Back => "back",
    };
    Value::Text(name.to_owned())
}

/// The fields that name an exchange: which channel, slot and sequence, which request.
fn exchange_head(f: &mut Fields, on: Channel, slot: u32, sequence: u32, request_id: u64) {
    f.push("channel", channel(on));
    f.push("slot", Value::U64(slot.into()));
    f.push("sequence", Value::U64(sequence.into()));
    f.push("request_id", Value::U64(request_id));
}

fn frame_fields(frame: &Frame<'_>, full: bool, f: &mut Fields) {
    let bytes = |b: &[u8]| Value::bytes(b, full);
    match frame {
        Frame::Hello(h) => {
            f.push("min_version", Value::U64(h.min_version.into()));
            f.push("max_version", Value::U64(h.max_version.into()));
            f.push(
                "capabilities",
                Value::Text(format!("{:#x}", h.capabilities.0)),
            );
            f.push("nonce", bytes(&h.nonce));
        }
        Frame::Auth(a) => {
            f.push("mechanism", text(a.mechanism));
            if let Some(initial) = a.initial_response {
                f.push("initial_response", bytes(initial));
            }
        }
        Frame::AuthChallenge(c) => f.push("data", bytes(c.data)),
        Frame::AuthResponse(r) => f.push("data", bytes(r.data)),
        Frame::AuthResult(r) => {
            f.push("status", code(r.status));
            f.push("additional_data", bytes(r.additional_data));
            f.push("reason", text(r.reason));
        }
        Frame::NexusCreate(c) => {
            f.push("client_identity", text(c.client_identity));
            f.push("fore", attrs(&c.fore));
            f.push("back", attrs(&c.back));
            f.push("grace_period_ms", Value::U64(c.grace_period_ms.into()));
            f.push("features", Value::Text(format!("{:#x}", c.features.0)));
        }
        Frame::NexusCreated(c) => {
            f.push("status", code(c.status));
            f.push("nexus", nexus(c.nexus));
            f.push("fore", attrs(&c.fore));
            f.push("back", attrs(&c.back));
            f.push("grace_period_ms", Value::U64(c.grace_period_ms.into()));
            f.push("features", Value::Text(format!("{:#x}", c.features.0)));
            f.push("reason", text(c.reason));
        }
        Frame::BindConnection(b) => f.push("nexus", nexus(b.nexus)),
        Frame::BindAck(b) => {
            f.push("status", code(b.status));
            f.push("nexus", nexus(b.nexus));
            f.push("reason", text(b.reason));
        }
        Frame::NexusRecover(r) => {
            f.push("nexus", nexus(r.nexus));
            f.push("client_identity", text(r.client_identity));
        }
        Frame::NexusRecovered(r) => {
            f.push("status", code(r.status));
            f.push("nexus", nexus(r.nexus));
            f.push("reason", text(r.reason));
        }
        Frame::NexusDestroy(d) => f.push("nexus", nexus(d.nexus)),
        Frame::NexusDestroyed(d) => {
            f.push("status", code(d.status));
            f.push("nexus", nexus(d.nexus));
            f.push("reason", text(d.reason));
        }
        Frame::Request(r) => {
            exchange_head(f, r.channel, r.slot, r.sequence, r.request_id);
            f.push("exchange", Value::U64(r.exchange.into()));
            if let Some(order) = r.order {
                f.push("order", Value::U64(order));
            }
            f.push("body", bytes(r.body));
        }
        Frame::Response(r) => {
            exchange_head(f, r.channel, r.slot, r.sequence, r.request_id);
            f.push("body", bytes(r.body));
        }
        Frame::ResponseError(r) => {
            exchange_head(f, r.channel, r.slot, r.sequence, r.request_id);
            // The exception is DDF text: show it as text when it is printable.
            match std::str::from_utf8(r.exception) {
                Ok(s) if full || s.len() <= 256 => f.push("exception", text(s)),
                _ => f.push("exception", bytes(r.exception)),
            }
        }
        Frame::Cancel(c) => {
            exchange_head(f, c.channel, c.slot, c.sequence, c.request_id);
        }
        Frame::Credit(c) => {
            f.push("channel", channel(c.channel));
            f.push("slots", Value::U64(c.slots.into()));
        }
        Frame::Ping(p) => f.push("token", Value::U64(p.token)),
        Frame::Pong(p) => f.push("token", Value::U64(p.token)),
        Frame::GoAway(g) => {
            f.push("code", code(g.code));
            f.push("reason", text(g.reason));
        }
    }
}
