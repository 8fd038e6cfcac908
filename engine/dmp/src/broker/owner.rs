//! Who asks (a nexus's application, identity and peer) and who may use and delete a
//! sink or feed.

use std::sync::Arc;

use hawser_runtime::Peer;

/// Who asks, over a nexus.
#[derive(Debug, Clone)]
pub struct Requester {
    /// The nexus (the application).
    pub app: u128,
    /// Its identity.
    pub identity: Arc<str>,
    /// The identity is claimed (`ANONYMOUS`), not proven.
    pub anonymous: bool,
    /// Where its nexus was created from.
    pub peer: Peer,
}

/// Who may use and delete a sink or feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// Declared by the server's configuration: never deleted over the wire; a feed's
    /// consumer may be one identity.
    Server {
        /// The only identity that may consume the feed (`None`: any).
        consumer: Option<Arc<str>>,
    },
    /// Declared by an anonymous client: anyone may use or delete it (a claimed name
    /// proves nothing to keep it by).
    Anyone,
    /// Declared by this authenticated identity: only it may bind, consume or delete it.
    Identity(Arc<str>),
}

impl Owner {
    /// The owner of what `who` declares.
    pub fn of(who: &Requester) -> Self {
        if who.anonymous {
            Owner::Anyone
        } else {
            Owner::Identity(Arc::clone(&who.identity))
        }
    }

    pub(super) fn admits(&self, who: &Requester) -> bool {
        match self {
            Owner::Server { consumer: None } | Owner::Anyone => true,
            Owner::Server {
                consumer: Some(identity),
            }
            | Owner::Identity(identity) => !who.anonymous && *who.identity == **identity,
        }
    }
}
