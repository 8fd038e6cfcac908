//! DDF remoting text: the self-describing encoding of control payloads and remote
//! exceptions.
//!
//! A message is a tree of [`Node`]s written one node per line (`name type [value]` +
//! 0x0A), a struct or list line giving its child count with the children on the lines
//! after it. Names and strings are URL-encoded, `.` stands for "no name". On a stream a
//! message travels as a frame: its text length as a big-endian `u32`, then the text. The
//! bytes and every decision the seed left open are in `docs/PROTOCOL.md` ("DDF remoting text").
//!
//! Decoding never recurses and never trusts a count: nesting is limited to [`MAX_DEPTH`],
//! a child count must fit the remaining input, and every error names its byte offset and
//! line ([`DdfError`]).
//!
//! ```
//! use hawser_wire::ddf::{self, FrameDecoder, Node, RemoteException, Value};
//!
//! // The seed's nested example, as a frame.
//! let tree = Node::named("foo bar", Value::Struct(vec![Node::named(
//!     "infocom",
//!     Value::Struct(vec![Node::named(
//!         "zork",
//!         Value::List((1..=3).map(|i| Node::unnamed(Value::Int(i))).collect()),
//!     )]),
//! )]));
//! assert_eq!(
//!     tree.to_text(),
//!     b"foo%20bar 4 1\ninfocom 4 1\nzork 5 3\n. 2 1\n. 2 2\n. 2 3\n"
//! );
//!
//! // A remote exception with a cause, framed, then read back.
//! let error = RemoteException::new("java.io.IOException")
//!     .with_message("disk full")
//!     .with_cause(RemoteException::new("java.lang.RuntimeException"));
//! let mut wire = Vec::new();
//! ddf::encode_frame(&tree, &mut wire).unwrap();
//! ddf::encode_frame(&error.to_node(), &mut wire).unwrap();
//!
//! let mut decoder = FrameDecoder::new();
//! let (first, used) = decoder.decode(&wire).unwrap().unwrap();
//! assert_eq!(first, tree);
//! let (second, _) = decoder.decode(&wire[used..]).unwrap().unwrap();
//! assert_eq!(RemoteException::from_node(&second), Ok(error));
//! ```

mod decode;
mod encode;
mod error;
mod escape;
mod exception;
mod framing;
mod node;
#[cfg(test)]
mod tests;

/// Deepest nesting accepted: the root is level 1, its children level 2, and so on.
pub const MAX_DEPTH: usize = 128;

pub use decode::decode;
pub use error::{DdfError, DdfErrorKind};
pub use exception::{EXCEPTION, ExceptionError, RemoteException};
pub use framing::{DEFAULT_MAX_FRAME_LEN, FrameDecoder, FrameTooLong, decode_frame, encode_frame};
pub use node::{Node, TypeNumber, Value};
