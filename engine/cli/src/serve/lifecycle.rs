//! A running server's life under its service manager: SIGHUP reloads the config file
//! (what can change live), SIGTERM and SIGINT drain it and end the process with success.
//!
//! Live on reload: the user database (`[users]`), `[peer_uids]`, `[client_certs]` (when
//! the server already asks TLS clients for certificates), `allow_plain`,
//! `allow_anonymous` and `[limits]`. Everything else (addresses, root, shards, threads,
//! TLS files, the replication limits, `[dmp]`, the metrics address) is read at start
//! only: a reload that changes it logs a warning naming it and leaves it as it was.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hawser_runtime::{Address, Server, ServerCredentials, anonymous_allowed};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::access::check_someone_may_connect;
use super::args::ServeArgs;
use super::config::{ServeSettings, read_config};
use super::notify::notify;
use crate::error::CliError;

/// The signals a service manager sends, caught before the server starts (so a SIGHUP
/// that comes early reloads instead of killing the process), and the switch that makes a
/// second SIGTERM or SIGINT end a drain at once.
#[derive(Debug)]
pub(crate) struct Caught {
    signals: Signals,
    draining: Arc<AtomicBool>,
}

/// Catches SIGHUP, SIGTERM and SIGINT.
pub(crate) fn catch_signals() -> Result<Caught, CliError> {
    let failed =
        |e: std::io::Error| CliError::Usage(format!("catching SIGHUP, SIGTERM and SIGINT: {e}"));
    let draining = Arc::new(AtomicBool::new(false));
    for signal in [SIGTERM, SIGINT] {
        // Exits with status 1 on this signal once `draining` is set: the operator who
        // presses Ctrl-C twice does not wait for the drain.
        signal_hook::flag::register_conditional_shutdown(signal, 1, Arc::clone(&draining))
            .map_err(failed)?;
    }
    let signals = Signals::new([SIGHUP, SIGTERM, SIGINT]).map_err(failed)?;
    Ok(Caught { signals, draining })
}

/// Serves until SIGTERM or SIGINT, reloading on SIGHUP; then drains and returns how many
/// requests were still running when the drain timed out (0: drained).
pub(crate) fn run(
    caught: Caught,
    args: &ServeArgs,
    server: &Arc<Server>,
    started: &ServeSettings,
) -> usize {
    let Caught {
        mut signals,
        draining,
    } = caught;
    notify("READY=1");
    for signal in signals.forever() {
        if signal == SIGHUP {
            reload(args, server, started);
            continue;
        }
        draining.store(true, Ordering::SeqCst);
        notify("STOPPING=1");
        let timeout = started.drain_timeout;
        tracing::info!(
            signal = if signal == SIGTERM {
                "SIGTERM"
            } else {
                "SIGINT"
            },
            drain_timeout_s = timeout.as_secs_f64(),
            "draining: new connections are refused, running requests finish (a second \
             SIGTERM or SIGINT exits at once)"
        );
        let running = server.drain(timeout);
        if running == 0 {
            tracing::info!("drained: every running request finished; exiting");
        } else {
            tracing::warn!(
                running,
                drain_timeout_s = timeout.as_secs_f64(),
                "drain timed out with requests still running; exiting anyway (their jobs \
                 resume from the journals)"
            );
        }
        return running;
    }
    0
}

/// Reads the config file again and applies what can change live.
fn reload(args: &ServeArgs, server: &Server, started: &ServeSettings) {
    if args.config.is_none() {
        tracing::info!("SIGHUP: the server runs without --config; there is nothing to reload");
        return;
    }
    let settings = match read_config(args).and_then(|file| ServeSettings::resolve(args, file)) {
        Ok(settings) => settings,
        Err(e) => {
            tracing::error!("reload refused, the running configuration stays: {e}");
            return;
        }
    };
    let credentials = credentials_of(&settings, server.addresses());
    let has_credentials = !credentials.users.is_empty()
        || !credentials.peer_uids.is_empty()
        || !credentials.client_certs.is_empty();
    if let Err(e) = check_someone_may_connect(
        server.addresses(),
        settings.allow_anonymous,
        has_credentials,
        "reload",
    ) {
        tracing::error!("reload refused, the running configuration stays: {e}");
        return;
    }
    for setting in restart_only_changes(started, &settings) {
        tracing::warn!(
            setting,
            "changed in the configuration but read only at start: restart the server to apply it"
        );
    }
    let limits = settings.server_limits;
    tracing::info!(
        users = credentials.users.len(),
        peer_uids = credentials.peer_uids.len(),
        client_certs = credentials.client_certs.len(),
        allow_plain = credentials.allow_plain,
        anonymous = credentials.allow_anonymous,
        connections_per_address = limits.connections_per_address,
        handshakes_in_progress = limits.handshakes_in_progress,
        nexuses = limits.nexuses,
        "configuration reloaded"
    );
    server.reconfigure(credentials, limits);
}

