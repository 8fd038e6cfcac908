//! `hawser consume HOST FEED`: a feed's messages to stdout, with a report of rates and
//! end-to-end latency.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hawser_dmp::client::DirectOptions;
use hawser_dmp::{DmpError, FlowPolicy, Wiring};
use hawser_wire::dmp::ResponseCode;

use super::report::MessagingReport;
use super::{Pacer, ServerArgs, parse_message_rate};
use crate::error::{CliError, io_err};
use crate::histogram::{new_latency_histogram, write_hgrm_file};
use crate::values::parse_size;

/// Consume a feed of a server's message service (DMP) and write its messages to stdout,
/// one per line (or --framed), then a report on stderr: messages/s and the end-to-end
/// latency from each message's timestamp (set by `hawser publish`).
///
/// The feed is declared
/// if it does not exist (it then goes when this consumer ends, unless --durable), and
/// bound to sinks with --bind. A feed has one consumer at a time.
#[derive(Debug, clap::Args)]
pub struct ConsumeArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The feed to read.
    pub feed: String,
    /// Route the messages of SINK whose routing key matches PATTERN to the feed
    /// (repeatable): an exact key, or dot-separated words where `*` matches one word and
    /// `#` any number (`orders.#`).
    #[arg(long = "bind", value_name = "SINK:PATTERN")]
    pub bind: Vec<String>,
    /// When this consumer is slower than the publishers: `block` them (nothing is lost),
    /// `drop-oldest` messages, or `disconnect` this consumer (for a feed declared here).
    #[arg(long, default_value = "block", value_parser = parse_policy)]
    pub policy: FlowPolicy,
    /// Queue bytes at which the policy acts (K, M, G suffixes) [default: the server's].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub high_water: Option<u64>,
    /// A feed declared here lives until deleted.
    #[arg(long)]
    pub durable: bool,
    /// Stop after N messages.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Stop once no message came for SECS.
    #[arg(long, value_name = "SECS")]
    pub idle: Option<f64>,
    /// Read at most this many messages per second (a slow consumer, to watch a policy).
    #[arg(long, value_name = "MSGS_PER_SEC", value_parser = parse_message_rate)]
    pub rate: Option<f64>,
    /// Write each message as a 4-byte big-endian length and its bytes, not as a line.
    #[arg(long)]
    pub framed: bool,
    /// Do not write the messages (measure only); the report then goes to stdout.
    #[arg(long)]
    pub discard: bool,
    /// The report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Write the end-to-end latency as an HdrHistogram percentile file (.hgrm).
    #[arg(long, value_name = "FILE")]
    pub histogram: Option<PathBuf>,
}

fn parse_policy(text: &str) -> Result<FlowPolicy, String> {
    text.parse()
        .map_err(|_| format!("{text:?}: one of block, drop-oldest, disconnect"))
}

/// Runs `hawser consume`.
pub fn consume(args: &ConsumeArgs) -> Result<MessagingReport, CliError> {
    let idle = args
        .idle
        .map(|s| {
            Duration::try_from_secs_f64(s).map_err(|_| CliError::Usage("--idle: seconds".into()))
        })
        .transpose()?;
    let client = args.server.connect()?;
    let wiring = Wiring::new(&client);
    let high = args.high_water.unwrap_or(0);
    match wiring.declare_feed(&args.feed, args.durable, args.policy, high, 0) {
        Ok(_) => {}
        // It exists with other settings (the server's configuration, a durable feed):
        // consume it as it is.
        Err(DmpError::Refused {
            code: ResponseCode::NotAllowed,
            text,
        }) if text.contains("exists") => tracing::info!("{text}"),
        Err(e) => return Err(e.into()),
    }
    for spec in &args.bind {
        let (sink, pattern) = spec.split_once(':').ok_or_else(|| {
            CliError::Usage(format!(
                "--bind {spec:?}: give SINK:PATTERN, e.g. orders:eu.#"
            ))
        })?;
        wiring
            .bind(&args.feed, sink, pattern)
            .map_err(|e| match e.code() {
                Some(ResponseCode::NotFound) => CliError::Usage(format!(
                    "--bind {spec}: {e}; a publisher declares it (hawser publish --declare), or \
                 the server's config ([dmp] sinks)"
                )),
                _ => CliError::from(e),
            })?;
    }
    let mut consumer = wiring.consumer(&args.feed, DirectOptions::default())?;
    let mut latency = new_latency_histogram();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let (mut messages, mut bytes) = (0u64, 0u64);
    let mut first: Option<Instant> = None;
    let mut last = Instant::now();
    let mut pacer = Pacer::new(args.rate);
    let mut closed_by_server = false;
    let write_error = |e: std::io::Error| CliError::Usage(format!("writing stdout: {e}"));
    while args.count.is_none_or(|c| messages < c) {
        if !pacer.due() {
            out.flush().map_err(write_error)?;
            pacer.wait();
        }
        let deadline = idle.map(|i| Instant::now() + i);
        let delivery = match consumer.recv_until(deadline) {
            Ok(Some(d)) => d,
            Ok(None) => {
                closed_by_server = true;
                break;
            }
            Err(DmpError::Io(e)) if e.kind() == std::io::ErrorKind::TimedOut => break,
            Err(e) if e.is_skipped_message() => {
                tracing::warn!("{e}: a publisher sent an envelope its size field does not hold");
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        pacer.tick();
        last = Instant::now();
        first.get_or_insert(last);
        messages += 1;
        let body = delivery.envelope.body;
        bytes += body.len() as u64;
        if let Some(age) = delivery.age_micros() {
            let _ = latency.record(age.max(1) * 1000);
        }
        if !args.discard {
            if args.framed {
                out.write_all(&(body.len() as u32).to_be_bytes())
                    .map_err(write_error)?;
                out.write_all(body).map_err(write_error)?;
            } else {
                out.write_all(body).map_err(write_error)?;
                out.write_all(b"\n").map_err(write_error)?;
            }
        }
    }
    out.flush().map_err(write_error)?;
    drop(out);
    client.close();
    let elapsed = first.map_or(Duration::ZERO, |f| last - f);
    let malformed = consumer.malformed();
    let report = MessagingReport::new(
        "consume",
        &args.feed,
        messages,
        bytes,
        elapsed,
        Some(&latency),
    )
    .with_malformed(malformed);
    consumer.close();
    if let Some(path) = &args.histogram {
        write_hgrm_file(&latency, path).map_err(io_err(path))?;
    }
    let text = if args.json {
        serde_json::to_string(&report).expect("plain data")
    } else {
        format!("hawser {}", report.text())
    };
    if args.discard {
        println!("{text}");
    } else {
        eprintln!("{text}");
    }
    if closed_by_server {
        return Err(CliError::Usage(format!(
            "the server closed feed \"{}\"'s connection after {messages} messages: the feed \
             was deleted, or this consumer was disconnected as too slow (its policy)",
            args.feed
        )));
    }
    Ok(report)
}
