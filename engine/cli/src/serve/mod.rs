//! `hawser serve`: a replication target and pull source serving one root until SIGTERM
//! (reloading its config on SIGHUP, with metrics over HTTP when asked), or with
//! `--clean-partials` a sweep of what unfinished jobs left under it.

pub mod access;
pub mod args;
pub mod config;
pub mod control;
mod dmp;
mod lifecycle;
mod metrics;
mod metrics_http;
mod notify;
mod session_totals;

use std::io::Write;
use std::sync::Arc;

use hawser_replicate::proto::BLOCK_HEADER_LEN;
use hawser_replicate::service::{max_request_size, pull_service, replication_service_with_jobs};
use hawser_replicate::{RootDir, remove_partials};
use hawser_runtime::{Runtime, Server, ServerBuilder, anonymous_allowed};

use crate::error::{CliError, io_err};
use crate::values::{age_text, write_mode_name};
use access::{check_someone_may_connect, shown_address};
pub use args::ServeArgs;
use config::{ServeSettings, read_config, serve_root};

/// Starts the replication server `args` describe (the caller keeps it running).
pub fn start_server(args: &ServeArgs) -> Result<Server, CliError> {
    Ok(start(args)?.0)
}

/// Starts the server and returns it with the settings it started with.
fn start(args: &ServeArgs) -> Result<(Server, ServeSettings), CliError> {
    let s = ServeSettings::resolve(args, read_config(args)?)?;
    let (service, replications) = replication_service_with_jobs(&s.root, s.service_limits.clone())
        .map_err(io_err(&s.root))?;
    // A pull holds a handler thread while it runs: leave one to the pushes.
    let max_pulls = s.handler_threads.saturating_sub(1).max(1);
    let pulls = pull_service(&s.root, max_pulls).map_err(io_err(&s.root))?;
    if let Some(name) = &s.congestion {
        hawser_shards::check_congestion_control(name)
            .map_err(|e| CliError::Usage(e.to_string()))?;
    }
    let has_credentials =
        !s.users.is_empty() || !s.peer_uids.is_empty() || !s.client_certs.is_empty();
    check_someone_may_connect(&s.listen, s.allow_anonymous, has_credentials, "serve")?;
    let messages = s.dmp.clone().map(hawser_dmp::DmpService::new);
    if let Some(m) = &messages {
        m.check()
            .map_err(|e| CliError::Usage(format!("[dmp] in the config file: {e}")))?;
    }
    let runtime = Runtime::with_tcp_congestion(s.shards, s.congestion.as_deref())?;
    let mut builder = ServerBuilder::new().limits(s.server_limits);
    // DMP's sinks and feeds live on one shard (a put and the gets of a feed meet there),
    // so a server with DMP keeps its nexuses on one shard.
    builder = if messages.is_some() {
        if s.shards > 1 {
            tracing::warn!(
                shards = s.shards,
                "DMP is on: the server's nexuses stay on shard 0 (the others run DTP and \
                 idle); run a separate serve without --dmp to spread them"
            );
        }
        builder.runtime(&runtime, 0)
    } else {
        builder.runtime_all_shards(&runtime)
    };
    let mut builder = builder
        .service(service)
        .service(pulls)
        .handler_threads(s.handler_threads)
        .max_request_size(max_request_size(s.max_block_size))
        // Blocks are written past their header with O_DIRECT: receive them aligned.
        .align_request_bodies_at(BLOCK_HEADER_LEN);
    if let Some(m) = &messages {
        builder = builder.service(m.service());
    }
    let transfers = match args.dtp {
        Some(bind) => Some(dtp_service(&s.root, bind, args.dtp_rate)?),
        None => None,
    };
    if let Some(t) = &transfers {
        builder = builder.service(t.service());
    }
    let control = control::ControlPlane::new(
        Some(replications),
        transfers.clone(),
        args.operators.clone(),
    );
    builder = builder.service(control.service());
    if let Some(bytes) = s.receive_budget {
        builder = builder.receive_budget(bytes);
    }
    if let Some(timeout) = s.frame_timeout {
        builder = builder.frame_timeout(timeout);
    }
    let identities = s.users.len() + s.peer_uids.len() + s.client_certs.len();
    for (identity, entry) in &s.users {
        builder = builder.user(identity.clone(), entry.clone());
    }
    builder = builder.allow_plain(s.allow_plain);
    let mut tls_pin = None;
    if let Some((cert, key)) = &s.tls {
        let asks_certificates = !s.client_certs.is_empty();
        let tls = hawser_runtime::tls::server_tls(cert, key, s.require_tls, asks_certificates)
            .map_err(|e| CliError::Usage(e.to_string()))?;
        tls_pin =
            Some(hawser_runtime::tls::pin_of(cert).map_err(|e| CliError::Usage(e.to_string()))?);
        builder = builder.tls(tls);
    }
    for (identity, pin) in &s.client_certs {
        builder = builder.client_cert(identity.clone(), *pin);
    }
    for (identity, uid) in &s.peer_uids {
        builder = builder.peer_uid(identity.clone(), *uid);
    }
    if let Some(allow) = s.allow_anonymous {
        builder = builder.allow_anonymous(allow);
    }
    if let Some(grace) = s.grace_period {
        builder = builder.grace_period(grace);
    }
    let server = builder.listen_on(&s.listen)?;
    control.attach(server.stats_handle());
    let addresses: Vec<String> = server.addresses().iter().map(shown_address).collect();
    tracing::info!(
        addresses = %addresses.join(" "),
        root = %s.root.display(),
        shards = s.shards,
        nexus_shards = server.shards_used().len(),
        handler_threads = s.handler_threads,
        max_pulls,
        max_jobs = s.service_limits.max_jobs,
        max_job_entries = s.service_limits.max_job_entries,
        max_open_files = s.service_limits.max_open_files,
        write_mode = write_mode_name(s.service_limits.write_mode),
        partial_max_age = %age_text(s.service_limits.partial_max_age),
        connections_per_address = s.server_limits.connections_per_address,
        handshakes_in_progress = s.server_limits.handshakes_in_progress,
        nexuses = s.server_limits.nexuses,
        identities,
        tls = if s.require_tls { "required" } else if s.tls.is_some() { "offered" } else { "off" },
        tls_pin = tls_pin.as_deref().unwrap_or("-"),
        anonymous = anonymous_allowed(s.allow_anonymous, has_credentials, server.addresses()),
        congestion = s.congestion.as_deref().unwrap_or("system default"),
        dmp = s.dmp.is_some(),
        dmp_sinks = s.dmp.as_ref().map_or(0, |d| d.sinks.len()),
        dmp_feeds = s.dmp.as_ref().map_or(0, |d| d.feeds.len()),
        dtp = %transfers.as_ref().map_or("off".to_string(), |t| t.data_addr().to_string()),
        drain_timeout_s = s.drain_timeout.as_secs_f64(),
        "serving"
    );
    Ok((server, s))
}

