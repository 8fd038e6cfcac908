//! `hawser bench --mode dmp`: messages through a DMP sink and feed on loopback, from
//! `--publishers` publishing threads to one consumer, as fast as they go or at `--rate`
//! messages per second in total; messages/s and end-to-end latency (from each message's
//! timestamp property to its arrival at the consumer).

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hawser_dmp::client::DirectOptions;
use hawser_dmp::{DmpConfig, DmpError, DmpService, FlowPolicy, Publisher, Wiring};
use hawser_runtime::{Client, ClientOptions, ServerBuilder};
use serde::Serialize;

use super::BenchArgs;
use crate::histogram::{new_latency_histogram, write_hgrm_file, write_plot_file};
use crate::messaging::Pacer;

/// Time before the measured window (connections warm, queues in their steady state).
const WARM_UP: Duration = Duration::from_millis(500);
/// Unpaced, one message in this many has its latency recorded (each costs a clock read).
const SAMPLE_EVERY: u64 = 8;

/// Latency percentiles, microseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LatencyUs {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

/// The report (the shape the `messaging` perf scenario reads from every system).
#[derive(Debug, Clone, Serialize)]
pub struct DmpBenchReport {
    /// Always `hawser`.
    pub system: &'static str,
    /// Body bytes of each message.
    pub size: usize,
    /// Publishing threads.
    pub publishers: usize,
    /// Messages per second asked for in total (`None`: as fast as they go).
    pub rate: Option<f64>,
    /// The measured window.
    pub seconds: f64,
    /// Messages the consumer received in it.
    pub messages: u64,
    /// Their rate.
    pub messages_per_sec: f64,
    /// End-to-end latency in the window.
    pub latency_us: LatencyUs,
}

fn publish_until(
    mut p: Publisher,
    stop: &AtomicBool,
    size: usize,
    rate: Option<f64>,
) -> Result<(), DmpError> {
    let body = vec![0x5a; size];
    let mut pacer = Pacer::new(rate);
    while !stop.load(Ordering::Relaxed) {
        if !pacer.due() {
            p.flush()?;
            pacer.wait();
            continue;
        }
        p.publish(b"", &body)?;
        pacer.tick();
    }
    p.close()
}

/// Measures as `args` say.
pub fn run(args: &BenchArgs) -> Result<DmpBenchReport, String> {
    let size = args.size.unwrap_or(64) as usize;
    let publishers = args.publishers.max(1);
    let duration = Duration::try_from_secs_f64(args.duration).map_err(|e| e.to_string())?;
    let dmp = DmpService::new(DmpConfig::default());
    let server = ServerBuilder::new()
        .service(dmp.service())
        .listen("127.0.0.1:0")
        .map_err(|e| e.to_string())?;
    let options = ClientOptions {
        connections: 1,
        ..ClientOptions::default()
    };
    let client = Client::connect(server.local_addr(), options).map_err(|e| e.to_string())?;
    let wiring = Wiring::new(&client);
    let fail = |e: DmpError| e.to_string();
    wiring.declare_sink("bench", false).map_err(fail)?;
    wiring
        .declare_feed("bench", false, FlowPolicy::Block, 0, 0)
        .map_err(fail)?;
    wiring.bind("bench", "bench", "#").map_err(fail)?;
    let mut consumer = wiring
        .consumer("bench", DirectOptions::default())
        .map_err(fail)?;
    let stop = Arc::new(AtomicBool::new(false));
    let per_publisher = args.rate.map(|r| r / publishers as f64);
    let mut threads = Vec::new();
    for _ in 0..publishers {
        let p = wiring
            .publisher("bench", DirectOptions::default())
            .map_err(fail)?;
        let stop = Arc::clone(&stop);
        threads.push(std::thread::spawn(move || {
            publish_until(p, &stop, size, per_publisher)
        }));
    }
    let mut latency = new_latency_histogram();
    let start = Instant::now() + WARM_UP;
    let end = start + duration;
    let mut messages = 0u64;
    let mut seen = 0u64;
    let every = if args.rate.is_some() { 1 } else { SAMPLE_EVERY };
    loop {
        let Some(d) = consumer
            .recv_until(Some(end + Duration::from_secs(5)))
            .map_err(fail)?
        else {
            return Err("the server closed the feed's connection".into());
        };
        // (The bench's own publishers send no malformed message: any error above is one.)
        seen += 1;
        if !seen.is_multiple_of(every) {
            continue;
        }
        let now = Instant::now();
        if now >= end {
            break;
        }
        if now >= start {
            messages += every;
            if let Some(age) = d.age_micros() {
                let _ = latency.record(age.max(1) * 1000);
            }
        }
    }
    let seconds = duration.as_secs_f64();
    // Drain while the publishers stop: blocked ones need the feed to move.
    stop.store(true, Ordering::Relaxed);
    while !threads.iter().all(|t| t.is_finished()) {
        match consumer.recv_until(Some(Instant::now() + Duration::from_millis(50))) {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(DmpError::Io(e)) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    for t in threads {
        t.join()
            .map_err(|_| "a publisher panicked".to_string())?
            .map_err(fail)?;
    }
    consumer.close();
    client.close();
    if let Some(path) = &args.histogram {
        write_hgrm_file(&latency, path).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if let Some(path) = &args.plot {
        let title = "hawser bench --mode dmp: end-to-end latency by percentile";
        write_plot_file(&latency, title, "latency", path).map_err(|e| e.to_string())?;
    }
    let us = |q: f64| latency.value_at_quantile(q) as f64 / 1000.0;
    Ok(DmpBenchReport {
        system: "hawser",
        size,
        publishers,
        rate: args.rate,
        seconds,
        messages,
        messages_per_sec: messages as f64 / seconds,
        latency_us: LatencyUs {
            p50: us(0.5),
            p99: us(0.99),
            p999: us(0.999),
            max: latency.max() as f64 / 1000.0,
        },
    })
}

/// `hawser bench --mode dmp` from the command line.
pub fn run_cli(args: &BenchArgs) -> ExitCode {
    match run(args) {
        Ok(r) => {
            if args.json {
                println!("{}", serde_json::to_string(&r).expect("plain data"));
            } else {
                println!(
                    "dmp: {} publisher(s) of {}-byte messages -> 1 consumer: {:.0} messages/s \
                     ({:.2} MB/s of bodies); latency p50 {:.1} us, p99 {:.1} us, p99.9 {:.1} \
                     us, max {:.1} us",
                    r.publishers,
                    r.size,
                    r.messages_per_sec,
                    r.messages_per_sec * r.size as f64 / 1e6,
                    r.latency_us.p50,
                    r.latency_us.p99,
                    r.latency_us.p999,
                    r.latency_us.max
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hawser bench --mode dmp: {e}");
            ExitCode::FAILURE
        }
    }
}
