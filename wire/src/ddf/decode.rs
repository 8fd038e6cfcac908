//! Reading DDF text back into nodes, without recursion.

use super::MAX_DEPTH;
use super::error::{DdfError, DdfErrorKind};
use super::escape::unescape;
use super::node::{Node, TypeNumber, Value};

/// The shortest possible line (` 0` + 0x0A, an empty name): a child count larger than the
/// remaining input divided by this cannot be honest.
const MIN_LINE_LEN: usize = 3;

/// Initial capacity cap for children vectors: the count is only a claim, so memory grows
/// with the children actually read, not with the number announced.
const MAX_PREALLOCATED_CHILDREN: usize = 64;

/// A struct or list whose children are still being read.
struct Open {
    name: Option<String>,
    is_list: bool,
    announced: u32,
    children: Vec<Node>,
}

impl Open {
    fn into_node(self) -> Node {
        let value = if self.is_list {
            Value::List(self.children)
        } else {
            Value::Struct(self.children)
        };
        Node {
            name: self.name,
            value,
        }
    }
}

/// What one line says.
enum Line {
    Leaf(Node),
    Compound {
        name: Option<String>,
        is_list: bool,
        count: u32,
    },
}

/// Decodes one DDF message: exactly one root node and its descendants, nothing after.
///
/// Error offsets count from the start of `text`.
pub fn decode(text: &[u8]) -> Result<Node, DdfError> {
    Decoder {
        text,
        pos: 0,
        line: 1,
    }
    .run()
}

struct Decoder<'a> {
    text: &'a [u8],
    pos: usize,
    line: usize,
}

