//! The log: diagnostics of every hawser crate (`tracing` events) as lines on stderr, text
//! or JSON, filtered by `RUST_LOG` (e.g. `RUST_LOG=debug`, `RUST_LOG=hawser_shards=debug`)
//! or else by a default level each subcommand chooses.
//!
//! User-facing output is not logged: reports, `listening on ADDR`, progress and the error
//! a failed command ends with are printed as they always were.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Text,
    /// One JSON object per event (timestamp, level, target, fields).
    Json,
}

/// Installs the process's log subscriber: stderr, `format`, `RUST_LOG` or else `default`.
/// A second call leaves the first subscriber in place.
pub fn init(default: LevelFilter, format: LogFormat) {
    let filter = EnvFilter::builder()
        .with_default_directive(default.into())
        .from_env_lossy();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
