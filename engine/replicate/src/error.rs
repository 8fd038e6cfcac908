//! Errors of a replication job, on either side.

use std::io;
use std::path::PathBuf;

use super::report::Report;
pub use hawser_wire::replicate::{EntryFailure, FailureReason};
use hawser_wire::replicate::{ProtoError, RefusalKind};

/// Why the source side of a job failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplicateError {
    /// Reading the source failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// What was being read.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The target answered with a malformed message.
    #[error("malformed answer from the target: {0}")]
    Proto(#[from] ProtoError),
    /// The transport failed (the session binding reports connection loss beyond recovery
    /// here); the job can be continued with `resume`.
    #[error("transport: {0}")]
    Transport(#[from] TransportError),
    /// The target failed a request as a whole (a remote exception).
    #[error("target: {0}")]
    Remote(RemoteError),
    /// The target answered something that does not fit the request.
    #[error("unexpected answer from the target: {0}")]
    Unexpected(&'static str),
    /// An `--exclude` pattern that does not parse.
    #[error("bad exclude pattern {pattern:?}: {reason}")]
    BadPattern {
        /// The pattern as given.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// More entries than file ids.
    #[error("too many entries for one job")]
    TooManyEntries,
    /// The job ran to the end, but some entries were refused or failed.
    #[error("{} entries failed, first: {}", failures.len(), failures.first().map(ToString::to_string).unwrap_or_default())]
    Incomplete {
        /// What failed.
        failures: Vec<EntryFailure>,
        /// The report of everything else.
        report: Box<Report>,
    },
}

/// A failure the target raised for a whole request: travels as a DSP remote exception
/// (`type_name`, `message`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{type_name}: {message}")]
pub struct RemoteError {
    /// The exception type, `hawser.replicate.*` for the target's own errors.
    pub type_name: String,
    /// Its message.
    pub message: String,
}

/// The transport between the two sides failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The peer is gone (for the session layer: the nexus is lost).
    #[error("disconnected")]
    Disconnected,
    /// `recv` with nothing outstanding.
    #[error("nothing outstanding to wait for")]
    Idle,
    /// Anything else, described.
    #[error("{0}")]
    Other(String),
}

/// Why the target failed a request as a whole. Per-entry problems are not errors but
/// [`Verdict::Refused`](super::proto::Verdict) answers.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The request does not decode.
    #[error("malformed request: {0}")]
    Proto(#[from] ProtoError),
    /// A response kind sent as a request.
    #[error("message {0:#04x} is not a request")]
    NotARequest(u8),
    /// A job request before `Begin`.
    #[error("no job is open: Begin first")]
    NoJob,
    /// The source speaks another protocol version.
    #[error("unsupported replication protocol version {0}")]
    Version(u16),
    /// The destination itself is refused.
    #[error("destination refused: {kind} ({detail})")]
    Destination {
        /// Why.
        kind: RefusalKind,
        /// Details.
        detail: String,
    },
    /// A block or commit for a file the manifest did not ask data for.
    #[error("no partial file with id {0}")]
    UnknownFile(u32),
    /// A block that is not one of the file's pieces.
    #[error("block of {len} bytes at offset {offset} is not a piece of file {file_id}")]
    NotAPiece {
        /// The file.
        file_id: u32,
        /// The block's offset.
        offset: u64,
        /// The block's length.
        len: usize,
    },
    /// The target's filesystem failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// Where.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The target's file system is full (or the quota reached).
    #[error("{}: {source}; {hint}", path.display())]
    NoSpace {
        /// Where.
        path: PathBuf,
        /// The error (`ENOSPC` or `EDQUOT`).
        source: io::Error,
        /// How much the partial files of unfinished jobs hold, and how to remove them.
        hint: String,
    },
    /// The job named more entries than the target remembers for one job.
    #[error(
        "the job names more than {0} entries, the most this target takes in one job \
         (its max_job_entries)"
    )]
    TooManyEntries(u64),
    /// The job would have more files open at once than the target allows one job.
    #[error(
        "the job would have more than {0} files being written at once, the most this target \
         allows one job (its max_open_files)"
    )]
    TooManyOpenFiles(usize),
}

impl TargetError {
    /// The exception type name the error travels as.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Proto(_) | Self::NotARequest(_) => "hawser.replicate.BadMessage",
            Self::NoJob => "hawser.replicate.NoJob",
            Self::Version(_) => "hawser.replicate.Version",
            Self::Destination { .. } => "hawser.replicate.DestinationRefused",
            Self::UnknownFile(_) | Self::NotAPiece { .. } => "hawser.replicate.UnknownBlock",
            Self::Io { .. } => "hawser.replicate.Io",
            Self::NoSpace { .. } => "hawser.replicate.NoSpace",
            Self::TooManyEntries(_) | Self::TooManyOpenFiles(_) => "hawser.replicate.Limit",
        }
    }

    /// As it travels back.
    pub fn to_remote(&self) -> RemoteError {
        RemoteError {
            type_name: self.type_name().to_owned(),
            message: self.to_string(),
        }
    }
}
