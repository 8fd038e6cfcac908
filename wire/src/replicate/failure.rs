//! Why an entry of a job failed, as the source reports it (and a pull's report carries).

use super::{CommitStatus, RefusalKind};

/// One entry the job could not replicate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct EntryFailure {
    /// The entry's path relative to the destination (lossy UTF-8).
    pub path: String,
    /// Why.
    pub reason: FailureReason,
}

/// Why an entry failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FailureReason {
    /// The target refused it (bad or escaping path, I/O error there).
    #[error("refused by the target: {kind} ({detail})")]
    Refused {
        /// The typed reason.
        kind: RefusalKind,
        /// The target's details.
        detail: String,
    },
    /// The commit failed its check.
    #[error("commit failed: {0:?}")]
    Commit(CommitStatus),
    /// A block kept arriving corrupted.
    #[error(
        "block at offset {0} failed its digest on every attempt: the source file changed while it \
         was sent, or the link corrupts data"
    )]
    BlockRetries(u64),
    /// `--verify`: the source changed while it was sent.
    #[error("the source changed during the transfer")]
    SourceChanged,
}
