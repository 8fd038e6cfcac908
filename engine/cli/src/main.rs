//! `hawser`: the command-line tool of the hawser data mover.

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use hawser::bench;
use hawser::cli::{Cli, Command};
use hawser::control_call;
use hawser::dtp_transfer;
use hawser::error::exit_code;
use hawser::inspect;
use hawser::logging;
use hawser::messaging::{consume, publish};
use hawser::passwd;
use hawser::pull;
use hawser::push;
use hawser::serve;
use hawser::shell_docs;
use hawser::stats_view;

fn main() -> ExitCode {
    hawser_shards::reuse_freed_memory();
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
        Command::Push(args) => exit_code("push", push::push_cli(&args)),
        Command::Pull(args) => exit_code("pull", pull::pull(&args).map(|_| ())),
        Command::Passwd(args) => exit_code("passwd", passwd::passwd(&args)),
        Command::Publish(args) => exit_code("publish", publish::publish(&args).map(|_| ())),
        Command::Consume(args) => exit_code("consume", consume::consume(&args).map(|_| ())),
        Command::Call(args) => exit_code("call", control_call::call(&args)),
        Command::Stats(args) => exit_code("stats", stats_view::stats(&args)),
        Command::Completions(args) => exit_code(
            "completions",
            shell_docs::run_completions(&args, Cli::command()),
        ),
        Command::Man(args) => exit_code("man", shell_docs::run_man(&args, Cli::command())),
    }
}
