//! The fields of a dissected item, shown as text or JSON.

use std::fmt::Write as _;

use serde_json::{Map, Value as Json};

/// Bytes shown of a payload unless the whole is asked for.
pub(crate) const PREVIEW_BYTES: usize = 64;

/// One field value of a dissected item.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// An unsigned number.
    U64(u64),
    /// A signed number.
    I64(i64),
    /// A floating-point number.
    F64(f64),
    /// A flag.
    Bool(bool),
    /// Text (names, reasons, DDF strings).
    Text(String),
    /// Opaque bytes: shown as their length plus a hex preview (or all of them).
    Bytes {
        /// Total length.
        len: usize,
        /// The bytes shown (a prefix unless the whole was asked for).
        shown: Vec<u8>,
    },
    /// A nested structure (DDF trees, lists of intervals).
    Nested(Json),
}

impl Value {
    /// Opaque bytes, shown in full or as a preview.
    pub fn bytes(data: &[u8], full: bool) -> Self {
        let shown = if full {
            data
        } else {
            &data[..data.len().min(PREVIEW_BYTES)]
        };
        Value::Bytes {
            len: data.len(),
            shown: shown.to_vec(),
        }
    }

    fn to_json(&self) -> Json {
        match self {
            Value::U64(n) => Json::from(*n),
            Value::I64(n) => Json::from(*n),
            Value::F64(x) => Json::from(*x),
            Value::Bool(b) => Json::from(*b),
            Value::Text(s) => Json::from(s.as_str()),
            Value::Bytes { len, shown } => {
                let mut map = Map::new();
                map.insert("len".into(), Json::from(*len));
                map.insert("hex".into(), Json::from(hex(shown)));
                if shown.len() < *len {
                    map.insert("truncated".into(), Json::from(true));
                }
                Json::Object(map)
            }
            Value::Nested(json) => json.clone(),
        }
    }

    fn write_text(&self, out: &mut String) {
        match self {
            Value::U64(n) => write!(out, "{n}").ok(),
            Value::I64(n) => write!(out, "{n}").ok(),
            Value::F64(x) => write!(out, "{x}").ok(),
            Value::Bool(b) => write!(out, "{b}").ok(),
            Value::Text(s) => write!(out, "{s:?}").ok(),
            Value::Bytes { len, shown } => {
                write!(out, "[{len} bytes] {}", hex(shown)).ok();
                if shown.len() < *len {
                    out.push('…');
                }
                Some(())
            }
            Value::Nested(json) => write!(out, "{json}").ok(),
        };
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        write!(out, "{b:02x}").ok();
    }
    out
}

/// The ordered fields of one dissected item.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fields(Vec<(&'static str, Value)>);

impl Fields {
    /// No fields yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a field; returns `self` for chaining.
    pub fn with(mut self, name: &'static str, value: Value) -> Self {
        self.0.push((name, value));
        self
    }

    /// Appends a field.
    pub fn push(&mut self, name: &'static str, value: Value) {
        self.0.push((name, value));
    }

    /// The fields in order.
    pub fn iter(&self) -> impl Iterator<Item = &(&'static str, Value)> {
        self.0.iter()
    }

    /// `name=value` pairs separated by spaces.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for (i, (name, value)) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(name);
            out.push('=');
            value.write_text(&mut out);
        }
        out
    }

    /// A JSON object with the offset, the kind and every field.
    pub fn to_json(&self, offset: u64, kind: &str) -> Json {
        let mut map = Map::new();
        map.insert("offset".into(), Json::from(offset));
        map.insert("kind".into(), Json::from(kind));
        for (name, value) in &self.0 {
            map.insert((*name).into(), value.to_json());
        }
        Json::Object(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_json_show_the_same_fields() {
        let fields = Fields::new()
            .with("slot", Value::U64(3))
            .with("reason", Value::Text("bye".into()))
            .with("body", Value::bytes(&[0xab; 100], false));
        let text = fields.to_text();
        assert!(text.starts_with("slot=3 reason=\"bye\" body=[100 bytes] abab"));
        assert!(text.ends_with('…'));
        let json = fields.to_json(7, "request");
        assert_eq!(json["offset"], 7);
        assert_eq!(json["kind"], "request");
        assert_eq!(json["body"]["len"], 100);
        assert_eq!(json["body"]["truncated"], true);
        assert_eq!(json["body"]["hex"].as_str().map(str::len), Some(128));
    }
}
