//! The server's control plane: DDF remoting (the seed's endpoint convention) over one
//! exchange of the nexus. A request is a DDF message whose root node names the endpoint
//! and holds the operation's input; the answer is the operation's output object, or a
//! remote exception (the DDF `exception` structure) when it fails.
//!
//! Endpoints:
//! - `hawser.stats`: the nexuses, busiest first (input `limit`, 200 by default, at most
//!   1000), and their connections (counters, slots in use, RTT and per-exchange latency
//!   percentiles), with the counts of all;
//! - `hawser.jobs`: running replication jobs and DTP transfers;
//! - `hawser.jobs.cancel`: stops one (input `nexus` for a replication job, or `transfer`
//!   for a DTP session id).
//!
//! Who may call: the identities given with `--operator`; with none given, callers on this
//! host (loopback or a local socket). Anyone else gets `hawser.control.Denied`.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use hawser_dtp::service::DtpService;
use hawser_replicate::service::ReplicationJobs;
use hawser_runtime::{
    ExchangeId, HandlerError, NexusDetail, NexusId, Peer, RemoteException, RequestContext, Service,
    StatsHandle,
};
use hawser_wire::ddf::{self, Node, Value};
use hdrhistogram::Histogram;

/// Nexuses `hawser.stats` lists unless its input's `limit` says otherwise, and at most.
const DEFAULT_LISTED: usize = 200;
const MAX_LISTED: usize = 1000;

/// The control plane's exchange: "DDF" and 1.
pub const CONTROL_EXCHANGE: ExchangeId = ExchangeId(0x4444_4601);
/// Endpoint names.
pub const STATS: &str = "hawser.stats";
/// Running jobs.
pub const JOBS: &str = "hawser.jobs";
/// Cancelling one.
pub const CANCEL: &str = "hawser.jobs.cancel";

/// What the control plane reads and acts on; the server's statistics arrive once it is
/// built.
#[derive(Debug, Clone)]
pub struct ControlPlane {
    stats: Arc<OnceLock<StatsHandle>>,
    replication: Option<ReplicationJobs>,
    transfers: Option<DtpService>,
    operators: Arc<HashSet<String>>,
    started: std::time::Instant,
}

fn exception(kind: &str, message: impl Into<String>) -> HandlerError {
    HandlerError::Exception(RemoteException::new(
        format!("hawser.control.{kind}"),
        message,
    ))
}

fn long(name: &str, v: u64) -> Node {
    Node::named(name, Value::Long(i64::try_from(v).unwrap_or(i64::MAX)))
}

fn string(name: &str, v: impl Into<String>) -> Node {
    Node::named(name, Value::String(v.into()))
}

/// Count and percentiles (nanoseconds) of a histogram.
fn percentiles(name: &str, h: &Histogram<u64>) -> Node {
    Node::named(
        name,
        Value::Struct(vec![
            long("count", h.len()),
            long("p50_ns", h.value_at_quantile(0.5)),
            long("p99_ns", h.value_at_quantile(0.99)),
            long("max_ns", h.max()),
        ]),
    )
}

impl ControlPlane {
    /// A control plane over the replication jobs and DTP transfers given.
    pub fn new(
        replication: Option<ReplicationJobs>,
        transfers: Option<DtpService>,
        operators: Vec<String>,
    ) -> Self {
        ControlPlane {
            stats: Arc::default(),
            replication,
            transfers,
            operators: Arc::new(operators.into_iter().collect()),
            started: std::time::Instant::now(),
        }
    }

    /// Gives the plane the server's statistics (once the server is built).
    pub fn attach(&self, stats: StatsHandle) {
        let _ = self.stats.set(stats);
    }

    /// The runtime service to add to the server.
    pub fn service(&self) -> Service {
        let plane = self.clone();
        Service::new("control").blocking_handler(
            CONTROL_EXCHANGE,
            "control.ddf",
            move |ctx, body| plane.call(ctx, &body),
        )
    }

