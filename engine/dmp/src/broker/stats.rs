//! The broker's figures, for the stats exchange and reports.

use serde::{Deserialize, Serialize};

use super::{Broker, FeedCounters};

/// A feed's figures, for reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeedStats {
    /// Its name.
    pub name: String,
    /// Its policy.
    pub policy: String,
    /// Messages queued.
    pub queued_messages: u64,
    /// Bytes queued.
    pub queued_bytes: u64,
    /// Whether a consumer reads it.
    pub consumer: bool,
    /// Its counters.
    pub counters: FeedCounters,
}

/// The broker's figures.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BrokerStats {
    /// Sinks.
    pub sinks: usize,
    /// Feeds, by name.
    pub feeds: Vec<FeedStats>,
    /// Leases waiting.
    pub leases: usize,
    /// Open direct connections.
    pub direct_connections: usize,
    /// Messages routed to no feed.
    pub unrouted: u64,
    /// Bytes all feeds' queues hold.
    #[serde(default)]
    pub queued_bytes: u64,
}

impl Broker {
    /// The broker's figures.
    pub fn stats(&self) -> BrokerStats {
        let mut feeds: Vec<_> = self
            .feeds
            .values()
            .map(|f| FeedStats {
                name: f.name.clone(),
                policy: f.policy.as_str().to_owned(),
                queued_messages: f.queue.messages(),
                queued_bytes: f.queue.bytes(),
                consumer: f.consumer.is_some(),
                counters: f.counters,
            })
            .collect();
        feeds.sort_by(|a, b| a.name.cmp(&b.name));
        BrokerStats {
            sinks: self.sinks.len(),
            feeds,
            leases: self.leases.len(),
            direct_connections: self.direct_connections,
            unrouted: self.sinks.values().map(|s| s.unrouted).sum(),
            queued_bytes: self.queued,
        }
    }
}
