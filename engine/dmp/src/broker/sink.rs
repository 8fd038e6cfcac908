//! A sink: where publishers write; its bindings route each message to feeds.

use hawser_runtime::direct::ConnId;

use super::EntityId;
use crate::pattern::Pattern;

/// A feed listening to a sink for the routing keys its patterns match (a message
/// matching several reaches the feed once).
#[derive(Debug, Clone)]
pub struct Binding {
    /// The feed.
    pub feed: EntityId,
    /// Its patterns.
    pub patterns: Vec<Pattern>,
}

impl Binding {
    /// Whether a message with `key` goes to the feed.
    pub fn matches(&self, key: &[u8]) -> bool {
        self.patterns.iter().any(|p| p.matches(key))
    }
}

/// One sink.
#[derive(Debug)]
pub struct Sink {
    /// Its id.
    pub id: EntityId,
    /// Its name.
    pub name: String,
    /// Lives until deleted (otherwise with the application that declared it).
    pub durable: bool,
    /// The application that declared it, if any.
    pub app: Option<u128>,
    /// Who may delete it.
    pub owner: super::Owner,
    /// Its bindings, one per feed, in the order made.
    pub bindings: Vec<Binding>,
    /// Connections writing to it.
    pub publishers: Vec<ConnId>,
    /// Messages written to it.
    pub messages: u64,
    /// Messages that matched no binding.
    pub unrouted: u64,
}