/// The DTP service over `root`, its data socket bound at `bind`.
fn dtp_service(
    root: &std::path::Path,
    bind: std::net::SocketAddr,
    rate: Option<u64>,
) -> Result<hawser_dtp::service::DtpService, CliError> {
    let opened = RootDir::open(root).map_err(io_err(root))?;
    let engine = hawser_dtp::engine::DtpEngine::start(hawser_dtp::engine::EngineConfig {
        bind,
        ..hawser_dtp::engine::EngineConfig::default()
    })
    .map_err(|e| CliError::Usage(format!("--dtp {bind}: {e}")))?;
    Ok(hawser_dtp::service::DtpService::new(
        opened,
        std::sync::Arc::new(engine),
        hawser_dtp::service::DtpServiceConfig {
            max_rate: rate.unwrap_or(0),
            ..Default::default()
        },
    ))
}

/// `hawser serve`: serves until SIGTERM or SIGINT, then drains (with
/// `--clean-partials`: cleans and exits).
pub fn serve(args: &ServeArgs) -> Result<(), CliError> {
    if args.clean_partials {
        return clean_partials(args);
    }
    let signals = lifecycle::catch_signals()?;
    let (server, settings) = start(args)?;
    let server = Arc::new(server);
    for address in server.addresses() {
        println!("listening on {}", shown_address(address));
    }
    if let Some(addr) = settings.metrics {
        let metrics = metrics::Metrics::new(&server);
        let bound = metrics_http::start(addr, Arc::new(metrics))
            .map_err(|e| CliError::Usage(format!("--metrics {addr}: {e}")))?;
        tracing::info!(metrics = %bound, "serving metrics at http://{bound}/metrics");
        println!("metrics on {bound}");
    }
    let _ = std::io::stdout().flush();
    if lifecycle::run(signals, args, &server, &settings) > 0 {
        // Stopping the server joins its handler threads, which would wait for the
        // requests the drain gave up on: the process ends without them.
        std::process::exit(0);
    }
    Ok(())
}

/// `hawser serve --clean-partials`: removes every partial file and journal under the
/// root and says how many files and bytes went.
fn clean_partials(args: &ServeArgs) -> Result<(), CliError> {
    let root = serve_root(args, &read_config(args)?);
    let opened = RootDir::open(&root).map_err(io_err(&root))?;
    let removed = remove_partials(&opened, None).map_err(io_err(&root))?;
    println!(
        "removed partial files and journals under {}: {removed}",
        opened.path().display()
    );
    Ok(())
}
