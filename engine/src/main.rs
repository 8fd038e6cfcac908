//! `hawser`: the command-line tool of the hawser data mover.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use hawser_engine::bench::{self, BenchArgs};
use hawser_engine::inspect::{self, InspectArgs};

/// hawser moves replication data between sites over long fat networks.
#[derive(Debug, Parser)]
#[command(name = "hawser", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Dissect a capture of hawser wire traffic (DSP, DMP, DTP or DDF) and print every frame.
    Inspect(InspectArgs),
    /// Measure the session layer: rpc (64 B exchanges, ping-pong or pipelined) or bulk
    /// (1 MiB requests), over loopback or against `hawser bench --serve`.
    Bench(BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Inspect(args) => inspect::run_cli(&args),
        Command::Bench(args) => bench::run_cli(&args),
    }
}