impl Decoder<'_> {
    fn error(&self, offset: usize, kind: DdfErrorKind) -> DdfError {
        DdfError {
            offset,
            line: self.line,
            kind,
        }
    }

    fn run(mut self) -> Result<Node, DdfError> {
        if self.text.is_empty() {
            return Err(self.error(0, DdfErrorKind::Empty));
        }
        let mut open: Vec<Open> = Vec::new();
        let root = loop {
            if let Some(parent) = open.last()
                && self.pos == self.text.len()
            {
                let kind = DdfErrorKind::MissingChildren {
                    announced: parent.announced,
                    found: parent.children.len() as u32,
                };
                return Err(self.error(self.pos, kind));
            }
            if open.len() >= MAX_DEPTH {
                return Err(self.error(self.pos, DdfErrorKind::TooDeep));
            }
            let mut finished = match self.line()? {
                Line::Leaf(node) => Some(node),
                Line::Compound {
                    name,
                    is_list,
                    count: 0,
                } => Some(
                    Open {
                        name,
                        is_list,
                        announced: 0,
                        children: Vec::new(),
                    }
                    .into_node(),
                ),
                Line::Compound {
                    name,
                    is_list,
                    count,
                } => {
                    open.push(Open {
                        name,
                        is_list,
                        announced: count,
                        children: Vec::with_capacity(
                            (count as usize).min(MAX_PREALLOCATED_CHILDREN),
                        ),
                    });
                    None
                }
            };
            // Hand finished nodes up the tree; a parent with all its children finishes too.
            let mut root = None;
            while let Some(node) = finished.take() {
                match open.last_mut() {
                    None => root = Some(node),
                    Some(parent) => {
                        parent.children.push(node);
                        if parent.children.len() == parent.announced as usize {
                            finished = open.pop().map(Open::into_node);
                        }
                    }
                }
            }
            if let Some(root) = root {
                break root;
            }
        };
        if self.pos != self.text.len() {
            return Err(self.error(self.pos, DdfErrorKind::TrailingData));
        }
        Ok(root)
    }

    /// Reads the line at `pos` and advances past its 0x0A.
    fn line(&mut self) -> Result<Line, DdfError> {
        let start = self.pos;
        let rest = self.text.get(start..).unwrap_or_default();
        let Some(len) = rest.iter().position(|&b| b == b'\n') else {
            return Err(self.error(self.text.len(), DdfErrorKind::UnterminatedLine));
        };
        let line = rest.get(..len).unwrap_or_default();
        let mut fields = Fields {
            line,
            start,
            pos: 0,
        };
        let (name_at, name_field) = fields.next().unwrap_or((start, line));
        let name = match name_field {
            b"." => None,
            field => Some(self.text_field(field, name_at)?),
        };
        let Some((type_at, type_field)) = fields.next() else {
            return Err(self.error(start + line.len(), DdfErrorKind::MissingType));
        };
        let type_number = match type_field {
            [digit @ b'0'..=b'9'] => TypeNumber::from_number(digit - b'0')
                .ok_or(self.error(type_at, DdfErrorKind::UnknownType(digit - b'0')))?,
            _ => return Err(self.error(type_at, DdfErrorKind::BadType)),
        };
        let value_field = fields.next();
        if let Some((extra_at, _)) = fields.next() {
            return Err(self.error(extra_at - 1, DdfErrorKind::UnexpectedField));
        }
        let value_end = start + line.len();
        let required =
            |this: &Self| value_field.ok_or(this.error(value_end, DdfErrorKind::MissingValue));
        let parsed = match type_number {
            TypeNumber::Empty => {
                if let Some((at, _)) = value_field {
                    return Err(self.error(at - 1, DdfErrorKind::UnexpectedField));
                }
                Line::Leaf(Node {
                    name,
                    value: Value::Empty,
                })
            }
            // A missing value field reads as the empty string (the encoder always writes
            // the separating space).
            TypeNumber::String => {
                let (at, field) = value_field.unwrap_or((value_end, b""));
                let text = self.text_field(field, at)?;
                Line::Leaf(Node {
                    name,
                    value: Value::String(text),
                })
            }
            TypeNumber::UnsafeString => {
                let (at, field) = value_field.unwrap_or((value_end, b""));
                let bytes = unescape(field).map_err(|(i, kind)| self.error(at + i, kind))?;
                Line::Leaf(Node {
                    name,
                    value: Value::UnsafeString(bytes),
                })
            }
            TypeNumber::Int => {
                let (at, field) = required(self)?;
                let v = parse_ascii(field).ok_or(self.error(at, DdfErrorKind::BadInt))?;
                Line::Leaf(Node {
                    name,
                    value: Value::Int(v),
                })
            }
            TypeNumber::Long => {
                let (at, field) = required(self)?;
                let v = parse_ascii(field).ok_or(self.error(at, DdfErrorKind::BadLong))?;
                Line::Leaf(Node {
                    name,
                    value: Value::Long(v),
                })
            }
            TypeNumber::Float => {
                let (at, field) = required(self)?;
                let v: f64 = parse_ascii(field).ok_or(self.error(at, DdfErrorKind::BadFloat))?;
                Line::Leaf(Node {
                    name,
                    value: Value::Float(v),
                })
            }
            TypeNumber::Struct | TypeNumber::List => {
                let (at, field) = required(self)?;
                let count: u32 =
                    parse_ascii(field).ok_or(self.error(at, DdfErrorKind::BadCount))?;
                let remaining = self.text.len() - (value_end + 1);
                if count as usize > remaining / MIN_LINE_LEN {
                    return Err(self.error(at, DdfErrorKind::CountExceedsInput(count)));
                }
                Line::Compound {
                    name,
                    is_list: type_number == TypeNumber::List,
                    count,
                }
            }
        };
        self.pos = value_end + 1;
        self.line += 1;
        Ok(parsed)
    }

    /// Unescapes a name or type-1 string field and checks it is UTF-8.
    fn text_field(&self, field: &[u8], at: usize) -> Result<String, DdfError> {
        let bytes = unescape(field).map_err(|(i, kind)| self.error(at + i, kind))?;
        String::from_utf8(bytes).map_err(|_| self.error(at, DdfErrorKind::InvalidUtf8))
    }
}

/// Parses a number field. Rust's parsers accept a leading `+` and, for floats, `inf`,
/// `nan` and exponents in any case; the encoder writes only the canonical spelling.
fn parse_ascii<T: std::str::FromStr>(field: &[u8]) -> Option<T> {
    std::str::from_utf8(field).ok()?.parse().ok()
}

/// The space-separated fields of one line, each with its absolute offset.
struct Fields<'a> {
    line: &'a [u8],
    start: usize,
    pos: usize,
}

impl<'a> Iterator for Fields<'a> {
    type Item = (usize, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.line.get(self.pos..)?;
        let at = self.start + self.pos;
        let len = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
        let field = rest.get(..len)?;
        // Past the separating space; past the end of the line when there is none.
        self.pos += len + 1;
        Some((at, field))
    }
}
