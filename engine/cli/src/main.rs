//! `hawser`: the command-line tool of the hawser data mover.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::filter::LevelFilter;

use hawser::bench::{self, BenchArgs};
use hawser::control_call::{self, CallArgs};
use hawser::dtp_transfer;
use hawser::error::exit_code;
use hawser::inspect::{self, InspectArgs};
use hawser::logging::{self, LogFormat};
use hawser::messaging::consume::{self, ConsumeArgs};
use hawser::messaging::publish::{self, PublishArgs};
use hawser::passwd::{self, PasswdArgs};
use hawser::pull::{self, PullArgs};
use hawser::push::{self, PushArgs};
use hawser::serve::{self, ServeArgs};
use hawser::stats_view::{self, StatsArgs};

/// hawser moves replication data between sites over long fat networks.
#[derive(Debug, Parser)]
#[command(name = "hawser", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The subcommands; each one's help text is with its arguments.
#[derive(Debug, Subcommand)]
enum Command {
    Inspect(InspectArgs),
    Bench(BenchArgs),
    Serve(ServeArgs),
    Push(PushArgs),
    Pull(PullArgs),
    Passwd(PasswdArgs),
    Publish(PublishArgs),
    Consume(ConsumeArgs),
    Call(CallArgs),
    Stats(StatsArgs),
}

impl Command {
    /// The log's level when `RUST_LOG` does not say, and its format: a server says what it
    /// does; the other subcommands only warn (a job's -v and -q move that).
    fn log_defaults(&self) -> (LevelFilter, LogFormat) {
        match self {
            Command::Serve(args) => (LevelFilter::INFO, args.log_format),
            Command::Push(PushArgs { job, .. }) | Command::Pull(PullArgs { job, .. }) => {
                (job.log_level(), LogFormat::Text)
            }
            Command::Inspect(_)
            | Command::Bench(_)
            | Command::Passwd(_)
            | Command::Publish(_)
            | Command::Consume(_)
            | Command::Call(_)
            | Command::Stats(_) => (LevelFilter::WARN, LogFormat::Text),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (level, format) = cli.command.log_defaults();
    logging::init(level, format);
    match cli.command {
        Command::Inspect(args) => inspect::run_cli(&args),
        Command::Bench(args) => bench::run_cli(&args),
        Command::Serve(args) => exit_code("serve", serve::serve(&args)),
        Command::Push(args) if args.job.transport == "dtp" => {
            exit_code("push", dtp_transfer::push_file(&args))
        }
        Command::Pull(args) if args.job.transport == "dtp" => {
            exit_code("pull", dtp_transfer::pull_file(&args))
        }
        Command::Push(args) => exit_code("push", push::push(&args).map(|_| ())),
        Command::Pull(args) => exit_code("pull", pull::pull(&args).map(|_| ())),
        Command::Passwd(args) => exit_code("passwd", passwd::passwd(&args)),
        Command::Publish(args) => exit_code("publish", publish::publish(&args).map(|_| ())),
        Command::Consume(args) => exit_code("consume", consume::consume(&args).map(|_| ())),
        Command::Call(args) => exit_code("call", control_call::call(&args)),
        Command::Stats(args) => exit_code("stats", stats_view::stats(&args)),
    }
}