    fn may_call(&self, ctx: &RequestContext) -> bool {
        let Some(owner) = ctx.owner() else {
            return false;
        };
        if !self.operators.is_empty() {
            return !owner.anonymous && self.operators.contains(&*owner.identity);
        }
        match owner.peer.canonical() {
            Peer::Inet(IpAddr::V4(ip)) => ip.is_loopback(),
            Peer::Inet(IpAddr::V6(ip)) => ip.is_loopback(),
            Peer::Local(_) => true,
            Peer::Unknown => false,
        }
    }

    fn call(&self, ctx: &RequestContext, body: &[u8]) -> Result<Bytes, HandlerError> {
        if !self.may_call(ctx) {
            tracing::warn!(
                identity = ctx.owner().map_or("-", |o| &*o.identity),
                "control plane call refused: not an operator"
            );
            return Err(exception(
                "Denied",
                "the control plane answers the server's --operator identities (or, without any, callers on its host)",
            ));
        }
        let input = ddf::decode(body).map_err(|e| exception("Malformed", e.to_string()))?;
        let endpoint = input.name.as_deref().unwrap_or("");
        let output = match endpoint {
            STATS => self.stats(&input)?,
            JOBS => self.jobs(),
            CANCEL => self.cancel(&input)?,
            other => {
                return Err(exception(
                    "NoSuchEndpoint",
                    format!("no endpoint {other:?}; there are {STATS}, {JOBS} and {CANCEL}"),
                ));
            }
        };
        Ok(Bytes::from(output.to_text()))
    }

    fn stats(&self, input: &Node) -> Result<Node, HandlerError> {
        let limit = match input.member("limit").map(as_integer) {
            None => DEFAULT_LISTED,
            Some(Some(n)) if (1..=MAX_LISTED as i64).contains(&n) => n as usize,
            Some(_) => {
                return Err(exception(
                    "Malformed",
                    format!("limit is a number of nexuses from 1 to {MAX_LISTED}"),
                ));
            }
        };
        let report = self.stats.get().map(StatsHandle::stats).unwrap_or_default();
        let by_id: HashMap<_, _> = report.nexuses.iter().map(|(n, s)| (*n, s)).collect();
        // The busiest first (bytes both ways): the answer lists at most `limit`.
        let mut details: Vec<_> = report.details.iter().collect();
        let moved = |d: &NexusDetail| {
            by_id
                .get(&d.nexus)
                .map_or(0, |s| s.bytes_received + s.bytes_sent)
        };
        details.sort_by_key(|d| std::cmp::Reverse(moved(d)));
        let nexuses = details
            .into_iter()
            .take(limit)
            .map(|d| nexus_node(d, by_id.get(&d.nexus).copied()))
            .collect::<Vec<_>>();
        let listed = nexuses.len() as u64;
        Ok(Node::named(
            STATS,
            Value::Struct(vec![
                long("uptime_s", self.started.elapsed().as_secs()),
                long("nexus_count", report.nexuses.len() as u64),
                long("connection_count", report.connections.len() as u64),
                long("listed", listed),
                Node::named("nexuses", Value::List(nexuses)),
            ]),
        ))
    }

    fn jobs(&self) -> Node {
        let replications = self
            .replication
            .as_ref()
            .map(ReplicationJobs::list)
            .unwrap_or_default()
            .into_iter()
            .map(|(nexus, idle)| {
                Node::unnamed(Value::Struct(vec![
                    string("nexus", nexus.to_string()),
                    long("idle_ms", idle.as_millis() as u64),
                ]))
            })
            .collect();
        let transfers = self
            .transfers
            .as_ref()
            .map(DtpService::transfers)
            .unwrap_or_default()
            .into_iter()
            .map(|t| {
                Node::unnamed(Value::Struct(vec![
                    long("transfer", u64::from(t.session_id)),
                    string("direction", t.direction),
                    string("name", t.name),
                    long("total", t.total),
                    long("delivered", t.delivered),
                    long("rate", t.rate),
                    long("elapsed_ms", t.elapsed.as_millis() as u64),
                    string("nexus", NexusId(t.nexus).to_string()),
                ]))
            })
            .collect();
        Node::named(
            JOBS,
            Value::Struct(vec![
                Node::named("replications", Value::List(replications)),
                Node::named("transfers", Value::List(transfers)),
            ]),
        )
    }

