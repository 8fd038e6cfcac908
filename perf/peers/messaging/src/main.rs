//! `messaging-peer`: the baselines of hawser's `messaging` perf scenario.
//!
//! ```text
//! messaging-peer --system zmq|rabbitmq|nats --url URL --size BYTES --publishers N \
//!     --duration SECS [--rate MSGS_PER_SEC_TOTAL] [--warmup SECS]
//! ```
//!
//! Runs N publishers (one thread and one connection each) and one consumer in this
//! process. Every message is `--size` bytes: its first 8 bytes are the send time
//! (nanoseconds since the process's `Instant` epoch, CLOCK_MONOTONIC), the next 8 the
//! publisher's sequence number, little-endian. The consumer counts the messages it
//! receives in the measured window (after `--warmup`, for `--duration`) and records their
//! end-to-end latency (receive time − send time) in an HdrHistogram. Without `--rate` the
//! publishers send as fast as the system takes messages (the consumer's rate is then the
//! maximum throughput); with `--rate` they share that many messages per second evenly
//! (each `rate / N`, offset from one another), on an open-loop schedule.
//!
//! It prints one JSON line on stdout:
//!
//! ```text
//! {"system":"zmq","size":64,"publishers":1,"rate":null,"seconds":5.0,"messages":N,
//!  "messages_per_sec":X,"latency_us":{"p50":..,"p99":..,"p999":..,"max":..}}
//! ```
//!
//! and a line of diagnostics on stderr (messages the publishers stamped in the window,
//! against those received). URLs: zmq `tcp://127.0.0.1:PORT` (the consumer's PULL socket
//! binds it), nats `nats://127.0.0.1:PORT`, rabbitmq `amqp://guest:guest@127.0.0.1:PORT/%2f`.

mod measure;
mod systems;

use std::io::Write as _;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, ValueEnum};
use serde_json::{Value, json};

use measure::{Feed, Pacer, Recorder, STAMP_BYTES, Window, now_ns};
use systems::Connected;

/// How long after the window the publishers have to stop and report.
const PUBLISHERS_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum System {
    /// ZeroMQ PUSH/PULL, no broker.
    Zmq,
    /// RabbitMQ, AMQP 0-9-1: a direct exchange bound to one queue.
    Rabbitmq,
    /// Core NATS publish/subscribe.
    Nats,
}

impl System {
    fn name(self) -> &'static str {
        match self {
            System::Zmq => "zmq",
            System::Rabbitmq => "rabbitmq",
            System::Nats => "nats",
        }
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "messaging-peer",
    about = "Publishers and one consumer of ZeroMQ, RabbitMQ or NATS in one process: \
             the consumer's rate and end-to-end latency, as one JSON line"
)]
struct Args {
    /// The message system.
    #[arg(long, value_enum)]
    system: System,
    /// Where: tcp://HOST:PORT (zmq, bound by the consumer), nats://HOST:PORT,
    /// amqp://USER:PASSWORD@HOST:PORT/VHOST.
    #[arg(long)]
    url: String,
    /// Message size in bytes (at least 16: send time and sequence number).
    #[arg(long)]
    size: usize,
    /// Publishers, one thread and one connection each.
    #[arg(long, default_value_t = 1)]
    publishers: usize,
    /// Seconds measured (after the warm-up).
    #[arg(long)]
    duration: f64,
    /// Total messages per second, shared evenly by the publishers (default: as fast as
    /// they can).
    #[arg(long)]
    rate: Option<f64>,
    /// Seconds of sending before the measured window opens.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
}

fn seconds(value: f64, what: &str) -> Result<Duration> {
    Duration::try_from_secs_f64(value).with_context(|| format!("{what} {value} is not a duration"))
}

/// What the publishers reported: messages stamped in the window, and errors.
#[derive(Debug, Default)]
struct Published {
    sent_in_window: u64,
    reported: usize,
    errors: Vec<String>,
}

