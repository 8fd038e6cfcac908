//! `hawser stats HOST[:PORT]`: a live view of a server's nexuses and connections, read
//! from its control plane (`hawser.stats`): a table redrawn in place on a terminal, one
//! JSON object per line otherwise.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use hawser_wire::ddf::{Node, Value};

use crate::control_call::{call_endpoint, to_json};
use crate::error::CliError;
use crate::messaging::ServerArgs;
use crate::serve::control::STATS;

/// Watch a server's nexuses and connections: requests, bytes, retries, replays from the
/// reply cache, slots in use, connection round trips and per-exchange latency.
///
/// On a
/// terminal a table is redrawn every --watch seconds (as top does) until interrupted;
/// otherwise (or with --json) each reading is one JSON line, once unless --watch is given.
#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Read again every SECS seconds [default: 2 on a terminal; once otherwise].
    #[arg(long, value_name = "SECS")]
    pub watch: Option<f64>,
    /// Stop after N readings.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// JSON lines even on a terminal.
    #[arg(long)]
    pub json: bool,
}

fn long(node: &Node, name: &str) -> i64 {
    match node.member(name).map(|m| &m.value) {
        Some(Value::Long(v)) => *v,
        Some(Value::Int(v)) => i64::from(*v),
        _ => 0,
    }
}

fn text<'a>(node: &'a Node, name: &str) -> &'a str {
    node.member(name).and_then(Node::as_str).unwrap_or("-")
}

fn children<'a>(node: &'a Node, name: &str) -> &'a [Node] {
    node.member(name)
        .and_then(|m| m.value.children())
        .unwrap_or(&[])
}

/// Bytes in decimal units, as the job reports write them.
fn bytes(n: i64) -> String {
    let n = n as f64;
    match n {
        n if n >= 1e9 => format!("{:.1} GB", n / 1e9),
        n if n >= 1e6 => format!("{:.1} MB", n / 1e6),
        n if n >= 1e3 => format!("{:.1} kB", n / 1e3),
        n => format!("{n} B"),
    }
}

fn micros(ns: i64) -> String {
    format!("{:.0} µs", ns as f64 / 1e3)
}

/// The table of one reading.
pub fn table(stats: &Node) -> String {
    let mut out = format!(
        "{} nexuses, {} connections, up {} s\n\n{:<14} {:<16} {:<16} {:>5} {:>5} {:>9} {:>10} {:>10} {:>7} {:>7} {:>5}\n",
        long(stats, "nexus_count"),
        long(stats, "connection_count"),
        long(stats, "uptime_s"),
        "NEXUS",
        "IDENTITY",
        "PEER",
        "SHARD",
        "CONNS",
        "REQUESTS",
        "IN",
        "OUT",
        "RETRIES",
        "REPLAYS",
        "SLOTS",
    );
    for nexus in children(stats, "nexuses") {
        let id = text(nexus, "nexus");
        let short = id.strip_prefix("nexus-").unwrap_or(id);
        let connections = children(nexus, "connections");
        out.push_str(&format!(
            "{:<14} {:<16} {:<16} {:>5} {:>5} {:>9} {:>10} {:>10} {:>7} {:>7} {:>5}\n",
            &short[..short.len().min(12)],
            text(nexus, "identity"),
            text(nexus, "peer"),
            long(nexus, "shard"),
            connections.len(),
            long(nexus, "requests"),
            bytes(long(nexus, "bytes_in")),
            bytes(long(nexus, "bytes_out")),
            long(nexus, "retries"),
            long(nexus, "replays"),
            long(nexus, "slots_in_use"),
        ));
        for (i, c) in connections.iter().enumerate() {
            let rtt = c.member("rtt");
            out.push_str(&format!(
                "  conn {i:<3} in {:>10} out {:>10} rtt p50 {:>9} p99 {:>9}\n",
                bytes(long(c, "bytes_in")),
                bytes(long(c, "bytes_out")),
                micros(rtt.map_or(0, |r| long(r, "p50_ns"))),
                micros(rtt.map_or(0, |r| long(r, "p99_ns"))),
            ));
        }
        for exchange in children(nexus, "latency") {
            out.push_str(&format!(
                "  exchange {:<10} {:>8} calls  p50 {:>9} p99 {:>9} max {:>9}\n",
                exchange.name.as_deref().unwrap_or("?"),
                long(exchange, "count"),
                micros(long(exchange, "p50_ns")),
                micros(long(exchange, "p99_ns")),
                micros(long(exchange, "max_ns")),
            ));
        }
    }
    out
}

/// `hawser stats`.
pub fn stats(args: &StatsArgs) -> Result<(), CliError> {
    let terminal = std::io::stdout().is_terminal() && !args.json;
    let every = match args.watch {
        Some(secs) if secs.is_finite() && secs >= 0.1 => Some(Duration::from_secs_f64(secs)),
        Some(secs) => {
            return Err(CliError::Usage(format!(
                "--watch {secs}: give at least 0.1 seconds"
            )));
        }
        None if terminal => Some(Duration::from_secs(2)),
        None => None,
    };
    let client = args.server.connect()?;
    let mut readings = 0u64;
    let result = loop {
        let reading = match call_endpoint(&client, STATS, Node::unnamed(Value::Struct(vec![]))) {
            Ok(r) => r,
            Err(e) => break Err(e),
        };
        readings += 1;
        let mut out = std::io::stdout().lock();
        let written = if terminal {
            // Home the cursor and clear the screen, then the table.
            write!(out, "\x1b[H\x1b[2J{}", table(&reading))
        } else {
            writeln!(out, "{}", to_json(&reading))
        };
        if let Err(e) = written.and_then(|()| out.flush()) {
            break Err(CliError::Usage(format!("writing stdout: {e}")));
        }
        drop(out);
        match every {
            Some(every) if args.count.is_none_or(|n| readings < n) => std::thread::sleep(every),
            _ => break Ok(()),
        }
    };
    client.close();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_shows_each_nexus_and_its_connections() {
        let stats = Node::named(
            STATS,
            Value::Struct(vec![
                Node::named("nexus_count", Value::Long(1)),
                Node::named("connection_count", Value::Long(1)),
                Node::named(
                    "nexuses",
                    Value::List(vec![Node::unnamed(Value::Struct(vec![
                        Node::named("nexus", Value::String(format!("nexus-{}", "ab".repeat(16)))),
                        Node::named("identity", Value::String("alice".into())),
                        Node::named("requests", Value::Long(42)),
                        Node::named("bytes_in", Value::Long(2_500_000)),
                        Node::named(
                            "connections",
                            Value::List(vec![Node::unnamed(Value::Struct(vec![Node::named(
                                "bytes_in",
                                Value::Long(1_000),
                            )]))]),
                        ),
                    ]))]),
                ),
            ]),
        );
        let table = table(&stats);
        assert!(table.contains("1 nexuses, 1 connections"), "{table}");
        assert!(
            table.contains("abababababab") && table.contains("alice"),
            "{table}"
        );
        assert!(table.contains("2.5 MB"), "{table}");
        assert!(table.contains("conn 0"), "{table}");
    }
}
