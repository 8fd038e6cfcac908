//! Writing nodes as DDF text: one line per node, children after their parent.

use bytes::BufMut;

use super::escape::escape_into;
use super::node::{Node, Value};

impl Node {
    /// Writes this node and all its descendants as DDF text (canonical form).
    ///
    /// Iterative: a deep tree cannot exhaust the stack.
    pub fn encode(&self, buf: &mut impl BufMut) {
        let mut pending = vec![std::slice::from_ref(self).iter()];
        while let Some(siblings) = pending.last_mut() {
            let Some(node) = siblings.next() else {
                pending.pop();
                continue;
            };
            write_line(node, buf);
            if let Some(children) = node.value.children() {
                pending.push(children.iter());
            }
        }
    }

    /// The DDF text of this node as a fresh vector.
    pub fn to_text(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

fn write_line(node: &Node, buf: &mut impl BufMut) {
    match node.name.as_deref() {
        None => buf.put_u8(b'.'),
        // `.` alone means "no name", so a name that is literally "." is escaped.
        Some(".") => buf.put_slice(b"%2E"),
        Some(name) => escape_into(name.as_bytes(), buf),
    }
    buf.put_u8(b' ');
    buf.put_u8(b'0' + node.value.type_number() as u8);
    match &node.value {
        Value::Empty => {}
        Value::String(text) => {
            buf.put_u8(b' ');
            escape_into(text.as_bytes(), buf);
        }
        Value::UnsafeString(bytes) => {
            buf.put_u8(b' ');
            escape_into(bytes, buf);
        }
        Value::Int(v) => buf.put_slice(format!(" {v}").as_bytes()),
        Value::Long(v) => buf.put_slice(format!(" {v}").as_bytes()),
        Value::Float(v) => {
            buf.put_u8(b' ');
            buf.put_slice(format_float(*v).as_bytes());
        }
        Value::Struct(children) | Value::List(children) => {
            buf.put_slice(format!(" {}", children.len()).as_bytes());
        }
    }
    buf.put_u8(b'\n');
}

/// Canonical float text: Rust's shortest representation that parses back to the same
/// value (`{:?}`: `42.1315927`, `1.0`, `1e300`, `-0.0`), with `NaN`, `Infinity` and
/// `-Infinity` for the special values (the spellings Java's `Double.parseDouble`, C's
/// `strtod` and Rust all accept).
pub(crate) fn format_float(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value == f64::INFINITY {
        "Infinity".to_owned()
    } else if value == f64::NEG_INFINITY {
        "-Infinity".to_owned()
    } else {
        format!("{value:?}")
    }
}
