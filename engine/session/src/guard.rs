//! What a server keeps to resist hostile clients: failed authentications by source and
//! by identity (the throttle that slows guessing down), and open connections by source.
//! Every table is bounded: an attacker with many addresses or identities evicts the
//! least penalised entries, never grows the tables.
//!
//! A source is the peer's IP address; an IPv6 address counts by its /64 prefix (what
//! one host or one customer usually holds); a local peer (Unix socket, shared memory)
//! counts by its user id; connections whose peer the driver did not give share one
//! source.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use super::config::AuthThrottleConfig;
use crate::peer::Peer;

/// The unit of per-source limits and throttling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Source {
    /// An IPv4 address, or an IPv6 /64 prefix.
    Ip(IpAddr),
    /// A local user.
    User(u32),
    /// Peers the driver did not name.
    Unknown,
}

/// The source `peer` counts as.
pub(crate) fn source_of(peer: Peer) -> Source {
    match peer {
        Peer::Inet(IpAddr::V6(v6)) => {
            let prefix = u128::from(v6) & !u128::from(u64::MAX);
            Source::Ip(IpAddr::V6(Ipv6Addr::from(prefix)))
        }
        Peer::Inet(ip) => Source::Ip(ip),
        Peer::Local(creds) => Source::User(creds.uid),
        Peer::Unknown => Source::Unknown,
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Ip(IpAddr::V6(v6)) => write!(f, "{v6}/64"),
            Source::Ip(ip) => write!(f, "{ip}"),
            Source::User(uid) => write!(f, "local user {uid}"),
            Source::Unknown => f.write_str("unknown addresses"),
        }
    }
}

/// Open connections by source: an entry per source with at least one, so the table is
/// bounded by the connections themselves.
#[derive(Debug, Default)]
pub(crate) struct SourceCounts(HashMap<Source, u32>);

impl SourceCounts {
    /// One more connection from `source`; returns how many it has now.
    pub(crate) fn add(&mut self, source: Source) -> u32 {
        let n = self.0.entry(source).or_insert(0);
        *n += 1;
        *n
    }

    /// One connection from `source` fewer.
    pub(crate) fn remove(&mut self, source: Source) {
        if let Some(n) = self.0.get_mut(&source) {
            *n -= 1;
            if *n == 0 {
                self.0.remove(&source);
            }
        }
    }

    /// Sources with an open connection.
    pub(crate) fn sources(&self) -> usize {
        self.0.len()
    }
}

/// Failed authentications of one source or identity.
#[derive(Debug, Clone, Copy)]
struct Failures {
    /// Failures since the record was (re)started.
    count: u32,
    last: Instant,
    /// The current one-second window and the failures in it.
    window_start: Instant,
    in_window: u32,
}

/// Failure records by key, at most `capacity` of them.
#[derive(Debug)]
struct FailureTable<K> {
    records: HashMap<K, Failures>,
    capacity: usize,
}

impl<K: std::hash::Hash + Eq + Copy> FailureTable<K> {
    fn new(capacity: usize) -> Self {
        FailureTable {
            records: HashMap::new(),
            capacity: capacity.max(2),
        }
    }

    /// The record of `key` unless it is forgotten.
    fn live(&self, key: &K, now: Instant, forget_after: Duration) -> Option<&Failures> {
        self.records
            .get(key)
            .filter(|f| now.saturating_duration_since(f.last) < forget_after)
    }

    fn record_failure(&mut self, key: K, now: Instant, forget_after: Duration) {
        if !self.records.contains_key(&key) && self.records.len() >= self.capacity {
            self.make_room(now, forget_after);
        }
        let f = self.records.entry(key).or_insert(Failures {
            count: 0,
            last: now,
            window_start: now,
            in_window: 0,
        });
        if now.saturating_duration_since(f.last) >= forget_after {
            f.count = 0;
        }
        if now.saturating_duration_since(f.window_start) >= Duration::from_secs(1) {
            f.window_start = now;
            f.in_window = 0;
        }
        f.count = f.count.saturating_add(1);
        f.in_window = f.in_window.saturating_add(1);
        f.last = now;
    }