    fn cancel(&self, input: &Node) -> Result<Node, HandlerError> {
        let transfer = input.member("transfer").and_then(as_integer);
        let nexus = input.member("nexus").and_then(Node::as_str);
        let cancelled = match (transfer, nexus) {
            (Some(id), None) => {
                let id = u32::try_from(id)
                    .map_err(|_| exception("Malformed", "transfer is a 32-bit session id"))?;
                self.transfers.as_ref().is_some_and(|t| t.cancel(id))
            }
            (None, Some(text)) => {
                let nexus = parse_nexus(text)
                    .ok_or_else(|| exception("Malformed", format!("{text:?} is not a nexus id")))?;
                self.replication.as_ref().is_some_and(|r| r.cancel(nexus))
            }
            _ => {
                return Err(exception(
                    "Malformed",
                    "give either `transfer` (a DTP session id) or `nexus` (a replication job's nexus)",
                ));
            }
        };
        if !cancelled {
            return Err(exception("NotFound", "no such job is running"));
        }
        Ok(Node::named(
            CANCEL,
            Value::Struct(vec![long("cancelled", 1)]),
        ))
    }
}

/// An int or long member's value.
fn as_integer(node: &Node) -> Option<i64> {
    match node.value {
        Value::Int(v) => Some(i64::from(v)),
        Value::Long(v) => Some(v),
        _ => None,
    }
}

/// A nexus id as [`NexusId`]'s `Display` writes it (`nexus-` and 32 hex digits), or the
/// 32 digits alone.
fn parse_nexus(text: &str) -> Option<NexusId> {
    let digits = text.strip_prefix("nexus-").unwrap_or(text);
    (digits.len() == 32 && digits.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| u128::from_str_radix(digits, 16).ok())
        .flatten()
        .map(NexusId)
}

fn nexus_node(d: &NexusDetail, stats: Option<&hawser_runtime::NexusStats>) -> Node {
    let mut members = vec![
        string("nexus", d.nexus.to_string()),
        string("identity", d.identity.clone()),
        Node::named("anonymous", Value::Int(i32::from(d.anonymous))),
        string("peer", d.peer.clone()),
        long("shard", d.shard as u64),
        long("slots_in_use", d.footprint.executing as u64),
        long("outstanding", d.footprint.outstanding as u64),
        long("cached_bytes", d.footprint.cached_bytes as u64),
        long("buffered_bytes", d.footprint.link_buffers as u64),
    ];
    if let Some(s) = stats {
        members.extend([
            long("requests", s.requests_executed),
            long("requests_sent", s.requests_sent),
            long("bytes_in", s.bytes_received),
            long("bytes_out", s.bytes_sent),
            long("retries", s.retries),
            long("replays", s.replays),
            long("connections_lost", s.connections_lost),
        ]);
        let mut exchanges: Vec<_> = s.latency.iter().collect();
        exchanges.sort_by_key(|(e, _)| e.0);
        let latency = exchanges
            .into_iter()
            .map(|(e, h)| percentiles(&format!("{:#010x}", e.0), h))
            .collect();
        members.push(Node::named("latency", Value::List(latency)));
    }
    let connections = d
        .connections
        .iter()
        .map(|c| {
            Node::unnamed(Value::Struct(vec![
                long("bytes_in", c.bytes_in),
                long("bytes_out", c.bytes_out),
                long("frames_in", c.frames_in),
                long("frames_out", c.frames_out),
                percentiles("rtt", &c.rtt),
            ]))
        })
        .collect();
    members.push(Node::named("connections", Value::List(connections)));
    Node::unnamed(Value::Struct(members))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nexus_ids_parse_from_their_display() {
        let id = NexusId(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
        assert_eq!(parse_nexus(&id.to_string()), Some(id));
        assert_eq!(parse_nexus("12"), None);
        assert_eq!(parse_nexus(&"g".repeat(32)), None);
    }
}
