//! The `--compress` rows of `lfn-10g-50ms`: a push of log text through the emulated link
//! with `--compress off`, `auto` and `lz4`, so that `auto` is measured where the link, not
//! the loopback, bounds the transfer. Each row records the rate, the fraction of the link,
//! the wire fraction (bytes on the trunk / request bytes) and the cost per byte.

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::lfn::{ADDRESS_B, NS_A};
use super::replicate::{empty_directory, write_text_file};
use super::{cpu_cost, hawser_tools, process_cpu, settle, tools};
use crate::linkem::rng::SeededRng;
use crate::report::{Outcome, Subject};

const POLICIES: [&str; 3] = ["off", "auto", "lz4"];

/// The text pushed and what `auto` chose in each run.
#[derive(Debug)]
pub(super) struct CompressRows {
    source: PathBuf,
    mib: u64,
    auto_choices: Vec<Option<bool>>,
}

impl CompressRows {
    /// Writes `mib` MiB of log lines under `scratch` and names each row's baseline (`off`).
    pub(super) fn prepare(scratch: &Path, mib: u64, outcome: &mut Outcome) -> Result<Self> {
        let dir = scratch.join("text-source");
        std::fs::create_dir_all(&dir)?;
        eprintln!("  writing {mib} MiB of log text");
        write_text_file(&dir.join("app.log"), mib, &mut SeededRng::new(0x5445_5854))?;
        let rows = CompressRows {
            source: dir,
            mib,
            auto_choices: Vec::new(),
        };
        for policy in POLICIES {
            outcome
                .baseline_of
                .push((rows.subject(policy), rows.subject(POLICIES[0])));
        }
        Ok(rows)
    }

    fn subject(&self, policy: &str) -> Subject {
        Subject::new(
            "hawser",
            format!("push --compress {policy}, {} MiB of log text", self.mib),
        )
    }

    /// One push per policy into `target` (emptied first) of the server on `port`, with
    /// TCP congestion control `congestion` (`None`: the system's).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run_round(
        &mut self,
        binary: &Path,
        congestion: Option<&str>,
        server: Option<&tools::Background>,
        port: u16,
        target: &Path,
        report: &Path,
        round: usize,
        link_bytes_per_sec: f64,
        outcome: &mut Outcome,
    ) -> Result<()> {
        let bytes = (self.mib << 20) as f64;
        for policy in POLICIES {
            let subject = self.subject(policy);
            eprintln!("  round {round}: {}", subject.label());
            empty_directory(target)?;
            let serve_before = tools::background_cpu(server);
            let pushed = hawser_tools::run_hawser_push(
                binary,
                Some(NS_A),
                8,
                &self.source,
                &format!("{ADDRESS_B}:{port}:text{round}"),
                report,
                hawser_tools::PushOptions {
                    compress: policy,
                    congestion,
                    ..hawser_tools::PushOptions::default()
                },
            );
            settle();
            let serve_s = process_cpu::seconds_between(serve_before, tools::background_cpu(server));
            match pushed {
                Ok(result) => {
                    outcome.record(
                        &subject,
                        "throughput_bytes_per_sec",
                        "bytes/s",
                        result.bytes_per_sec,
                    );
                    outcome.record(
                        &subject,
                        "link_fraction",
                        "fraction",
                        result.bytes_per_sec / link_bytes_per_sec,
                    );
                    record_wire_and_cost(outcome, &subject, bytes, &result, serve_s);
                    if policy == "auto" {
                        self.auto_choices.push(result.auto_compressed);
                    }
                }
                Err(error) => outcome.notes.push(format!(
                    "{} round {round} failed: {error:#}",
                    subject.label()
                )),
            }
        }
        Ok(())
    }

    /// The note saying what the rows are and what `auto` chose.
    pub(super) fn summarize(self, outcome: &mut Outcome) {
        let count = |c: Option<bool>| self.auto_choices.iter().filter(|&&x| x == c).count();
        outcome.notes.push(format!(
            "Text rows: {} MiB of generated log lines (lz4 shrinks them to about 0.3), pushed \
             through the link with `hawser push --connections 8 --compress off|auto|lz4` (lz4 \
             on the push's compressing threads, one per core); rate = text bytes / push \
             duration, wire_fraction = bytes on the trunk / request bytes. `auto` compressed \
             in {} of {} runs, chose not to in {}, and ended before choosing in {}.",
            self.mib,
            count(Some(true)),
            self.auto_choices.len(),
            count(Some(false)),
            count(None)
        ));
    }
}

/// Records a text push's wire fraction (bytes on the trunk / request bytes) and its cost
/// per byte of client and server.
pub(super) fn record_wire_and_cost(
    outcome: &mut Outcome,
    subject: &Subject,
    bytes: f64,
    result: &hawser_tools::HawserPushResult,
    serve_s: Option<f64>,
) {
    outcome.record(
        subject,
        "wire_fraction",
        "fraction",
        result.compression_ratio,
    );
    cpu_cost::record_transfer(outcome, subject, bytes, result.client_cpu_s, serve_s);
}
