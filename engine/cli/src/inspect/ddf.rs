//! Dissecting a stream of length-prefixed DDF messages.

use hawser_wire::ddf::{FrameDecoder, Node, RemoteException, Value as DdfValue};
use serde_json::{Map, Value as Json};

use super::{Decoded, Dissector, Fields, Malformed, Options, Value};

pub(super) struct DdfDissector {
    decoder: FrameDecoder,
}

impl DdfDissector {
    pub(super) fn new(options: &Options) -> Self {
        Self {
            decoder: FrameDecoder::new().with_max_len(options.max_payload),
        }
    }
}

impl Dissector for DdfDissector {
    fn next_item(
        &mut self,
        buf: &[u8],
        canonical: Option<&mut Vec<u8>>,
    ) -> Result<Option<Decoded>, Malformed> {
        let item_start = self.decoder.position();
        let (node, consumed) = match self.decoder.decode(buf) {
            Ok(Some(decoded)) => decoded,
            Ok(None) => return Ok(None),
            Err(e) => {
                let message = format!("line {}: {}", e.line, e.kind);
                return Err(Malformed::in_stream(e.offset, item_start, message));
            }
        };
        if let Some(out) = canonical {
            hawser_wire::ddf::encode_frame(&node, out).map_err(Malformed::reencode)?;
        }
        let mut fields = Fields::new();
        let kind = match RemoteException::from_node(&node) {
            Ok(exception) => {
                // Remote exceptions read best as their cause chain.
                let chain: Vec<String> = exception
                    .chain()
                    .map(|e| match &e.message {
                        Some(message) => format!("{}: {message}", e.type_name),
                        None => e.type_name.clone(),
                    })
                    .collect();
                fields.push("chain", Value::Text(chain.join(" <- caused by <- ")));
                "exception"
            }
            Err(_) => "message",
        };
        fields.push(
            "name",
            match &node.name {
                Some(name) => Value::Text(name.clone()),
                None => Value::Nested(Json::Null),
            },
        );
        fields.push("value", Value::Nested(value_json(&node.value)));
        Ok(Some(Decoded {
            consumed,
            kind,
            fields,
        }))
    }
}

/// A DDF value as JSON: structs become objects (unnamed members keyed by position), lists
/// arrays, unsafe strings their Latin-1 reading.
fn value_json(value: &DdfValue) -> Json {
    match value {
        DdfValue::Empty => Json::Null,
        DdfValue::String(s) => Json::from(s.as_str()),
        DdfValue::Int(n) => Json::from(*n),
        DdfValue::Long(n) => Json::from(*n),
        DdfValue::Float(x) => Json::from(*x),
        DdfValue::UnsafeString(bytes) => {
            Json::from(bytes.iter().map(|&b| char::from(b)).collect::<String>())
        }
        DdfValue::Struct(members) => {
            let mut map = Map::new();
            for (i, member) in members.iter().enumerate() {
                map.insert(member_key(member, i), value_json(&member.value));
            }
            Json::Object(map)
        }
        DdfValue::List(elements) => {
            Json::Array(elements.iter().map(|e| value_json(&e.value)).collect())
        }
    }
}

fn member_key(node: &Node, position: usize) -> String {
    node.name.clone().unwrap_or_else(|| format!("#{position}"))
}
