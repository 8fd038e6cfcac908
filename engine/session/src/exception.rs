//! Remote exceptions: a handler's error as it travels back to the initiator.
//!
//! On the wire, a ResponseError's payload is the DDF `exception` structure (type, message,
//! nested cause) in DDF text, encoded and decoded by `hawser_wire::ddf`.

use bytes::Bytes;
use hawser_wire::ddf;

/// Exception type names the session layer itself uses; any other type is an application
/// exception.
pub(crate) mod session_types {
    pub(crate) const CANCELLED: &str = "hawser.session.Cancelled";
    pub(crate) const MISORDERED: &str = "hawser.session.Misordered";
    pub(crate) const BAD_SLOT: &str = "hawser.session.BadSlot";
    pub(crate) const TOO_LARGE: &str = "hawser.session.ResponseTooLarge";
    pub(crate) const NOT_CACHED: &str = "hawser.session.ReplyNotCached";
    pub(crate) const REQUEST_TOO_LARGE: &str = "hawser.session.RequestTooLarge";
}

/// An exception raised by a remote handler: its type name, message and optional cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteException {
    /// The exception's type name (for example `java.io.IOException`, `replica.NoSpace`).
    pub type_name: String,
    /// Human-readable message.
    pub message: String,
    /// The exception that caused this one, if any.
    pub cause: Option<Box<RemoteException>>,
}

/// Bounds the cause chain kept from a peer (the DDF decoder bounds nesting as well).
const MAX_CAUSE_DEPTH: usize = 32;

impl RemoteException {
    /// An exception without a cause.
    pub fn new(type_name: impl Into<String>, message: impl Into<String>) -> Self {
        RemoteException {
            type_name: type_name.into(),
            message: message.into(),
            cause: None,
        }
    }

    /// This exception with `cause` attached.
    pub fn with_cause(mut self, cause: RemoteException) -> Self {
        self.cause = Some(Box::new(cause));
        self
    }

    /// The chain from this exception down to its root cause.
    pub fn chain(&self) -> impl Iterator<Item = &RemoteException> {
        std::iter::successors(Some(self), |e| e.cause.as_deref())
    }

    /// Encodes the exception and its cause chain as DDF text.
    pub fn encode(&self) -> Bytes {
        Bytes::from(to_ddf(self).to_node().to_text())
    }

    /// Decodes DDF text holding an `exception` structure; `None` if it is not one.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let node = ddf::decode(bytes).ok()?;
        let e = ddf::RemoteException::from_node(&node).ok()?;
        Some(from_ddf(&e))
    }
}

fn to_ddf(e: &RemoteException) -> ddf::RemoteException {
    // Built innermost first so a long chain does not recurse.
    let links: Vec<&RemoteException> = e.chain().take(MAX_CAUSE_DEPTH).collect();
    let mut out: Option<ddf::RemoteException> = None;
    for link in links.into_iter().rev() {
        let mut d = ddf::RemoteException::new(link.type_name.clone());
        if !link.message.is_empty() {
            d = d.with_message(link.message.clone());
        }
        if let Some(cause) = out.take() {
            d = d.with_cause(cause);
        }
        out = Some(d);
    }
    out.unwrap_or_else(|| ddf::RemoteException::new(e.type_name.clone()))
}

fn from_ddf(e: &ddf::RemoteException) -> RemoteException {
    let links: Vec<&ddf::RemoteException> = e.chain().take(MAX_CAUSE_DEPTH).collect();
    let mut out: Option<RemoteException> = None;
    for link in links.into_iter().rev() {
        let mut r = RemoteException::new(
            link.type_name.clone(),
            link.message.clone().unwrap_or_default(),
        );
        r.cause = out.take().map(Box::new);
        out = Some(r);
    }
    out.unwrap_or_else(|| RemoteException::new(e.type_name.clone(), String::new()))
}

impl std::fmt::Display for RemoteException {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.type_name, self.message)?;
        if let Some(cause) = &self.cause {
            write!(f, " (caused by {cause})")?;
        }
        Ok(())
    }
}

impl std::error::Error for RemoteException {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cause_chain_round_trips_as_ddf_text() {
        let e = RemoteException::new("replica.NoSpace", "disk full")
            .with_cause(RemoteException::new("java.io.IOException", "ENOSPC"));
        let text = e.encode();
        assert_eq!(
            std::str::from_utf8(&text).unwrap(),
            "exception 4 3\ntype 1 replica.NoSpace\nmessage 1 disk%20full\n\
             exception 4 2\ntype 1 java.io.IOException\nmessage 1 ENOSPC\n"
        );
        let back = RemoteException::decode(&text).unwrap();
        assert_eq!(back, e);
        assert_eq!(back.chain().count(), 2);
        assert_eq!(RemoteException::decode(&[0, 9, b'x']), None);
        assert_eq!(RemoteException::decode(&[]), None);
    }
}
