//! `hawser publish HOST SINK`: stdin as messages to a sink, one per line or framed.

use std::io::BufRead;
use std::time::Instant;

use hawser_dmp::client::DirectOptions;
use hawser_dmp::{DmpError, Wiring};
use hawser_wire::dmp::ResponseCode;

use super::report::MessagingReport;
use super::{Pacer, ServerArgs, parse_message_rate};
use crate::error::CliError;

/// Largest message `--framed` reads (the server's default limit is 1 MiB).
const MAX_FRAMED: u32 = 16 << 20;

/// Publish stdin to a sink of a server's message service (DMP): one message per line
/// (without its line ending), or with --framed each a 4-byte big-endian length and that
/// many bytes.
///
/// Each message carries its send time (the timestamp property, in
/// microseconds), from which `hawser consume` reports end-to-end latency. A report
/// follows on stderr (on stdout with --json).
#[derive(Debug, clap::Args)]
pub struct PublishArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The sink to write to.
    pub sink: String,
    /// The routing key of every message (bindings route by it: an exact key, or
    /// patterns of dot-separated words where `*` is one word and `#` any number).
    #[arg(long, default_value = "", value_name = "KEY")]
    pub routing_key: String,
    /// Stdin holds length-prefixed messages (4-byte big-endian length, then the bytes)
    /// instead of lines.
    #[arg(long)]
    pub framed: bool,
    /// Stop after N messages.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Send at most this many messages per second.
    #[arg(long, value_name = "MSGS_PER_SEC", value_parser = parse_message_rate)]
    pub rate: Option<f64>,
    /// Declare the sink first (it then goes when this publisher ends, unless --durable).
    #[arg(long)]
    pub declare: bool,
    /// With --declare: the sink lives until deleted.
    #[arg(long, requires = "declare")]
    pub durable: bool,
    /// The report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Reads the next message of stdin into `buf`; false at the end.
fn next_message(
    input: &mut impl BufRead,
    framed: bool,
    buf: &mut Vec<u8>,
) -> Result<bool, CliError> {
    buf.clear();
    let stdin_error = |e: std::io::Error| CliError::Usage(format!("reading stdin: {e}"));
    if framed {
        let mut len = [0u8; 4];
        match input.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
            Err(e) => return Err(stdin_error(e)),
        }
        let len = u32::from_be_bytes(len);
        if len > MAX_FRAMED {
            return Err(CliError::Usage(format!(
                "stdin: a framed message of {len} bytes (the length prefix is 4 bytes, big \
                 endian; at most {MAX_FRAMED})"
            )));
        }
        buf.resize(len as usize, 0);
        input.read_exact(buf).map_err(|e| {
            CliError::Usage(format!(
                "stdin ended inside a framed message of {len} bytes: {e}"
            ))
        })?;
        return Ok(true);
    }
    if input.read_until(b'\n', buf).map_err(stdin_error)? == 0 {
        return Ok(false);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    }
    Ok(true)
}

/// Runs `hawser publish`.
pub fn publish(args: &PublishArgs) -> Result<MessagingReport, CliError> {
    let client = args.server.connect()?;
    let wiring = Wiring::new(&client);
    if args.declare {
        wiring.declare_sink(&args.sink, args.durable)?;
    }
    let mut publisher = wiring
        .publisher(&args.sink, DirectOptions::default())
        .map_err(|e| match e.code() {
            Some(ResponseCode::NotFound) => CliError::Usage(format!(
                "{e}; declare it with --declare, or in the server's config ([dmp] sinks)"
            )),
            _ => CliError::from(e),
        })?;
    let stdin = std::io::stdin();
    let mut input = std::io::BufReader::with_capacity(1 << 16, stdin.lock());
    let mut pacer = Pacer::new(args.rate);
    let mut buf = Vec::new();
    let (mut messages, mut bytes) = (0u64, 0u64);
    let mut first: Option<Instant> = None;
    loop {
        if args.count.is_some_and(|c| messages >= c) {
            break;
        }
        // Input that is not there yet may be long in coming (lines typed, a log
        // followed): what is batched goes now, not when 32 KiB are.
        if input.buffer().is_empty() {
            publisher.flush()?;
        }
        if !next_message(&mut input, args.framed, &mut buf)? {
            break;
        }
        if !pacer.due() {
            publisher.flush()?;
            pacer.wait();
        }
        first.get_or_insert_with(Instant::now);
        publisher.publish(args.routing_key.as_bytes(), &buf)?;
        pacer.tick();
        messages += 1;
        bytes += buf.len() as u64;
    }
    let close: Result<(), DmpError> = publisher.close();
    close?;
    let elapsed = first.map_or_else(Default::default, |t| t.elapsed());
    client.close();
    let report = MessagingReport::new("publish", &args.sink, messages, bytes, elapsed, None);
    if args.json {
        println!("{}", serde_json::to_string(&report).expect("plain data"));
    } else {
        eprintln!("hawser {}", report.text());
    }
    Ok(report)
}
