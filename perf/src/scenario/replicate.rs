//! `replicate`: `hawser push` of a 4 GiB file and of 20,000 small files vs `rsync -a`
//! to an rsync daemon on loopback (and `scp` when present).
//!
//! Waits for `hawser push`/`serve`: until they exist the scenario writes a report whose
//! rows say why they were not measured. The data sets and the rsync daemon belong here
//! once there is a hawser row to compare them with; running rsync alone would only
//! measure rsync.

use anyhow::Result;

use super::Context;
use super::tools;
use crate::report::{Outcome, Subject};

/// The data sets of issue 6.
pub const DATA_SETS: [&str; 2] = ["one 4 GiB file", "20,000 small files"];

/// Records every row as not available, with the reason.
pub fn run(_context: &Context, outcome: &mut Outcome) -> Result<()> {
    let hawser_reason = match tools::hawser_subcommand("push") {
        Err(reason) => reason,
        Ok(_) => "hawser push exists but this scenario does not drive it yet".to_owned(),
    };
    for data in DATA_SETS {
        outcome.mark_unavailable(
            &Subject::new("hawser", format!("push, {data}")),
            &hawser_reason,
        );
    }
    let rsync_reason = match tools::find_program("rsync") {
        Some(_) => "not run until hawser push exists (the scenario compares them side by side)",
        None => "rsync not installed (scripts/setup.sh) and not run until hawser push exists",
    };
    for data in DATA_SETS {
        outcome.mark_unavailable(
            &Subject::new("rsync", format!("-a to a daemon on loopback, {data}")),
            rsync_reason,
        );
    }
    outcome.notes.push(
        "Planned measurement: wall time and bytes/s of `hawser push` (hawser serve on \
         loopback) and of `rsync -a` to `rsync --daemon` on 127.0.0.1, cold target each run, \
         A/B alternated; `scp` too when installed."
            .to_owned(),
    );
    Ok(())
}
