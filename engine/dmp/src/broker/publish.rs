//! Routing what a publisher sent: each message of a receive goes to the feeds whose
//! bindings match its routing key, as slices of that receive (runs of consecutive
//! messages for one feed stay one slice).

use bytes::Bytes;

use super::{Broker, EntityId, Overflow};

/// Where one whole message lies in a receive, and its routing key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageRef {
    /// Its first byte (the size field).
    pub start: usize,
    /// Past its last byte.
    pub end: usize,
    /// Its routing key's first byte.
    pub key_start: usize,
    /// Past its routing key's last byte.
    pub key_end: usize,
}

impl Broker {
    /// Routes `messages` (whole messages of `chunk`) written to `sink`; `backing` is the
    /// size of the allocation the chunk's slices keep alive. Feeds that reached their
    /// high-water mark under `block` are added to `blocked`. False when the sink is gone.
    pub fn publish(
        &mut self,
        sink: EntityId,
        chunk: &Bytes,
        backing: usize,
        messages: &[MessageRef],
        blocked: &mut Vec<EntityId>,
    ) -> bool {
        let Some(s) = self.sinks.get_mut(&sink) else {
            return false;
        };
        s.messages += messages.len() as u64;
        self.routed.clear();
        self.routed.resize(messages.len(), false);
        for binding in &s.bindings {
            let Some(feed) = self.feeds.get_mut(&binding.feed) else {
                continue;
            };
            let before = feed.queue.bytes();
            let mut run: Option<(usize, usize, u64)> = None;
            let mut matched = 0u64;
            for (i, m) in messages.iter().enumerate() {
                if binding.matches(&chunk[m.key_start..m.key_end]) {
                    self.routed[i] = true;
                    matched += 1;
                    run = match run {
                        Some((start, end, n)) if end == m.start => Some((start, m.end, n + 1)),
                        Some((start, end, n)) => {
                            feed.admit(chunk, backing, start..end, n);
                            Some((m.start, m.end, 1))
                        }
                        None => Some((m.start, m.end, 1)),
                    };
                } else if let Some((start, end, n)) = run.take() {
                    feed.admit(chunk, backing, start..end, n);
                }
            }
            if let Some((start, end, n)) = run {
                feed.admit(chunk, backing, start..end, n);
            }
            if matched == 0 {
                continue;
            }
            feed.counters.received += matched;
            self.wakes.extend(feed.consumer);
            match feed.after_push() {
                Overflow::None => {}
                Overflow::Block => blocked.push(feed.id),
                Overflow::Disconnect(consumer) => self.wakes.push(consumer),
            }
            // Drops may have taken more than this receive added.
            self.queued = (self.queued + feed.queue.bytes()).saturating_sub(before);
            if feed.queue.bytes() < before {
                self.wake_if_under_budget_later = true;
            }
        }
        s.unrouted += self.routed.iter().filter(|r| !**r).count() as u64;
        if std::mem::take(&mut self.wake_if_under_budget_later) {
            self.wake_if_under_budget();
        }
        true
    }

    /// Pauses publisher `conn` on the feeds in `blocked` until each drains.
    pub fn wait_for(&mut self, conn: hawser_runtime::direct::ConnId, blocked: &[EntityId]) {
        for id in blocked {
            if let Some(f) = self.feeds.get_mut(id)
                && !f.waiting.contains(&conn)
            {
                f.waiting.push(conn);
            }
        }
    }
}
