//! Why `hawser serve`, `push`, `pull` or the replicate demo failed, and how the binary
//! tells the user before it exits non-zero.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use hawser_replicate::ReplicateError;
use hawser_runtime::{Address, ApiError, NexusId};

/// Why a subcommand failed (the binary prints it and exits non-zero).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad arguments or configuration.
    #[error("{0}")]
    Usage(String),
    /// The server could not start, or the client could not reach it.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// A message operation (wiring, a direct connection) failed.
    #[error(transparent)]
    Messages(#[from] hawser_dmp::DmpError),
    /// A DTP transfer failed.
    #[error("DTP: {0}")]
    Transfer(#[from] hawser_dtp::client::DtpClientError),
    /// Nothing listens there (or it is unreachable).
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// Where.
        addr: Address,
        /// Why.
        source: std::io::Error,
    },
    /// None of the addresses a host name resolves to answered.
    #[error("cannot connect to {host}: {}", tried_list(.tried))]
    Unreachable {
        /// The host as the user named it.
        host: String,
        /// Each address tried, in order, and why it failed.
        tried: Vec<(Address, std::io::Error)>,
    },
    /// A `--plot` chart could not be drawn or written.
    #[error(transparent)]
    Plot(#[from] hawser_plot::PlotError),
    /// The job failed.
    #[error(transparent)]
    Replicate(#[from] ReplicateError),
    /// A local file (root, config, report) failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// Which.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The server holds the session: the identity's previous nexus still exists. The
    /// message says why and what to do.
    #[error("{message}")]
    Held {
        /// The server.
        addr: Address,
        /// The previous nexus.
        nexus: NexusId,
        /// The explanation and the advice.
        message: String,
    },
    /// Targets of a push to several failed (the others completed): each as typed, and
    /// why.
    #[error("{} of {of} targets failed: {}", failed.len(), failed_targets(.failed))]
    TargetsFailed {
        /// Each failed target and why.
        failed: Vec<(String, String)>,
        /// Targets of the push.
        of: usize,
    },
    /// The server refused or failed a pull (its message names the path and the reason).
    #[error("{addr}: {message}")]
    Server {
        /// The server.
        addr: Address,
        /// What it said.
        message: String,
    },
}

/// "tried A (why), B (why)".
fn tried_list(tried: &[(Address, std::io::Error)]) -> String {
    let each: Vec<String> = tried.iter().map(|(a, e)| format!("{a} ({e})")).collect();
    format!("tried {}", each.join(", "))
}

/// "A (why); B (why)".
fn failed_targets(failed: &[(String, String)]) -> String {
    let each: Vec<String> = failed
        .iter()
        .map(|(t, why)| format!("{t} ({why})"))
        .collect();
    each.join("; ")
}

/// Turns an I/O error on `path` into a [`CliError::Io`] naming it.
pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CliError + '_ {
    move |source| CliError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Prints a failed subcommand's error (every refused or failed entry, with its path) on
/// stderr and turns the result into the exit code.
pub fn exit_code(command: &str, result: Result<(), CliError>) -> ExitCode {
    let Err(e) = result else {
        return ExitCode::SUCCESS;
    };
    if let CliError::Replicate(ReplicateError::Incomplete { failures, report }) = &e {
        for failure in failures {
            eprintln!("hawser {command}: {failure}");
        }
        eprintln!(
            "hawser {command}: {} entries failed; {} files replicated",
            failures.len(),
            report.files
        );
    } else {
        let resumable = matches!(e, CliError::Replicate(ReplicateError::Transport(_)));
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
