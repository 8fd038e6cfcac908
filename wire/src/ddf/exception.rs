//! Remote exceptions: the `exception` struct with `type`, `message` and a nested cause.

use super::node::{Node, Value};

/// Name of the root node (and of the nested cause member) of a remoted exception.
pub const EXCEPTION: &str = "exception";

/// An exception remoted as DDF:
///
/// ```text
/// exception 4 3
/// type 1 java.io.IOException
/// message 1 disk%20full
/// exception 4 1
/// type 1 java.lang.RuntimeException
/// ```
///
/// `type` is required; `message` and the cause (`exception`) are optional. Other members
/// are ignored when reading (the seed lets receivers ignore data beyond the contract);
/// when a member appears twice the first one counts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RemoteException {
    /// The exception's type (for Java peers, the class name).
    pub type_name: String,
    /// The message, if any.
    pub message: Option<String>,
    /// The cause, if any.
    pub cause: Option<Box<RemoteException>>,
}

/// Why a node is not a well-formed remote exception. `depth` is 0 for the root
/// exception, 1 for its cause, and so on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ExceptionError {
    /// The root node is not a struct named `exception`.
    #[error("not a struct named `exception`")]
    NotAnException,
    /// The exception at `depth` has no `type` member.
    #[error("exception at depth {depth} has no `type` member")]
    MissingType {
        /// Position in the cause chain.
        depth: usize,
    },
    /// A `type` or `message` member is not a type-1 string.
    #[error("member of exception at depth {depth} is not a string")]
    NotAString {
        /// Position in the cause chain.
        depth: usize,
    },
    /// The `exception` member (the cause) is not a struct.
    #[error("cause of exception at depth {depth} is not a struct")]
    CauseNotAStruct {
        /// Position in the cause chain.
        depth: usize,
    },
}

impl RemoteException {
    /// An exception without message or cause.
    pub fn new(type_name: impl Into<String>) -> Self {
        Self {
            type_name: type_name.into(),
            message: None,
            cause: None,
        }
    }

    /// Sets the message.
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }

    /// Sets the cause.
    pub fn with_cause(mut self, cause: RemoteException) -> Self {
        self.cause = Some(Box::new(cause));
        self
    }

    /// The exception and its causes, outermost first.
    pub fn chain(&self) -> impl Iterator<Item = &RemoteException> {
        std::iter::successors(Some(self), |e| e.cause.as_deref())
    }

    /// The DDF node: a struct named `exception` (members `type`, then `message` if any,
    /// then the cause as a nested `exception` struct if any). Built innermost first, so
    /// a long chain does not recurse.
    pub fn to_node(&self) -> Node {
        let links: Vec<&RemoteException> = self.chain().collect();
        let mut node: Option<Node> = None;
        for link in links.into_iter().rev() {
            let mut members = vec![Node::named("type", Value::String(link.type_name.clone()))];
            if let Some(message) = &link.message {
                members.push(Node::named("message", Value::String(message.clone())));
            }
            members.extend(node.take());
            node = Some(Node::named(EXCEPTION, Value::Struct(members)));
        }
        node.unwrap_or_else(|| Node::named(EXCEPTION, Value::Struct(Vec::new())))
    }

    /// Reads an exception (and its causes) from a DDF node.
    pub fn from_node(node: &Node) -> Result<Self, ExceptionError> {
        if node.name.as_deref() != Some(EXCEPTION) || !matches!(node.value, Value::Struct(_)) {
            return Err(ExceptionError::NotAnException);
        }
        let mut links = Vec::new();
        let mut current = Some(node);
        while let Some(node) = current {
            let depth = links.len();
            let string = |name: &str| -> Result<Option<String>, ExceptionError> {
                match node.member(name) {
                    None => Ok(None),
                    Some(member) => member
                        .as_str()
                        .map(|s| Some(s.to_owned()))
                        .ok_or(ExceptionError::NotAString { depth }),
                }
            };
            let type_name = string("type")?.ok_or(ExceptionError::MissingType { depth })?;
            let message = string("message")?;
            current = match node.member(EXCEPTION) {
                None => None,
                Some(
                    cause @ Node {
                        value: Value::Struct(_),
                        ..
                    },
                ) => Some(cause),
                Some(_) => return Err(ExceptionError::CauseNotAStruct { depth }),
            };
            links.push((type_name, message));
        }
        let mut exception: Option<RemoteException> = None;
        for (type_name, message) in links.into_iter().rev() {
            exception = Some(RemoteException {
                type_name,
                message,
                cause: exception.map(Box::new),
            });
        }
        exception.ok_or(ExceptionError::NotAnException)
    }
}
