//! The `[dmp]` table of `hawser serve`'s config file: the message service's timers and
//! limits, and the sinks, feeds and bindings it declares at start.

use std::time::Duration;

use hawser_dmp::{BindingDeclaration, DmpConfig, FeedDeclaration, FlowPolicy, SinkDeclaration};

use crate::error::CliError;
use crate::values::parse_size;

/// `[dmp]`, as written.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DmpFile {
    enabled: Option<bool>,
    heartbeat: Option<String>,
    dead_after: Option<String>,
    lease_ttl: Option<String>,
    high_water: Option<String>,
    max_message_size: Option<String>,
    max_queued: Option<String>,
    max_handshakes: Option<usize>,
    max_high_water: Option<String>,
    max_entities_per_client: Option<usize>,
    max_leases_per_client: Option<usize>,
    max_sinks: Option<usize>,
    max_feeds: Option<usize>,
    max_bindings_per_sink: Option<usize>,
    max_leases: Option<usize>,
    max_direct_connections: Option<usize>,
    /// Allow direct connections (clear text) on a server that requires TLS.
    direct_in_clear_text: Option<bool>,
    #[serde(default)]
    sinks: Vec<String>,
    #[serde(default)]
    feeds: Vec<FeedFile>,
    #[serde(default)]
    bindings: Vec<BindingFile>,
}

/// A `[[dmp.feeds]]` entry.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedFile {
    name: String,
    policy: Option<String>,
    high_water: Option<String>,
    low_water: Option<String>,
    consumer: Option<String>,
}

/// A `[[dmp.bindings]]` entry.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BindingFile {
    feed: String,
    sink: String,
    pattern: String,
}

fn duration(key: &str, text: &Option<String>, default: Duration) -> Result<Duration, CliError> {
    match text {
        None => Ok(default),
        Some(t) => humantime::parse_duration(t)
            .map_err(|e| CliError::Usage(format!("[dmp] {key} = {t:?}: {e} (e.g. \"5s\")"))),
    }
}

fn bytes(key: &str, text: &Option<String>) -> Result<Option<u64>, CliError> {
    text.as_deref()
        .map(|t| parse_size(t).map_err(|e| CliError::Usage(format!("[dmp] {key}: {e}"))))
        .transpose()
}

impl DmpFile {
    /// Whether the service runs: `--dmp`, `enabled = true`, or declarations (unless
    /// `enabled = false`).
    pub(crate) fn enabled(&self, flag: bool) -> bool {
        let declares =
            !self.sinks.is_empty() || !self.feeds.is_empty() || !self.bindings.is_empty();
        flag || self.enabled.unwrap_or(declares)
    }