/// What `settings` let log in, on a server listening on `addresses`.
fn credentials_of(settings: &ServeSettings, addresses: &[Address]) -> ServerCredentials {
    let users: HashMap<_, _> = settings.users.clone().into_iter().collect();
    let peer_uids: HashMap<_, _> = settings.peer_uids.clone().into_iter().collect();
    let client_certs: HashMap<_, _> = settings.client_certs.clone().into_iter().collect();
    let has_credentials = !users.is_empty() || !peer_uids.is_empty() || !client_certs.is_empty();
    ServerCredentials {
        allow_anonymous: anonymous_allowed(settings.allow_anonymous, has_credentials, addresses),
        users,
        allow_plain: settings.allow_plain,
        peer_uids,
        client_certs,
    }
}

/// The settings read only at start that differ between `started` and `now`.
fn restart_only_changes(started: &ServeSettings, now: &ServeSettings) -> Vec<&'static str> {
    let differ =
        |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") != format!("{b:?}");
    let (a, b) = (started, now);
    let mut changed = Vec::new();
    let fields: [(&'static str, &dyn std::fmt::Debug, &dyn std::fmt::Debug); 16] = [
        ("listen", &a.listen, &b.listen),
        ("root", &a.root, &b.root),
        ("shards", &a.shards, &b.shards),
        ("max_block_size", &a.max_block_size, &b.max_block_size),
        ("handler_threads", &a.handler_threads, &b.handler_threads),
        ("congestion", &a.congestion, &b.congestion),
        (
            "max_jobs, write_mode, max_job_entries, max_open_files or partial_max_age",
            &a.service_limits,
            &b.service_limits,
        ),
        ("receive_budget", &a.receive_budget, &b.receive_budget),
        ("frame_timeout", &a.frame_timeout, &b.frame_timeout),
        ("grace_period_secs", &a.grace_period, &b.grace_period),
        ("tls_cert or tls_key", &a.tls, &b.tls),
        ("require_tls", &a.require_tls, &b.require_tls),
        ("[dmp]", &a.dmp, &b.dmp),
        ("metrics", &a.metrics, &b.metrics),
        ("drain_timeout", &a.drain_timeout, &b.drain_timeout),
        (
            "[client_certs] (whether TLS clients are asked for certificates)",
            &a.client_certs.is_empty(),
            &b.client_certs.is_empty(),
        ),
    ];
    for (name, before, after) in fields {
        if differ(before, after) {
            changed.push(name);
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::config::ServeFile;

    fn settings(toml: &str) -> ServeSettings {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct ServeOnly {
            #[command(flatten)]
            serve: ServeArgs,
        }
        let args = ServeOnly::try_parse_from(["serve"]).unwrap().serve;
        let file: ServeFile = toml::from_str(toml).unwrap();
        ServeSettings::resolve(&args, file).unwrap()
    }

    #[test]
    fn a_reload_names_what_only_a_restart_changes() {
        let before = settings("listen = \"127.0.0.1:0\"\nmax_jobs = 4\n[limits]\nnexuses = 5\n");
        let same_but_limits =
            settings("listen = \"127.0.0.1:0\"\nmax_jobs = 4\n[limits]\nnexuses = 9\n");
        assert!(restart_only_changes(&before, &same_but_limits).is_empty());
        let moved = settings("listen = \"127.0.0.1:1\"\nmax_jobs = 5\nshards = 2\n");
        assert_eq!(
            restart_only_changes(&before, &moved),
            [
                "listen",
                "shards",
                "max_jobs, write_mode, max_job_entries, max_open_files or partial_max_age"
            ]
        );
    }

    #[test]
    fn credentials_follow_the_settings() {
        let s = settings("listen = \"127.0.0.1:0\"\nallow_plain = true\n[peer_uids]\nops = 7\n");
        let c = credentials_of(&s, &s.listen);
        assert!(c.allow_plain);
        assert_eq!(c.peer_uids.get("ops"), Some(&7));
        assert!(
            !c.allow_anonymous,
            "an identity exists: no anonymous by default"
        );
        let open = settings("listen = \"127.0.0.1:0\"\n");
        assert!(credentials_of(&open, &open.listen).allow_anonymous);
    }
}
