//! Jobs counted per identity from the job log: a `tracing` layer that reads the events of
//! target `hawser::job` a server writes ([`hawser_runtime::job_log`]) when a job starts
//! and ends (their `event`, `kind`, `identity`, `anonymous`, `outcome`, `bytes` and
//! `files` fields) and keeps the totals the metrics endpoint exports. The log and the metrics agree by construction,
//! and the services that run jobs need no second channel to report them.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

pub use hawser_runtime::job_log::JOB_TARGET;

/// Distinct (identity, kind) rows kept at most; past it jobs count under [`OTHER`]. The
/// identities are the operator's, but a bound costs nothing and protects the scrape.
const MAX_ROWS: usize = 10_000;

/// The identity label of rows past [`MAX_ROWS`].
pub const OTHER: &str = "_other";

/// The identity label of jobs of anonymous clients, whose stated names prove nothing and
/// are not kept apart.
pub const ANONYMOUS: &str = "anonymous";

/// Totals of one identity's jobs of one kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobTotals {
    /// Jobs started.
    pub started: u64,
    /// Jobs that ended with their work done.
    pub finished: u64,
    /// Jobs that ended in failure (refused, failed, abandoned by their client).
    pub failed: u64,
    /// Bytes of file data the jobs moved.
    pub bytes: u64,
    /// Files the jobs wrote or sent.
    pub files: u64,
}

/// Job totals by (identity, kind), filled by the layer [`JobTally::layer`] installs.
#[derive(Debug, Default)]
pub struct JobTally {
    rows: Mutex<BTreeMap<(String, String), JobTotals>>,
}

/// The tally of this process (a server runs one per process).
pub static JOB_TALLY: JobTally = JobTally {
    rows: Mutex::new(BTreeMap::new()),
};

impl JobTally {
    /// A copy of every row.
    pub fn rows(&self) -> Vec<((String, String), JobTotals)> {
        match self.rows.lock() {
            Ok(rows) => rows.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            Err(_) => Vec::new(),
        }
    }

    fn count(&self, event: &JobEvent) {
        let Ok(mut rows) = self.rows.lock() else {
            return;
        };
        let identity = if event.anonymous {
            ANONYMOUS.to_owned()
        } else {
            event
                .identity
                .clone()
                .unwrap_or_else(|| ANONYMOUS.to_owned())
        };
        let kind = event.kind.clone().unwrap_or_else(|| "unknown".to_owned());
        let mut key = (identity, kind);
        if !rows.contains_key(&key) && rows.len() >= MAX_ROWS {
            key.0 = OTHER.to_owned();
        }
        let row = rows.entry(key).or_default();
        match event.event.as_deref() {
            Some("start") => row.started += 1,
            Some("end") => {
                if event.outcome.as_deref() == Some("ok") {
                    row.finished += 1;
                } else {
                    row.failed += 1;
                }
                row.bytes = row.bytes.saturating_add(event.bytes);
                row.files = row.files.saturating_add(event.files);
            }
            _ => {}
        }
    }
}

/// The layer that counts job events into [`JOB_TALLY`].
#[derive(Debug, Clone, Copy)]
pub struct JobTallyLayer;

impl<S: tracing::Subscriber> Layer<S> for JobTallyLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != JOB_TARGET {
            return;
        }
        let mut fields = JobEvent::default();
        event.record(&mut fields);
        if fields.event.is_some() {
            JOB_TALLY.count(&fields);
        }
    }
}

/// The fields of one job event that count.
#[derive(Debug, Default)]
struct JobEvent {
    event: Option<String>,
    kind: Option<String>,
    identity: Option<String>,
    anonymous: bool,
    outcome: Option<String>,
    bytes: u64,
    files: u64,
}

/// Field values are bounded before they are kept: an identity is the operator's name,
/// the rest are short words.
const MAX_FIELD_LEN: usize = 256;

impl JobEvent {
    fn set_text(&mut self, field: &Field, value: &str) {
        let value: String = value.chars().take(MAX_FIELD_LEN).collect();
        match field.name() {
            "event" => self.event = Some(value),
            "kind" => self.kind = Some(value),
            "identity" => self.identity = Some(value),
            "outcome" => self.outcome = Some(value),
            _ => {}
        }
    }
}

impl Visit for JobEvent {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set_text(field, value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "bytes" => self.bytes = value,
            "files" => self.files = value,
            _ => {}
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.record_u64(field, u64::try_from(value).unwrap_or(0));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if field.name() == "anonymous" {
            self.anonymous = value;
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `%value` fields (Display) arrive here; their text is what the log shows.
        if matches!(field.name(), "event" | "kind" | "identity" | "outcome") {
            self.set_text(field, &format!("{value:?}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn job_events_count_per_identity_and_kind() {
        let subscriber = tracing_subscriber::registry().with(JobTallyLayer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: JOB_TARGET, event = "start", kind = "tally-test", identity = "ops", anonymous = false, "job started");
            tracing::info!(target: JOB_TARGET, event = "end", kind = "tally-test", identity = "ops", anonymous = false, outcome = "ok", bytes = 10u64, files = 2u64, "job finished");
            tracing::info!(target: JOB_TARGET, event = "end", kind = "tally-test", identity = %"someone", anonymous = true, outcome = "failed", bytes = 1u64, files = 0u64, "job failed");
            tracing::info!(target: "elsewhere", event = "start", kind = "tally-test", "not a job");
        });
        let rows: BTreeMap<_, _> = JOB_TALLY
            .rows()
            .into_iter()
            .filter(|((_, kind), _)| kind == "tally-test")
            .collect();
        let ops = rows[&("ops".to_owned(), "tally-test".to_owned())];
        assert_eq!(
            ops,
            JobTotals {
                started: 1,
                finished: 1,
                failed: 0,
                bytes: 10,
                files: 2
            }
        );
        let anonymous = rows[&(ANONYMOUS.to_owned(), "tally-test".to_owned())];
        assert_eq!((anonymous.failed, anonymous.bytes), (1, 1));
        assert_eq!(rows.len(), 2);
    }
}
