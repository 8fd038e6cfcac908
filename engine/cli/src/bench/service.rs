//! The service `hawser bench` measures (an echo and a sink exchange), and
//! `hawser bench --serve ADDR`, which serves it to a `hawser bench --connect` elsewhere.

use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use hawser_runtime::{Address, ExchangeId, Runtime, RuntimeConfig, ServerBuilder, Service};

use crate::bench::args::BenchArgs;
use crate::error::CliError;
use crate::serve::access::{check_someone_may_connect, shown_address};

/// The echo exchange of the bench service.
pub const BENCH_ECHO: ExchangeId = ExchangeId(0xBE01);
/// The sink exchange of the bench service (answers with an empty body).
pub const BENCH_SINK: ExchangeId = ExchangeId(0xBE02);

/// The service `hawser bench` calls.
pub fn bench_service() -> Service {
    Service::new("bench")
        .handler(BENCH_ECHO, "bench.echo", |_, body| Ok(body))
        .handler(BENCH_SINK, "bench.sink", |_, _| Ok(Bytes::new()))
}

/// `hawser bench --serve ADDR...`: serves [`bench_service`] on every address until
/// killed, on every one of its `--shards`; its clients are anonymous. The exit code if it
/// cannot.
pub(crate) fn serve(args: &BenchArgs, texts: &[String]) -> ExitCode {
    let allow = args.allow_anonymous.then_some(true);
    let parsed = texts
        .iter()
        .map(|t| Address::parse(t).map_err(|e| CliError::Usage(e.to_string())))
        .collect::<Result<Vec<_>, _>>();
    let addresses = match parsed.and_then(|addresses| {
        check_someone_may_connect(&addresses, allow, false, "bench").map(|()| addresses)
    }) {
        Ok(addresses) => addresses,
        Err(e) => {
            eprintln!("hawser bench: {e}");
            return ExitCode::from(2);
        }
    };
    let served = Runtime::start(RuntimeConfig {
        shards: args.shards.max(1),
        tcp_congestion: args.congestion.clone(),
        // Only when asked for: a server waiting for clients should not spin by default.
        busy_poll: args
            .busy_poll_us
            .filter(|&us| us > 0)
            .map(Duration::from_micros),
        ..RuntimeConfig::default()
    })
    .and_then(|runtime| {
        // Anonymous clients: on loopback by default, elsewhere when asked for.
        let mut builder = ServerBuilder::new().service(bench_service());
        if args.security.wants_tls() {
            let (tls, pin) = super::tls::self_signed()?;
            eprintln!("hawser bench: TLS with a self-signed certificate; --tls-pin {pin}");
            builder = builder.tls(tls);
        }
        let builder = match allow {
            Some(allow) => builder.allow_anonymous(allow),
            None => builder,
        };
        // Each client identity's nexus on the shard its route names.
        builder.runtime_all_shards(&runtime).listen_on(&addresses)
    });
    match served {
        Ok(server) => {
            let shown: Vec<String> = server.addresses().iter().map(shown_address).collect();
            eprintln!(
                "hawser bench: serving the bench exchanges on {}",
                shown.join(", ")
            );
            loop {
                std::thread::park();
            }
        }
        Err(e) => {
            eprintln!("hawser bench: {e}");
            ExitCode::FAILURE
        }
    }
}