    /// The service's settings; `require_tls` refuses direct connections (they run in clear
    /// text) unless `direct_in_clear_text` allows them.
    pub(crate) fn config(&self, require_tls: bool) -> Result<DmpConfig, CliError> {
        let d = DmpConfig::default();
        let mut c = DmpConfig {
            heartbeat: duration("heartbeat", &self.heartbeat, d.heartbeat)?,
            dead_after: duration("dead_after", &self.dead_after, d.dead_after)?,
            lease_ttl: duration("lease_ttl", &self.lease_ttl, d.lease_ttl)?,
            ..d
        };
        if c.heartbeat >= c.dead_after {
            return Err(CliError::Usage(format!(
                "[dmp] dead_after ({:?}) must be longer than heartbeat ({:?}): a live peer \
                 is heard at least once per heartbeat",
                c.dead_after, c.heartbeat
            )));
        }
        if let Some(high) = bytes("high_water", &self.high_water)? {
            c.high_water = high;
        }
        if let Some(max) = bytes("max_message_size", &self.max_message_size)? {
            c.max_message_size = u32::try_from(max)
                .ok()
                .filter(|&m| m >= 64)
                .ok_or_else(|| {
                    CliError::Usage("[dmp] max_message_size: 64 bytes to 4 GiB".into())
                })?;
        }
        if let Some(max) = bytes("max_queued", &self.max_queued)? {
            c.max_queued_bytes = max;
        }
        if let Some(max) = bytes("max_high_water", &self.max_high_water)? {
            c.max_high_water = max;
        }
        let l = &mut c.limits;
        l.handshakes = self.max_handshakes.unwrap_or(l.handshakes);
        l.entities_per_app = self.max_entities_per_client.unwrap_or(l.entities_per_app);
        l.leases_per_app = self.max_leases_per_client.unwrap_or(l.leases_per_app);
        l.sinks = self.max_sinks.unwrap_or(l.sinks);
        l.feeds = self.max_feeds.unwrap_or(l.feeds);
        l.bindings_per_sink = self.max_bindings_per_sink.unwrap_or(l.bindings_per_sink);
        l.leases = self.max_leases.unwrap_or(l.leases);
        l.direct_connections = self.max_direct_connections.unwrap_or(l.direct_connections);
        if require_tls && !self.direct_in_clear_text.unwrap_or(false) {
            c.refuse_direct = Some(
                "direct connections run in clear text and this server requires TLS (its \
                 operator may allow them with [dmp] direct_in_clear_text = true)"
                    .into(),
            );
        }
        c.sinks = self
            .sinks
            .iter()
            .map(|name| SinkDeclaration { name: name.clone() })
            .collect();
        for f in &self.feeds {
            let policy = match &f.policy {
                None => FlowPolicy::Block,
                Some(p) => p.parse().map_err(|_| {
                    CliError::Usage(format!(
                        "[[dmp.feeds]] {}: policy = {p:?}: one of block, drop-oldest, \
                         disconnect",
                        f.name
                    ))
                })?,
            };
            c.feeds.push(FeedDeclaration {
                name: f.name.clone(),
                policy,
                high_water: bytes("high_water", &f.high_water)?.unwrap_or(0),
                low_water: bytes("low_water", &f.low_water)?.unwrap_or(0),
                consumer: f.consumer.clone(),
            });
        }
        c.bindings = self
            .bindings
            .iter()
            .map(|b| BindingDeclaration {
                feed: b.feed.clone(),
                sink: b.sink.clone(),
                pattern: b.pattern.clone(),
            })
            .collect();
        c.validate()
            .map_err(|e| CliError::Usage(format!("[dmp]: {e}")))?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_declares_and_tunes_the_service() {
        let file: DmpFile = toml::from_str(
            r#"
            heartbeat = "2s"
            dead_after = "7s"
            high_water = "16M"
            sinks = ["orders"]
            [[feeds]]
            name = "eu"
            policy = "drop-oldest"
            high_water = "1M"
            consumer = "ops"
            [[bindings]]
            feed = "eu"
            sink = "orders"
            pattern = "eu.#"
            "#,
        )
        .unwrap();
        let c = file.config(false).unwrap();
        assert_eq!(c.heartbeat, Duration::from_secs(2));
        assert_eq!(c.high_water, 16 << 20);
        assert_eq!(c.feeds[0].policy, FlowPolicy::DropOldest);
        assert_eq!(c.feeds[0].consumer.as_deref(), Some("ops"));
        assert_eq!(c.bindings[0].pattern, "eu.#");
        assert!(c.refuse_direct.is_none());
        assert!(file.config(true).unwrap().refuse_direct.is_some());
    }

    #[test]
    fn a_bad_policy_or_heartbeat_is_refused_in_words() {
        let file: DmpFile = toml::from_str("[[feeds]]\nname = \"x\"\npolicy = \"fast\"").unwrap();
        let e = file.config(false).unwrap_err().to_string();
        assert!(e.contains("block, drop-oldest, disconnect"), "{e}");
        let file: DmpFile = toml::from_str("heartbeat = \"10s\"\ndead_after = \"5s\"").unwrap();
        let e = file.config(false).unwrap_err().to_string();
        assert!(e.contains("longer"), "{e}");
        let file: DmpFile = toml::from_str("max_queued = \"1K\"").unwrap();
        let e = file.config(false).unwrap_err().to_string();
        assert!(e.contains("max_queued"), "{e}");
    }
}
