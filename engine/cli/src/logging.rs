//! The log: diagnostics of every hawser crate (`tracing` events) as lines on stderr, text
//! or JSON, filtered by `RUST_LOG` (e.g. `RUST_LOG=debug`, `RUST_LOG=hawser_shards=debug`)
//! or else by a default level each subcommand chooses.
//!
//! Job events (target `hawser::job`) also feed the job tally the metrics endpoint exports
//! ([`crate::job_tally`]), whatever `RUST_LOG` lets through to stderr.
//!
//! User-facing output is not logged: reports, `listening on ADDR`, progress and the error
//! a failed command ends with are printed as they always were.

use std::io::IsTerminal;

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::job_tally::{JOB_TARGET, JobTallyLayer};

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Text,
    /// One JSON object per event (timestamp, level, target, fields).
    Json,
}

/// Installs the process's log subscriber: stderr, `format`, `RUST_LOG` or else `default`,
/// and the job tally. A second call leaves the first subscriber in place.
pub fn init(default: LevelFilter, format: LogFormat) {
    let filter = EnvFilter::builder()
        .with_default_directive(default.into())
        .from_env_lossy();
    let stderr = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let stderr = match format {
        LogFormat::Text => stderr
            .with_ansi(std::io::stderr().is_terminal())
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => stderr.json().with_filter(filter).boxed(),
    };
    // Its own filter: only job events, so the data path's debug events stay disabled.
    let tally =
        JobTallyLayer.with_filter(Targets::new().with_target(JOB_TARGET, LevelFilter::INFO));
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(tally)
        .try_init();
}
