//! The `hawser` command line: the subcommands and their arguments as clap parses them,
//! the log each one writes by default, and the audit that keeps every help text whole.

use clap::{Parser, Subcommand};
use tracing_subscriber::filter::LevelFilter;

use crate::bench::BenchArgs;
use crate::control_call::CallArgs;
use crate::inspect::InspectArgs;
use crate::logging::LogFormat;
use crate::messaging::consume::ConsumeArgs;
use crate::messaging::publish::PublishArgs;
use crate::passwd::PasswdArgs;
use crate::pull::PullArgs;
use crate::push::PushArgs;
use crate::serve::ServeArgs;
use crate::shell_docs::{CompletionsArgs, ManArgs};
use crate::stats_view::StatsArgs;

/// hawser moves replication data between sites over long fat networks.
#[derive(Debug, Parser)]
#[command(name = "hawser", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands; each one's help text is with its arguments.
#[derive(Debug, Subcommand)]
pub enum Command {
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
    Completions(CompletionsArgs),
    Man(ManArgs),
}

impl Command {
    /// The log's level when `RUST_LOG` does not say, and its format: a server says what it
    /// does; the other subcommands only warn (a job's -v and -q move that).
    pub fn log_defaults(&self) -> (LevelFilter, LogFormat) {
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
            | Command::Stats(_)
            | Command::Completions(_)
            | Command::Man(_) => (LevelFilter::WARN, LogFormat::Text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// `Ok` when `text` is one sentence (abbreviations aside).
    fn one_sentence(text: &str) -> Result<(), ()> {
        let body = text
            .trim_end_matches('.')
            .replace("e.g. ", "e.g.,")
            .replace("i.e. ", "i.e.,");
        if body.contains(". ") || body.contains(".\n") {
            Err(())
        } else {
            Ok(())
        }
    }

    /// Every problem of the short help (`-h`) of `cmd`'s arguments and of its own
    /// summary, and of its subcommands', as "COMMAND ARG: why".
    fn audit(cmd: &clap::Command, path: &str, problems: &mut Vec<String>) {
        let about = cmd.get_about().map(|s| s.to_string()).unwrap_or_default();
        if about.trim().is_empty() {
            problems.push(format!("{path}: no about"));
        }
        if one_sentence(&about).is_err() {
            problems.push(format!(
                "{path}: its summary is several sentences: {about:?}"
            ));
        }
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            let Some(help) = arg.get_help().map(|s| s.to_string()) else {
                problems.push(format!("{path} {id}: no help"));
                continue;
            };
            // `-h` shows the first paragraph with its final period dropped: it must be one
            // sentence, or the last one reads as cut off.
            if one_sentence(&help).is_err() {
                problems.push(format!("{path} {id}: -h shows several sentences: {help:?}"));
            }
            if help.ends_with([':', ',', ';', '(']) {
                problems.push(format!("{path} {id}: -h ends mid-sentence: {help:?}"));
            }
        }
        for sub in cmd.get_subcommands() {
            audit(sub, &format!("{path} {}", sub.get_name()), problems);
        }
    }

    #[test]
    fn every_short_help_is_one_whole_sentence() {
        let cmd = Cli::command();
        cmd.clone().debug_assert();
        let mut problems = Vec::new();
        audit(&cmd, "hawser", &mut problems);
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }
}
