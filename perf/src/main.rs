//! `hawser-perf`: hawser's end-to-end performance harness.

use anyhow::Result;
use clap::{Parser, Subcommand};
use hawser_perf::linkem::{self, LinkemOptions};

#[derive(Debug, Parser)]
#[command(
    name = "hawser-perf",
    about = "hawser's end-to-end performance harness"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Emulate a long fat network (delay, jitter, rate cap, loss, corruption) between two
    /// network namespaces it creates; needs root.
    Linkem(LinkemOptions),
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Linkem(options) => {
            linkem::run(&options)?;
        }
    }
    Ok(())
}
