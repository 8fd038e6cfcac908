//! Dissecting one direction of a DMP direct connection.

use hawser_wire::dmp::{Envelope, Item, Message, Properties, ShortStr, StreamDecoder};
use serde_json::{Map, Value as Json};

use super::{Decoded, Dissector, Fields, Malformed, Options, Value};

pub(super) struct DmpDissector {
    decoder: StreamDecoder,
    full_payload: bool,
}

impl DmpDissector {
    pub(super) fn new(options: &Options) -> Self {
        Self {
            // The direction is told by the first bytes: `AMQP` starts a client stream.
            decoder: StreamDecoder::detect().with_max_message_size(options.max_payload),
            full_payload: options.full_payload,
        }
    }
}

impl Dissector for DmpDissector {
    fn next_item(
        &mut self,
        buf: &[u8],
        canonical: Option<&mut Vec<u8>>,
    ) -> Result<Option<Decoded>, Malformed> {
        let item_start = self.decoder.position();
        let (item, consumed) = match self.decoder.decode(buf) {
            Ok(Some(decoded)) => decoded,
            Ok(None) => return Ok(None),
            Err(e) => return Err(Malformed::in_stream(e.offset, item_start, e.kind)),
        };
        if let Some(out) = canonical {
            item.encode(out).map_err(Malformed::reencode)?;
        }
        let full = self.full_payload;
        let mut fields = Fields::new();
        let kind = match item {
            Item::Preamble(p) => {
                fields.push("protocol_id", Value::U64(p.protocol_id.into()));
                fields.push("instance", Value::U64(p.instance.into()));
                fields.push("version", Value::Text(format!("{}.{}", p.major, p.minor)));
                "preamble"
            }
            Item::Command(c) => {
                fields.push("text", short(c.text));
                "command"
            }
            Item::Response(r) => {
                fields.push("code", Value::U64(r.code().code().into()));
                fields.push("indicator", Value::Text(r.code().indicator().to_owned()));
                if let Some(explanation) = r.explanation() {
                    fields.push(
                        "explanation",
                        Value::Text(String::from_utf8_lossy(explanation).into_owned()),
                    );
                }
                "response"
            }
            Item::Message(Message::Null) => "null",
            Item::Message(Message::Envelope(envelope)) => {
                envelope_fields(&envelope, full, &mut fields);
                "message"
            }
        };
        Ok(Some(Decoded {
            consumed,
            kind,
            fields,
        }))
    }
}

fn short(s: ShortStr<'_>) -> Value {
    Value::Text(String::from_utf8_lossy(s.as_bytes()).into_owned())
}

fn envelope_fields(e: &Envelope<'_>, full: bool, fields: &mut Fields) {
    fields.push("size", Value::U64(e.size() as u64));
    fields.push("exchange", short(e.exchange));
    fields.push("routing_key", short(e.routing_key));
    let properties = properties_json(&e.properties);
    if !properties.is_empty() {
        fields.push("properties", Value::Nested(Json::Object(properties)));
    }
    fields.push("mandatory", Value::Bool(e.options.mandatory));
    fields.push("immediate", Value::Bool(e.options.immediate));
    fields.push("body", Value::bytes(e.body, full));
}

fn properties_json(p: &Properties<'_>) -> Map<String, Json> {
    let mut map = Map::new();
    let text = |s: ShortStr<'_>| Json::from(String::from_utf8_lossy(s.as_bytes()).into_owned());
    let shorts = [
        ("content_type", p.content_type),
        ("content_encoding", p.content_encoding),
        ("correlation_id", p.correlation_id),
        ("reply_to", p.reply_to),
        ("expiration", p.expiration),
        ("message_id", p.message_id),
        ("type", p.message_type),
        ("user_id", p.user_id),
        ("app_id", p.app_id),
        ("cluster_id", p.cluster_id),
    ];
    for (name, value) in shorts {
        if let Some(value) = value {
            map.insert(name.into(), text(value));
        }
    }
    if let Some(headers) = p.headers {
        map.insert("headers_len".into(), Json::from(headers.len()));
    }
    if let Some(mode) = p.delivery_mode {
        map.insert("delivery_mode".into(), Json::from(mode));
    }
    if let Some(priority) = p.priority {
        map.insert("priority".into(), Json::from(priority));
    }
    if let Some(timestamp) = p.timestamp {
        map.insert("timestamp".into(), Json::from(timestamp));
    }
    map
}
