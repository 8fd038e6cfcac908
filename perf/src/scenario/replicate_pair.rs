//! One run of a data set in `replicate`: `hawser push` (when built), then `rsync -a` of
//! the same data, each into its own target, timed, with its cost per byte.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, Result, bail};

use super::process_cpu::{self, CpuTimes};
use super::replicate::{
    DataSet, PUSH_CONNECTIONS, empty_directory, flush_dirty_pages, hawser_subject, record_transfer,
    rsync_subject, run_place,
};
use super::tools::{self, Background};
use super::{add_series, cpu_cost, hawser_tools, settle};
use crate::report::{Outcome, Subject};

/// The two movers of `replicate` and where each writes.
pub(super) struct Movers<'a> {
    /// The hawser binary, when built.
    pub hawser: Option<&'a Path>,
    pub hawser_target: &'a Path,
    pub hawser_port: u16,
    /// The `hawser serve` all runs push to.
    pub server: Option<&'a Background>,
    /// Where `hawser push --json` writes its report.
    pub push_report: &'a Path,
    pub rsync: &'a Path,
    pub rsync_target: &'a Path,
    pub rsync_port: u16,
    pub daemon: &'a Background,
}

impl Movers<'_> {
    /// Round `round` of `data`: hawser's run, then rsync's.
    pub(super) fn run(&self, outcome: &mut Outcome, data: &DataSet, round: usize) -> Result<()> {
        if let Some(binary) = self.hawser {
            let subject = hawser_subject(data);
            let place = prepare(&subject, data, round, self.hawser_target)?;
            let serve_before = tools::background_cpu(self.server);
            let started = Instant::now();
            let destination = format!("127.0.0.1:{}:{place}", self.hawser_port);
            let pushed = hawser_tools::run_hawser_push(
                binary,
                None,
                PUSH_CONNECTIONS,
                &data.source,
                &destination,
                self.push_report,
                hawser_tools::PushOptions::default(),
            );
            let elapsed = started.elapsed().as_secs_f64();
            settle();
            let serve_s =
                process_cpu::seconds_between(serve_before, tools::background_cpu(self.server));
            match pushed {
                Ok(result) => {
                    record_transfer(outcome, &subject, data, elapsed);
                    cpu_cost::record_transfer(
                        outcome,
                        &subject,
                        data.bytes as f64,
                        result.client_cpu_s,
                        serve_s,
                    );
                    add_series(outcome, &subject, round, result.intervals);
                }
                Err(error) => outcome.notes.push(format!(
                    "{} round {round} failed: {error:#}",
                    subject.label()
                )),
            }
        }

        let subject = rsync_subject(data);
        let place = prepare(&subject, data, round, self.rsync_target)?;
        let daemon_before = self.daemon.cpu().ok();
        let started = Instant::now();
        let measured = process_cpu::output_with_cpu(
            Command::new(self.rsync)
                .arg("-a")
                .arg(format!("{}/", data.source.display()))
                .arg(format!(
                    "rsync://127.0.0.1:{}/dest/{place}/",
                    self.rsync_port
                )),
            None,
        )
        .context("running rsync")?;
        let elapsed = started.elapsed().as_secs_f64();
        let output = &measured.output;
        if !output.status.success() {
            bail!(
                "rsync round {round} failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        record_transfer(outcome, &subject, data, elapsed);
        // After the pause the daemon has reaped its per-connection process.
        settle();
        cpu_cost::record_transfer(
            outcome,
            &subject,
            data.bytes as f64,
            measured.cpu.map(CpuTimes::total_s),
            process_cpu::seconds_between(daemon_before, self.daemon.cpu().ok()),
        );
        Ok(())
    }
}

/// Before `subject`'s run of `data`: where under `target` it lands (emptied first where the
/// run replaces a copy), with every dirty page written back.
fn prepare(subject: &Subject, data: &DataSet, round: usize, target: &Path) -> Result<String> {
    eprintln!("  round {round}: {}", subject.label());
    let (place, empty) = run_place(data, round);
    if empty {
        empty_directory(&target.join(&place))?;
    }
    flush_dirty_pages()?;
    Ok(place)
}