    /// Drops forgotten records, then, if still more than three quarters full, the less
    /// penalised half: a table filled by a flood of single failures keeps the records of
    /// sustained guessing. Runs once per quarter of the capacity at most: O(1) amortized.
    fn make_room(&mut self, now: Instant, forget_after: Duration) {
        self.records
            .retain(|_, f| now.saturating_duration_since(f.last) < forget_after);
        if self.records.len() * 4 <= self.capacity * 3 {
            return;
        }
        let mut ranked: Vec<(u32, Instant, K)> = self
            .records
            .iter()
            .map(|(k, f)| (f.count, f.last, *k))
            .collect();
        let half = ranked.len() / 2;
        ranked.select_nth_unstable_by(half, |a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        for (_, _, key) in &ranked[..half] {
            self.records.remove(key);
        }
    }

    fn len(&self) -> usize {
        self.records.len()
    }
}

/// The authentication throttle: how long to wait before answering an attempt, and
/// whether to check it at all.
#[derive(Debug)]
pub(crate) struct AuthThrottle {
    config: AuthThrottleConfig,
    sources: FailureTable<Source>,
    /// Keyed by a keyed hash of the identity, so an entry costs the same whatever the
    /// identity's length (a collision merges two records: harmless).
    identities: FailureTable<u64>,
    hasher: RandomState,
}

impl AuthThrottle {
    pub(crate) fn new(config: AuthThrottleConfig) -> Self {
        AuthThrottle {
            sources: FailureTable::new(config.table_size),
            identities: FailureTable::new(config.table_size),
            config,
            hasher: RandomState::new(),
        }
    }

    /// The key of `identity` in the identity table.
    pub(crate) fn identity_key(&self, identity: &str) -> u64 {
        self.hasher.hash_one(identity)
    }

    fn delay_after(&self, failures: u32) -> Duration {
        let Some(beyond) = failures.checked_sub(self.config.free_failures) else {
            return Duration::ZERO;
        };
        let doublings = beyond.min(20);
        self.config
            .first_delay
            .saturating_mul(1 << doublings)
            .min(self.config.max_delay)
    }

    /// How long the answer to an attempt from `source` for `identity` waits: none until
    /// `free_failures` failures, then doubling per failure up to `max_delay`, by the
    /// worse of the two records.
    pub(crate) fn delay(&self, now: Instant, source: Source, identity: u64) -> Duration {
        let forget = self.config.forget_after;
        let by_source = self
            .sources
            .live(&source, now, forget)
            .map_or(0, |f| f.count);
        let by_identity = self
            .identities
            .live(&identity, now, forget)
            .map_or(0, |f| f.count);
        self.delay_after(by_source.max(by_identity))
    }

    /// Whether `source` has used up its failed attempts of the current second: a further
    /// attempt is refused without being checked.
    pub(crate) fn over_rate(&self, now: Instant, source: Source) -> bool {
        self.sources
            .live(&source, now, self.config.forget_after)
            .is_some_and(|f| {
                now.saturating_duration_since(f.window_start) < Duration::from_secs(1)
                    && f.in_window >= self.config.failures_per_second
            })
    }

    /// An attempt failed (or was refused unchecked).
    pub(crate) fn failure(&mut self, now: Instant, source: Source, identity: u64) {
        let forget = self.config.forget_after;
        self.sources.record_failure(source, now, forget);
        self.identities.record_failure(identity, now, forget);
    }

    /// An attempt proved `identity`: guesses at it are over. The source's record stays
    /// (one valid identity must not buy another's guesses).
    pub(crate) fn proven(&mut self, identity: u64) {
        self.identities.records.remove(&identity);
    }

