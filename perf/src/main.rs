//! `hawser-perf`: hawser's end-to-end performance harness.

use anyhow::Result;
use clap::{Parser, Subcommand};
use hawser_perf::linkem::{self, LinkemOptions};
use hawser_perf::probe::{self, ProbeOptions};
use hawser_perf::scenario::{self, ScenarioOptions};

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
    Linkem(Box<LinkemOptions>),
    /// Run a scenario (hawser and its baselines side by side, A/B alternated) and write
    /// `<scenario>.json`, `<scenario>.md` and SVG plots.
    Scenario(ScenarioOptions),
    /// Probe a running `hawser serve` as a hostile client would (held frames, idle
    /// connections, abandoned nexuses, wrong passwords) and print what it measured.
    Probe(ProbeOptions),
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Linkem(options) => {
            linkem::run(&options)?;
        }
        Command::Probe(options) => probe::run(&options)?,
        Command::Scenario(options) => {
            let files = scenario::run(&options)?;
            println!("report: {}", files.markdown.display());
            println!("json:   {}", files.json.display());
            for plot in &files.plots {
                println!("plot:   {}", plot.display());
            }
        }
    }
    Ok(())
}
