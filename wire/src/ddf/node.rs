//! The DDF data model: a tree of optionally named, typed nodes.

/// A node's type number on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TypeNumber {
    /// 0: empty (pointers collapse to this too).
    Empty = 0,
    /// 1: UTF-8 string.
    String = 1,
    /// 2: signed 32-bit integer.
    Int = 2,
    /// 3: double-precision float.
    Float = 3,
    /// 4: struct with named members.
    Struct = 4,
    /// 5: list.
    List = 5,
    /// 7: string of arbitrary bytes (ISO-8859-1 view).
    UnsafeString = 7,
    /// 8: signed 64-bit integer.
    Long = 8,
}

impl TypeNumber {
    /// The type for a wire number; 6 (the old pointer type) and 9 are not types.
    pub fn from_number(number: u8) -> Option<Self> {
        Some(match number {
            0 => Self::Empty,
            1 => Self::String,
            2 => Self::Int,
            3 => Self::Float,
            4 => Self::Struct,
            5 => Self::List,
            7 => Self::UnsafeString,
            8 => Self::Long,
            _ => return None,
        })
    }
}

/// A node's value.
///
/// Equality compares floats by bit pattern, except that every NaN equals every NaN (the
/// wire has one NaN spelling), so `decode(encode(x)) == x` holds for every value.
#[derive(Debug, Clone)]
pub enum Value {
    /// Type 0.
    Empty,
    /// Type 1: text, URL-encoded UTF-8 on the wire.
    String(String),
    /// Type 2.
    Int(i32),
    /// Type 3.
    Float(f64),
    /// Type 4: members, in wire order. Names are expected but not enforced.
    Struct(Vec<Node>),
    /// Type 5: elements, in wire order. Elements may carry names; they are preserved.
    List(Vec<Node>),
    /// Type 7: arbitrary bytes, URL-encoded on the wire.
    UnsafeString(Vec<u8>),
    /// Type 8.
    Long(i64),
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Empty, Self::Empty) => true,
            (Self::String(a), Self::String(b)) => a == b,
            (Self::Int(a), Self::Int(b)) => a == b,
            (Self::Float(a), Self::Float(b)) => {
                a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
            }
            (Self::Struct(a), Self::Struct(b)) | (Self::List(a), Self::List(b)) => a == b,
            (Self::UnsafeString(a), Self::UnsafeString(b)) => a == b,
            (Self::Long(a), Self::Long(b)) => a == b,
            _ => false,
        }
    }
}

impl Value {
    /// The wire type number.
    pub fn type_number(&self) -> TypeNumber {
        match self {
            Self::Empty => TypeNumber::Empty,
            Self::String(_) => TypeNumber::String,
            Self::Int(_) => TypeNumber::Int,
            Self::Float(_) => TypeNumber::Float,
            Self::Struct(_) => TypeNumber::Struct,
            Self::List(_) => TypeNumber::List,
            Self::UnsafeString(_) => TypeNumber::UnsafeString,
            Self::Long(_) => TypeNumber::Long,
        }
    }

    /// The children of a struct or list.
    pub fn children(&self) -> Option<&[Node]> {
        match self {
            Self::Struct(children) | Self::List(children) => Some(children),
            _ => None,
        }
    }
}

/// One DDF node: an optional name (`.` on the wire when absent) and a value.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The name; `None` is written `.`, and a name that is literally `.` is written `%2E`.
    pub name: Option<String>,
    /// The value.
    pub value: Value,
}

impl Node {
    /// A named node.
    pub fn named(name: impl Into<String>, value: Value) -> Self {
        Self {
            name: Some(name.into()),
            value,
        }
    }

    /// A node without a name.
    pub fn unnamed(value: Value) -> Self {
        Self { name: None, value }
    }

    /// The first child called `name`, if this is a struct or list.
    pub fn member(&self, name: &str) -> Option<&Node> {
        self.value
            .children()?
            .iter()
            .find(|child| child.name.as_deref() == Some(name))
    }

    /// The text of a type-1 string node.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::String(text) => Some(text),
            _ => None,
        }
    }
}