fn run(args: &Args) -> Result<(Value, String)> {
    if args.size < STAMP_BYTES {
        bail!("--size must be at least {STAMP_BYTES} bytes (send time and sequence number)");
    }
    if args.publishers == 0 {
        bail!("--publishers must be at least 1");
    }
    if args
        .rate
        .is_some_and(|rate| !(rate > 0.0 && rate.is_finite()))
    {
        bail!("--rate must be a positive number of messages per second");
    }
    let duration = seconds(args.duration, "--duration")?;
    if duration.is_zero() {
        bail!("--duration must be positive");
    }
    let warmup = seconds(args.warmup, "--warmup")?;
    now_ns(); // the epoch

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let Connected {
        mut consumer,
        publishers,
    } = match args.system {
        System::Zmq => systems::zmq::connect(&args.url, args.publishers, args.size)?,
        System::Nats => systems::nats::connect(runtime.handle(), &args.url, args.publishers)?,
        System::Rabbitmq => {
            systems::rabbitmq::connect(runtime.handle(), &args.url, args.publishers)?
        }
    };

    let origin = now_ns();
    let window = Window::after(origin, warmup, duration);
    // The threads run inside the runtime's context: the AMQP client's connections and
    // channels spawn their closing on the runtime when dropped.
    let handle = runtime.handle().clone();
    let consumer_thread = std::thread::Builder::new()
        .name("consumer".into())
        .spawn(move || {
            let _runtime = handle.enter();
            let mut recorder = Recorder::new(window);
            let result = consumer.run(&mut recorder);
            drop(consumer);
            (recorder, result)
        })?;
    let (done, reports) = mpsc::channel();
    for (index, mut publisher) in publishers.into_iter().enumerate() {
        let pacer = match args.rate {
            Some(rate) => Pacer::paced(rate, args.publishers, index, origin),
            None => Pacer::unpaced(),
        };
        let done = done.clone();
        let size = args.size;
        let handle = runtime.handle().clone();
        std::thread::Builder::new()
            .name(format!("publisher-{index}"))
            .spawn(move || {
                let _runtime = handle.enter();
                let mut feed = Feed::new(pacer, window);
                let result = publisher.run(&mut feed, size);
                let _ = done.send((feed.sent_in_window, result.err()));
                drop(publisher);
            })?;
    }
    drop(done);

    let (recorder, consumed) = consumer_thread
        .join()
        .map_err(|_| anyhow::anyhow!("the consumer thread panicked"))?;
    let mut published = Published::default();
    let deadline = Instant::now() + PUBLISHERS_GRACE;
    while published.reported < args.publishers {
        let left = deadline.saturating_duration_since(Instant::now());
        match reports.recv_timeout(left) {
            Ok((sent, error)) => {
                published.reported += 1;
                published.sent_in_window += sent;
                published.errors.extend(error.map(|e| format!("{e:#}")));
            }
            Err(_) => break,
        }
    }
    consumed.context("the consumer failed")?;
    if let Some(error) = published.errors.first() {
        bail!("a publisher failed: {error}");
    }
    if recorder.messages == 0 {
        bail!(
            "the consumer received no message in the {} s window",
            args.duration
        );
    }
    let diagnostics = format!(
        "messaging-peer {}: received {} messages in the window, the publishers stamped {} in \
         it ({} of {} publishers reported{}){}",
        args.system.name(),
        recorder.messages,
        published.sent_in_window,
        published.reported,
        args.publishers,
        if published.reported < args.publishers {
            ", the others were still blocked"
        } else {
            ""
        },
        if recorder.malformed > 0 {
            format!(
                ", {} messages too short to carry a stamp",
                recorder.malformed
            )
        } else {
            String::new()
        }
    );
    Ok((report(args, &recorder), diagnostics))
}

/// The JSON line.
fn report(args: &Args, recorder: &Recorder) -> Value {
    let histogram = &recorder.latency;
    let micros = |ns: u64| ns as f64 / 1e3;
    json!({
        "system": args.system.name(),
        "size": args.size,
        "publishers": args.publishers,
        "rate": args.rate,
        "seconds": args.duration,
        "messages": recorder.messages,
        "messages_per_sec": recorder.messages as f64 / args.duration,
        "latency_us": {
            "p50": micros(histogram.value_at_quantile(0.5)),
            "p99": micros(histogram.value_at_quantile(0.99)),
            "p999": micros(histogram.value_at_quantile(0.999)),
            "max": micros(histogram.max()),
        },
    })
}

fn main() {
    let args = Args::parse();
    // The process exits at once after printing: publishers still blocked in a full
    // client buffer and the clients' connections are not torn down one by one.
    match run(&args) {
        Ok((line, diagnostics)) => {
            eprintln!("{diagnostics}");
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{line}");
            let _ = stdout.flush();
            std::process::exit(0);
        }
        Err(error) => {
            eprintln!("messaging-peer {}: {error:#}", args.system.name());
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_line_has_the_contract_shape() {
        let args = Args::parse_from([
            "messaging-peer",
            "--system",
            "zmq",
            "--url",
            "tcp://127.0.0.1:1",
            "--size",
            "64",
            "--duration",
            "5",
        ]);
        let mut recorder = Recorder::new(Window {
            start: 0,
            end: u64::MAX,
        });
        let mut body = [0u8; 64];
        body[..8].copy_from_slice(&1_000u64.to_le_bytes());
        recorder.record_at(&body, 3_000);
        let line = report(&args, &recorder).to_string();
        assert!(
            line.starts_with(
                r#"{"system":"zmq","size":64,"publishers":1,"rate":null,"seconds":5.0,"messages":1,"messages_per_sec":0.2,"latency_us":{"p50":2.0,"#
            ),
            "{line}"
        );
        assert!(line.contains(r#""p999":2.0,"max":2.0}}"#), "{line}");
    }
}
