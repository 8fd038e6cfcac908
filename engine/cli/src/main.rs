//! `hawser`: the command-line tool of the hawser data mover.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use hawser::bench::{self, BenchArgs};
use hawser::inspect::{self, InspectArgs};
use hawser::mover::{self, PushArgs, ServeArgs};
use hawser::pull::{self, PullArgs};
use hawser_replicate::ReplicateError;

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
    /// The loopback demo: without --mode, replicate a generated data set to a server in
    /// this process, verify it and report; --mode rpc|bulk measures the session layer
    /// (over loopback or against `hawser bench --serve`).
    Bench(BenchArgs),
    /// Serve as a replication target and source: write what `hawser push` sends under
    /// --root, send what `hawser pull` asks for from under it.
    Serve(ServeArgs),
    /// Replicate files and directory trees to a `hawser serve` target.
    Push(PushArgs),
    /// Replicate files and directory trees from a `hawser serve` server to here.
    Pull(PullArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Inspect(args) => inspect::run_cli(&args),
        Command::Bench(args) => bench::run_cli(&args),
        Command::Serve(args) => report("serve", mover::serve(&args)),
        Command::Push(args) => report("push", mover::push(&args).map(|_| ())),
        Command::Pull(args) => report("pull", pull::pull(&args).map(|_| ())),
    }
}

/// Prints a failed subcommand's error (every refused or failed entry, with its path) and
/// turns it into the exit code.
fn report(command: &str, result: Result<(), mover::MoverError>) -> ExitCode {
    let Err(e) = result else {
        return ExitCode::SUCCESS;
    };
    if let mover::MoverError::Replicate(ReplicateError::Incomplete { failures, report }) = &e {
        for failure in failures {
            eprintln!("hawser {command}: {failure}");
        }
        eprintln!(
            "hawser {command}: {} entries failed; {} files replicated",
            failures.len(),
            report.files
        );
    } else {
        let resumable = matches!(
            e,
            mover::MoverError::Replicate(ReplicateError::Transport(_))
        );
        eprintln!("hawser {command}: {}", anyhow::Error::from(e));
        if resumable {
            eprintln!(
                "hawser {command}: the other side stopped answering; run the same command \
                 with --resume to continue where it stopped"
            );
        }
    }
    ExitCode::FAILURE
}