    /// Records held (sources, identities).
    pub(crate) fn sizes(&self) -> (usize, usize) {
        (self.sources.len(), self.identities.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> AuthThrottle {
        AuthThrottle::new(AuthThrottleConfig {
            table_size: 64,
            ..AuthThrottleConfig::default()
        })
    }

    #[test]
    fn ipv6_sources_count_by_their_64_bit_prefix() {
        let a: IpAddr = "2001:db8:1:2:3:4:5:6".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::1".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(source_of(Peer::Inet(a)), source_of(Peer::Inet(b)));
        assert_ne!(source_of(Peer::Inet(a)), source_of(Peer::Inet(c)));
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(source_of(Peer::Inet(v4)), Source::Ip(v4));
        assert_eq!(source_of(Peer::Unknown), Source::Unknown);
    }

    #[test]
    fn local_peers_count_by_their_user() {
        let creds = |pid, uid| Peer::Local(crate::peer::LocalCredentials { pid, uid, gid: 0 });
        assert_eq!(source_of(creds(10, 1000)), source_of(creds(11, 1000)));
        assert_ne!(source_of(creds(10, 1000)), source_of(creds(10, 1001)));
        assert_eq!(source_of(creds(10, 1000)).to_string(), "local user 1000");
    }

    #[test]
    fn delays_double_after_the_free_failures_up_to_the_cap() {
        let t0 = Instant::now();
        let mut t = throttle();
        let src = Source::Ip("192.0.2.1".parse().unwrap());
        let id = t.identity_key("alice");
        let mut delays = Vec::new();
        for i in 0..12 {
            let now = t0 + Duration::from_secs(i);
            delays.push(t.delay(now, src, id).as_millis());
            t.failure(now, src, id);
        }
        assert_eq!(
            delays,
            [0, 0, 0, 0, 0, 250, 500, 1000, 2000, 4000, 8000, 8000]
        );
        // Another source guessing the same identity waits as long.
        let other = Source::Ip("198.51.100.1".parse().unwrap());
        assert_eq!(
            t.delay(t0 + Duration::from_secs(12), other, id).as_millis(),
            8000
        );
        // Proving the identity clears its record, not the source's.
        t.proven(id);
        assert_eq!(
            t.delay(t0 + Duration::from_secs(12), other, id),
            Duration::ZERO
        );
        assert_eq!(
            t.delay(t0 + Duration::from_secs(12), src, id).as_millis(),
            8000
        );
        // Forgotten after a quiet spell.
        let later = t0 + Duration::from_secs(12) + AuthThrottleConfig::default().forget_after;
        assert_eq!(t.delay(later, src, id), Duration::ZERO);
    }

    #[test]
    fn five_failures_a_second_per_source_then_unchecked() {
        let t0 = Instant::now();
        let mut t = throttle();
        let src = Source::Ip("192.0.2.1".parse().unwrap());
        for i in 0..5 {
            assert!(!t.over_rate(t0, src));
            let id = t.identity_key(&format!("user{i}"));
            t.failure(t0, src, id);
        }
        assert!(t.over_rate(t0, src));
        assert!(t.over_rate(t0 + Duration::from_millis(999), src));
        assert!(!t.over_rate(t0 + Duration::from_secs(1), src));
        assert!(!t.over_rate(t0, Source::Ip("192.0.2.2".parse().unwrap())));
    }

    /// A flood of one-off failures from many addresses and identities cannot grow the
    /// tables, and does not evict the record of a sustained attack.
    #[test]
    fn tables_stay_bounded_and_keep_the_worst_offenders() {
        let t0 = Instant::now();
        let mut t = throttle();
        let guesser = Source::Ip("192.0.2.1".parse().unwrap());
        let victim = t.identity_key("alice");
        for _ in 0..8 {
            t.failure(t0, guesser, victim);
        }
        for i in 0..100_000u32 {
            let src = Source::Ip(IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i)));
            let id = t.identity_key(&format!("random-{i}"));
            t.failure(t0, src, id);
            let (sources, identities) = t.sizes();
            assert!(sources <= 64 && identities <= 64, "{sources} {identities}");
        }
        assert!(t.delay(t0, guesser, 0) >= Duration::from_millis(1000));
        assert!(t.delay(t0, Source::Unknown, victim) >= Duration::from_millis(1000));
    }
}
